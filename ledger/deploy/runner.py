"""Carry out a checked `DeployPlan`, and compare a deployment with the chain (`ledger deploy --check`).

Order of work: check the whole plan (`ledger.deploy.plan.check_plan`); against a live
deployment, refuse every setting that differs (`conflicts`) and decide what to redeploy
(`redeploy_set`); check the deployer can pay; only then send. Contracts are deployed, the
roles separated (`separate_roles`), carriers registered and the admin handed to the
timelock; the configuration the chain then reports is written to the manifest with a
history entry. A failure after the first transaction says which contracts are already
deployed (they are in the manifest and are reused by a re-run).

Role handover at deployment is two-step where a typo could lock the operator out: a new log
admin or escrow admin is *granted* the role and the deployer keeps its own until the new
holder proves its key by revoking the deployer's (`ledger admin role accept`); the anchorer
role, which only anchors, moves at once (the admin can always grant it again). The
AdminTimelock is a contract this run deployed, so the admin roles move to it at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from eth_utils import to_checksum_address

from ledger.chain.rpc import Chain
from ledger.deploy import (
    DEFAULT_DEPOSIT_RATIO_BPS,
    Deployment,
    EscrowDeployment,
    abi_sha256,
    deploy_escrow,
    deploy_evidence_log,
    escrow_client,
    hand_over_admin,
    is_live,
)
from ledger.deploy.config import config_differences, read_configuration
from ledger.deploy.manifest import Configuration, append_history, event, read_manifest
from ledger.deploy.plan import DeployPlan, check_plan, conflicts, redeploy_set
from ledger.errors import ConfigError, DeploymentError, LedgerError
from ledger.escrow.roles import ADMIN_ROLE, Roles

__all__ = ["DeployResult", "check_deployment", "refresh_configuration", "run_plan"]


@dataclass
class DeployResult:
    deployments: list[Deployment]
    notes: list[str] = field(default_factory=list)
    tx_hashes: list[str] = field(default_factory=list)  # role and configuration transactions
    gas_used: int = 0
    cost_wei: int = 0
    configuration: Configuration | None = None


def _send(chain: Chain, result: DeployResult, fn: Any, note: str) -> None:
    receipt = chain.transact(fn, chain.default_account)
    result.tx_hashes.append("0x" + bytes(receipt["transactionHash"]).hex())
    result.gas_used += int(receipt["gasUsed"])
    result.cost_wei += chain.cost(receipt).cost_wei
    result.notes.append(note)


def run_plan(chain: Chain, data_dir: Path, plan: DeployPlan) -> DeployResult:
    """Check `plan` in full, then deploy (see the module docstring)."""
    check_plan(plan)
    manifest = read_manifest(data_dir, chain.chain_id)
    live = {n: is_live(chain, e) for n, e in manifest.contracts.items()} if manifest else {}
    names, notes = redeploy_set(plan, live, manifest)
    new_panel = "PanelArbitrator" in names or not live.get("PanelArbitrator")
    if not plan.log_only and plan.panel is None and new_panel:
        raise ConfigError("this run deploys the PanelArbitrator: it needs --panel ADDR,ADDR,... (the "
                          "arbitration panel) and --threshold N; nothing was sent")
    if manifest is not None:
        staying = {n: e for n, e in manifest.contracts.items() if live.get(n) and n not in names}
        current = read_configuration(chain, staying)
        problems = conflicts(plan, current)
        if plan.admin_delay is None:  # not asked: the deployment's own
            plan = dataclasses.replace(plan, admin_delay=current.admin_delay or 0)
        if problems:
            raise DeploymentError("this deployment is live and differs from what this run asks; nothing was "
                                  "sent:\n  " + "\n  ".join(problems))
    deployer = chain.default_account.address
    if int(chain.w3.eth.get_balance(deployer)) == 0:
        raise DeploymentError(f"the deployer {deployer} has no ether on chain {chain.chain_id} to pay for "
                              "the deployment: fund it first; nothing was sent")
    result = DeployResult([], notes)
    try:
        _deploy(chain, data_dir, plan, names, result)
    except LedgerError as exc:
        after = read_manifest(data_dir, chain.chain_id)
        before = {} if manifest is None else manifest.contracts
        done = [e for n, e in (after.contracts.items() if after else ()) if before.get(n) != e]
        if not done:
            raise
        listed = "; ".join(f"{d.name} at {d.address} (tx {d.tx_hash})" for d in done)
        raise type(exc)(f"{exc}\nAlready deployed by this run, and recorded in the manifest: {listed}. "
                        "Re-running `ledger deploy` with the same options reuses them and finishes the rest."
                        ) from None
    for d in result.deployments:
        if not d.reused:
            result.gas_used += d.gas_used or 0
            result.cost_wei += d.cost_wei or 0
    return result


def _deploy(chain: Chain, data_dir: Path, plan: DeployPlan, names: set[str], result: DeployResult) -> None:
    log = deploy_evidence_log(chain, data_dir, redeploy="EvidenceLog" in names)
    result.deployments.append(log)
    if not log.reused:
        _separate_log_roles(chain, log, plan, result)
    esc: EscrowDeployment | None = None
    if not plan.log_only:
        panel = list(plan.panel or [])
        ratio = DEFAULT_DEPOSIT_RATIO_BPS if plan.deposit_ratio_bps is None else plan.deposit_ratio_bps
        esc = deploy_escrow(
            chain, data_dir, panel=panel, threshold=plan.threshold or len(panel) // 2 + 1,
            arbitration_cost=plan.arbitration_cost or 0, treasury=plan.treasury, deposit_ratio_bps=ratio,
            admin_delay=plan.admin_delay or 0, redeploy=names, proposers=plan.proposers,
            executors=plan.executors,
        )  # fmt: skip
        result.deployments += esc.deployments
        client = escrow_client(chain, data_dir)
        for carrier in plan.carriers:  # the initial configuration, before the admin is handed over
            if not client.is_carrier(carrier):
                _send(chain, result, client.escrow.functions.setCarrier(carrier, True),
                      f"carrier {carrier} registered")
        if esc.timelock is None and plan.admin is not None:
            for dep in (esc.escrow, esc.arbitrator):
                if not dep.reused:
                    _grant_pending(chain, dep, plan.admin, result)
        result.notes += hand_over_admin(chain, esc)
    refresh_configuration(chain, data_dir, "configured", _summary(result), result.tx_hashes)
    result.configuration = (read_manifest(data_dir, chain.chain_id) or _no_manifest()).configuration


def _no_manifest() -> Any:  # pragma: no cover - the deploy just wrote it
    raise DeploymentError("the deployment manifest vanished while deploying")


def _summary(result: DeployResult) -> str:
    new = [d.name for d in result.deployments if not d.reused]
    return (f"deployed {', '.join(new)}" if new else "re-run: nothing deployed") + \
        (f"; {'; '.join(n for n in result.notes if n)}" if result.notes else "")


def _separate_log_roles(chain: Chain, log: Deployment, plan: DeployPlan, result: DeployResult) -> None:
    contract = chain.contract("EvidenceLog", log.address)
    me = chain.default_account.address
    if plan.anchorer is not None and to_checksum_address(plan.anchorer) != me:
        anchorer = to_checksum_address(plan.anchorer)
        role = Roles(chain, "EvidenceLog", contract, log.block_number).role_id("anchorer")
        _send(chain, result, contract.functions.grantRole(role, anchorer),
              f"EvidenceLog anchorer role granted to {anchorer}")
        _send(chain, result, contract.functions.revokeRole(role, me),
              f"EvidenceLog anchorer role revoked from the deployer {me}")
    if plan.log_admin is not None:
        _grant_pending(chain, log, plan.log_admin, result)


def _grant_pending(chain: Chain, dep: Deployment, to: str, result: DeployResult) -> None:
    """Step 1 of a two-step admin handover: grant; the deployer leaves once `to` accepts."""
    me = chain.default_account.address
    who = to_checksum_address(to)
    if who == me:
        return
    contract = chain.contract(dep.name, dep.address)
    _send(chain, result, contract.functions.grantRole(ADMIN_ROLE, who),
          f"{dep.name} admin role granted to {who}; the deployer {me} keeps its own until {who} accepts: "
          f"`ledger admin role accept --contract {dep.name} --key <its key>` (a multisig sends "
          f"revokeRole(DEFAULT_ADMIN_ROLE, {me}) to {dep.address})")


def refresh_configuration(chain: Chain, data_dir: Path, what: str, detail: str, tx_hashes: list[str],
                          ) -> Configuration:
    """Read the live configuration into the manifest and note `what` happened in its history
    (after a deployment, and after every `ledger admin` change that executed)."""
    manifest = read_manifest(data_dir, chain.chain_id)
    if manifest is None:
        raise DeploymentError(f"no deployment manifest for chain {chain.chain_id}: run `ledger deploy` first")
    contracts = {n: e for n, e in manifest.contracts.items() if is_live(chain, e)}
    config = read_configuration(chain, contracts)
    append_history(data_dir, chain.chain_id, [event(what, detail, block_number=config.block_number,
                                                    tx_hashes=list(tx_hashes))], config)
    return config


def check_deployment(chain: Chain, data_dir: Path) -> list[str]:
    """Every difference between the manifest and the chain: a contract whose code is not what
    was deployed (or is gone), or that its recorded deployment transaction did not create
    (an impostor with the same code), a local build whose ABI differs from the deployed one, a role
    holder, the panel, the treasury, the terms or the admin delay changed outside the tool."""
    manifest = read_manifest(data_dir, chain.chain_id)
    if manifest is None:
        raise DeploymentError(f"no deployment manifest for chain {chain.chain_id} in {data_dir}: nothing to "
                              "check")
    out = []
    live = {}
    for name, entry in sorted(manifest.contracts.items()):
        if not is_live(chain, entry):
            out.append(f"{name} at {entry.address}: the chain holds other code there, or none")
            continue
        made = chain.receipt(bytes.fromhex(entry.tx_hash.removeprefix("0x")))
        if made is None or made.get("contractAddress") != entry.address or \
                int(made["blockNumber"]) != entry.block_number:
            # Same code elsewhere is not the same contract: an edited manifest could name an
            # impostor deployed by anyone (with its own roles and money).
            out.append(f"{name} at {entry.address}: the manifest's deployment transaction {entry.tx_hash} "
                       f"did not create it in block {entry.block_number}")
            continue
        live[name] = entry
        if entry.abi_sha256 is not None and entry.abi_sha256 != abi_sha256(name):
            out.append(f"{name}: the local build's ABI differs from the deployed one")
    if manifest.configuration is None:
        out.append("the manifest records no configuration (written by an older version): run `ledger deploy` "
                   "once to record it")
    else:
        c = manifest.configuration  # what a gone contract held is reported once, with it, above
        escrow = "FulfillmentEscrow" in live
        recorded = msgspec.structs.replace(
            c, roles={n: r for n, r in c.roles.items() if n in live},
            panel=c.panel if "PanelArbitrator" in live else None,
            treasury=c.treasury if escrow else None, terms_id=c.terms_id if escrow else None,
            terms=c.terms if escrow else None, admin_delay=c.admin_delay if "AdminTimelock" in live else None)
        out += config_differences(recorded, read_configuration(chain, live))
    return out
