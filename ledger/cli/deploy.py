"""`ledger compile` and `ledger deploy`: build the contracts and put them on a chain."""

from __future__ import annotations

import argparse
import time

from ledger._internal import solc
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
    deploy_escrow,
    deploy_evidence_log,
    escrow_client,
    hand_over_admin,
    manifest_path,
    trust_root_path,
)
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
    local = chain.kind in ("anvil", "embedded")
    # Every argument is checked before the first transaction.
    panel: list[str] = []
    if not args.log_only:
        if args.panel:
            panel = [address_of(chain, ref) for ref in args.panel]
        elif local:
            panel = [address_of(chain, f"dev:{i}") for i in (7, 8, 9)]
        else:
            raise ConfigError(
                "deploying the escrow on this network needs --panel ADDR,ADDR,... (the "
                "arbitration panel) and --threshold N; or pass --log-only"
            )
    threshold = args.threshold or len(panel) // 2 + 1
    if panel and not (len(panel) // 2 < threshold <= len(panel)):
        raise ConfigError(f"--threshold {threshold}: a panel of {len(panel)} needs a strict majority "
                          f"({len(panel) // 2 + 1}..{len(panel)})")
    delay = args.admin_delay if args.admin_delay is not None else (0 if local else DEFAULT_ADMIN_DELAY)
    carriers = [address_of(chain, ref) for ref in args.carrier or []]
    deployments = [deploy_evidence_log(chain, ddir, redeploy=args.redeploy)]
    notes: list[str] = []
    if not args.log_only:
        esc = deploy_escrow(
            chain, ddir, panel=panel, threshold=threshold, arbitration_cost=args.arbitration_cost,
            treasury=args.treasury, deposit_ratio_bps=args.deposit_ratio, admin_delay=delay,
            redeploy=args.redeploy,
        )  # fmt: skip
        deployments += esc.deployments
        client = escrow_client(chain, ddir)
        for carrier in carriers:  # the initial configuration, before the admin is handed over
            if not client.is_carrier(carrier):
                client.set_carrier(carrier, True, chain.default_account)
                notes.append(f"carrier {carrier} registered")
        notes += hand_over_admin(chain, esc)
        notes.append(f"admin changes wait {delay} s in AdminTimelock {esc.timelock.address} "
                     "(`ledger admin ...` schedules and executes them)" if esc.timelock else
                     "admin changes apply at once (no timelock: for development; deploy with "
                     "--admin-delay on a shared network)")
    trust = trust_root_path(ddir, chain.chain_id)
    payload = {
        "manifest": str(manifest_path(ddir, chain.chain_id)),
        "trust_root": str(trust),
        "contracts": {d.name: {"reused": d.reused, **d.to_json()} for d in deployments},
        # the log's fields at the top level, as before the escrow existed
        "reused": deployments[0].reused, **deployments[0].to_json(),
    }
    lines = [
        f"{d.name} {'already deployed' if d.reused else 'deployed'} at {d.address} on chain "
        f"{chain.chain_id} (tx {d.tx_hash}, block {d.block_number})"
        for d in deployments
    ]
    lines += notes
    lines.append(f"trust file for auditors: {trust} (they pin the log with `ledger verify --trust FILE`)")
    emit(args, payload, "\n".join(lines))
    return 0


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
        sp.add_argument("--redeploy", action="store_true",
                        help="deploy anew even if a matching deployment is live")
        sp.add_argument("--log-only", action="store_true", help="only the evidence log")
        sp.add_argument("--panel", type=_panel, help="arbitration panel: addresses or KEYREFs, "
                        "comma-separated (default on a local node: dev:7,dev:8,dev:9)")
        sp.add_argument("--threshold", type=bounded(1, 255, "a number of votes"),
                        help="votes for a final ruling (default: a majority)")
        sp.add_argument("--arbitration-cost", type=amount, default=0, help="wei paid to open a dispute")
        sp.add_argument("--treasury", type=address, help="where platform fees go (default: the deployer)")
        sp.add_argument("--deposit-ratio", type=bounded(0, 10_000, "basis points"),
                        default=DEFAULT_DEPOSIT_RATIO_BPS,
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
