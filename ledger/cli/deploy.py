"""`ledger compile` and `ledger deploy`: build the contracts and put them on a chain."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ledger._internal import jsondoc, solc
from ledger.chain.fees import eth
from ledger.cli._common import (
    KEYREF_HELP,
    add_json,
    add_rpc,
    add_tx_options,
    address,
    address_of,
    address_or_keyref,
    amount,
    bounded,
    data_dir,
    duration,
    emit,
    open_chain,
)
from ledger.deploy import (
    DEFAULT_ADMIN_DELAY,
    DEFAULT_DEPOSIT_RATIO_BPS,
    is_live,
    manifest_path,
    read_manifest,
    trust_root_path,
)
from ledger.deploy.plan import DeployPlan
from ledger.deploy.runner import DeployResult, check_deployment, run_plan
from ledger.errors import ConfigError

__all__ = ["configure"]


def cmd_compile(args: argparse.Namespace) -> int:
    t = time.perf_counter()
    arts = solc.compile_all(force=args.force)
    if not args.quiet:
        emit(args, {"contracts": sorted(arts)},
             f"compiled {', '.join(sorted(arts))} with solc {solc.SOLC_VERSION} "
             f"(evm {solc.EVM_VERSION}) in {time.perf_counter() - t:.2f}s")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    chain = open_chain(args)
    ddir = data_dir(args)
    if args.check:
        return _check(args, chain, ddir)
    local = chain.kind in ("anvil", "embedded")
    panel = [address_of(chain, ref) for ref in args.panel] if args.panel else None
    manifest = read_manifest(ddir, chain.chain_id)
    live = {n: is_live(chain, e) for n, e in manifest.contracts.items()} if manifest else {}
    # What this run deploys anew takes the defaults (a reset node redeploys what is gone).
    new_panel = not live.get("PanelArbitrator") or "PanelArbitrator" in (args.redeploy or [])
    new_timelock = not live.get("FulfillmentEscrow") and not live.get("AdminTimelock")
    if not args.log_only and panel is None and new_panel:
        if not local:
            raise ConfigError("deploying the escrow on this network needs --panel ADDR,ADDR,... (the "
                              "arbitration panel) and --threshold N; or pass --log-only")
        panel = [address_of(chain, f"dev:{i}") for i in (7, 8, 9)]

    def who(ref: str | None) -> str | None:
        return None if ref is None else address_of(chain, ref)

    # Not asked: the default for an escrow deployed anew; otherwise whatever is deployed.
    delay = args.admin_delay if args.admin_delay is not None else \
        ((0 if local else DEFAULT_ADMIN_DELAY) if new_timelock else None)
    plan = DeployPlan(
        log_only=args.log_only, panel=panel, threshold=args.threshold, arbitration_cost=args.arbitration_cost,
        treasury=who(args.treasury), deposit_ratio_bps=args.deposit_ratio, admin_delay=delay,
        log_admin=who(args.log_admin), anchorer=who(args.anchorer), admin=who(args.admin),
        proposers=[address_of(chain, r) for r in args.proposer or []],
        executors=[address_of(chain, r) for r in args.executor or []],
        carriers=[address_of(chain, ref) for ref in args.carrier or []],
        redeploy=args.redeploy or [], move_log=args.move_log,
    )  # fmt: skip
    return _deploy_out(args, chain, ddir, run_plan(chain, ddir, plan), delay)


def _deploy_out(args: argparse.Namespace, chain: Any, ddir: Any, result: DeployResult, delay: int | None,
                ) -> int:
    """What `ledger deploy` did: each contract, the notes, the gas and ether spent, the trust file."""
    deployments = result.deployments
    if not args.log_only:
        esc_admin = "AdminTimelock" in {d.name for d in deployments}
        wait = result.configuration.admin_delay if result.configuration else delay
        result.notes.append(f"admin changes wait {wait} s in the AdminTimelock (`ledger admin ...` "
                            "schedules and executes them)" if esc_admin else
                            "admin changes apply at once (no timelock: for development; deploy with "
                            "--admin-delay on a shared network)")
    trust = trust_root_path(ddir, chain.chain_id)
    payload = {
        "manifest": str(manifest_path(ddir, chain.chain_id)),
        "trust_root": str(trust),
        "contracts": {d.name: {"reused": d.reused, **d.to_json()} for d in deployments},
        "tx_hashes": result.tx_hashes, "gas_used": result.gas_used, "cost_wei": result.cost_wei,
        "configuration": jsondoc.to_json(result.configuration),
        # the log's fields at the top level, as before the escrow existed
        "reused": deployments[0].reused, **deployments[0].to_json(),
    }  # fmt: skip
    lines = [
        f"{d.name} {'already deployed' if d.reused else 'deployed'} at {d.address} on chain "
        f"{chain.chain_id} (tx {d.tx_hash}, block {d.block_number}"
        + ("" if d.reused or d.gas_used is None else f", gas {d.gas_used:,}, {eth(d.cost_wei or 0)}") + ")"
        for d in deployments
    ]
    lines += [n for n in result.notes if n]
    lines.append(f"spent {result.gas_used:,} gas, {eth(result.cost_wei)} (this run)")
    lines.append(f"trust file for auditors: {trust} (they pin the log with `ledger verify --trust FILE`)")
    emit(args, payload, "\n".join(lines))
    return 0


def _check(args: argparse.Namespace, chain: Any, ddir: Any) -> int:
    """`ledger deploy --check`: every difference between the manifest and the chain; exit 1 if any."""
    drift = check_deployment(chain, ddir)
    text = ("the deployment matches its manifest: code, ABI, roles, panel, treasury, terms, admin delay"
            if not drift else
            f"{len(drift)} difference(s) between the manifest and chain {chain.chain_id}:\n  "
            + "\n  ".join(drift))
    emit(args, {"manifest": str(manifest_path(ddir, chain.chain_id)), "differences": drift, "ok": not drift},
         text)
    return 1 if drift else 0


def _panel(text: str) -> list[str]:
    """Comma-separated addresses or key references (an argparse type)."""
    return [address_or_keyref(ref) for ref in text.split(",")]


def configure(name: str, sp: argparse.ArgumentParser) -> None:
    if name == "compile":
        add_json(sp)
        sp.add_argument("--force", action="store_true", help="ignore the cache")
        sp.add_argument("--quiet", action="store_true")
        sp.set_defaults(func=cmd_compile)
    elif name == "deploy":
        sp.epilog = KEYREF_HELP
        add_rpc(sp)
        add_tx_options(sp)
        add_json(sp)
        sp.add_argument("--redeploy", action="append", nargs="?", const="*", metavar="CONTRACT",
                        help="deploy CONTRACT anew even if it is live (repeatable; the escrow comes "
                        "along with its terms rules or arbitrator); without a name: every contract whose "
                        "code is gone. The EvidenceLog moves only with --move-log")
        sp.add_argument("--move-log", action="store_true",
                        help="allow --redeploy EvidenceLog: a new log, the old one's trust file kept so that "
                        "its anchored heads stay verifiable; `ledger anchor` then anchors the log into the "
                        "new one")
        sp.add_argument("--check", action="store_true",
                        help="compare the manifest with the chain and list every difference (exit 1 if any)")
        sp.add_argument("--log-admin", type=address_or_keyref, metavar="ADDR",
                        help="the EvidenceLog's admin (granted; the deployer leaves once it accepts)")
        sp.add_argument("--anchorer", type=address_or_keyref, metavar="ADDR",
                        help="the only key that may anchor (default: the deployer)")
        sp.add_argument("--admin", type=address_or_keyref, metavar="ADDR",
                        help="the escrow's and the panel's admin without a timelock (granted; the deployer "
                        "leaves once it accepts)")
        sp.add_argument("--proposer", action="append", type=address_or_keyref, metavar="ADDR",
                        help="with --admin-delay: who schedules admin changes, e.g. a multisig (repeatable; "
                        "default: the deployer)")
        sp.add_argument("--executor", action="append", type=address_or_keyref, metavar="ADDR",
                        help="with --admin-delay: who executes them once ready (repeatable; default: the "
                        "deployer)")
        sp.add_argument("--log-only", action="store_true", help="only the evidence log")
        sp.add_argument("--panel", type=_panel, help="arbitration panel: addresses or KEYREFs, "
                        "comma-separated (default on a local node: dev:7,dev:8,dev:9)")
        sp.add_argument("--threshold", type=bounded(1, 255, "a number of votes"),
                        help="votes for a final ruling (default: a majority)")
        sp.add_argument("--arbitration-cost", type=amount, help="wei paid to open a dispute (default 0)")
        sp.add_argument("--treasury", type=address, help="where platform fees go (default: the deployer)")
        sp.add_argument("--deposit-ratio", type=bounded(0, 10_000, "basis points"),
                        help="deposit each order locks, in basis points of its price, in terms "
                        f"version 1 (default {DEFAULT_DEPOSIT_RATIO_BPS})")
        sp.add_argument("--admin-delay", type=duration, metavar="DURATION",
                        help="put both admin roles behind an AdminTimelock (OpenZeppelin "
                        "TimelockController) with this delay, e.g. 2d; 0: the deployer stays admin "
                        "and changes apply at once (default: 0 on a local node, "
                        f"{DEFAULT_ADMIN_DELAY // 86400}d elsewhere)")
        sp.add_argument("--carrier", action="append", type=address_or_keyref, metavar="ADDR",
                        help="register a carrier as part of the deployment (repeatable)")
        sp.set_defaults(func=cmd_deploy)
