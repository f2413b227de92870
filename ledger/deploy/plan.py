"""What `ledger deploy` is asked to do, checked in full before the first transaction.

A `DeployPlan` is the whole request: the contracts, their configuration, who holds each role,
what to redeploy. `check_plan` refuses, naming the option, anything the contracts would
refuse or that could lock the operator out (a zero address, a duplicate or oversized panel,
a threshold that is not a strict majority, an admin named beside a timelock). Against a live
deployment, `conflicts` lists every requested setting that differs from what the chain holds,
with the `ledger admin` command that changes it: a re-run never silently ignores a new
configuration, and never redeploys to change one.

Redeploys are per contract (`redeploy_set`): the escrow's immutable references pull it in
when the terms rules or the arbitrator are redeployed; the EvidenceLog moves only with
`move_log` (its anchored heads stay verifiable with the old trust file), except when its code
is gone (a reset node).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eth_utils import to_checksum_address

from ledger.deploy.manifest import Configuration, DeploymentManifest
from ledger.errors import ConfigError, DeploymentError

__all__ = ["MAX_PANEL_SIZE", "DeployPlan", "check_plan", "conflicts", "redeploy_set"]

MAX_PANEL_SIZE = 32  # PanelArbitrator.MAX_PANEL_SIZE
ZERO = "0x" + "00" * 20
ESCROW_CONTRACTS = ("EscrowTermsRules", "EscrowBatcher", "PanelArbitrator", "FulfillmentEscrow",
                    "AdminTimelock")
ALL_CONTRACTS = ("EvidenceLog", *ESCROW_CONTRACTS)


@dataclass(frozen=True)
class DeployPlan:
    """A deployment request. None: not asked for (a default applies on a first deployment,
    and nothing is compared on a re-run)."""

    log_only: bool = False
    panel: Sequence[str] | None = None
    threshold: int | None = None
    arbitration_cost: int | None = None
    treasury: str | None = None
    deposit_ratio_bps: int | None = None
    admin_delay: int | None = 0  # None: as deployed (a re-run that does not ask)
    log_admin: str | None = None
    anchorer: str | None = None
    admin: str | None = None  # the escrow's and the panel's admin when there is no timelock
    proposers: Sequence[str] = ()
    executors: Sequence[str] = ()
    carriers: Sequence[str] = ()
    redeploy: Sequence[str] = ()  # contract names; "*": every contract whose code is not live
    move_log: bool = False


def _address(option: str, value: str) -> str:
    if value.lower() == ZERO:
        raise ConfigError(f"{option}: the zero address cannot hold a role or receive fees")
    return to_checksum_address(value)


def check_plan(plan: DeployPlan) -> None:
    """Refuse, naming the option, what the contracts would refuse or what could lock the
    operator out; nothing is sent."""
    for option, value in (("--treasury", plan.treasury), ("--log-admin", plan.log_admin),
                          ("--anchorer", plan.anchorer), ("--admin", plan.admin)):
        if value is not None:
            _address(option, value)
    for option, values in (("--proposer", plan.proposers), ("--executor", plan.executors)):
        for v in values:
            _address(option, v)
    if plan.log_only:
        return
    if plan.panel is not None:
        members = [_address("--panel", m).lower() for m in plan.panel]
        if not members:
            raise ConfigError("--panel: name at least one member")
        if len(set(members)) != len(members):
            dup = sorted({m for m in members if members.count(m) > 1})
            raise ConfigError(f"--panel: {to_checksum_address(dup[0])} is named twice (each member votes "
                              "once)")
        if len(members) > MAX_PANEL_SIZE:
            raise ConfigError(f"--panel: {len(members)} members, at most {MAX_PANEL_SIZE}")
        threshold = plan.threshold or len(members) // 2 + 1
        if not len(members) // 2 < threshold <= len(members):
            raise ConfigError(f"--threshold {threshold}: a panel of {len(members)} needs a strict majority "
                              f"({len(members) // 2 + 1}..{len(members)})")
    if (plan.admin_delay or 0) > 0 and plan.admin is not None:
        raise ConfigError("--admin names the escrow's admin without a timelock; with --admin-delay the "
                          "AdminTimelock is the admin: name who schedules and executes with --proposer and "
                          "--executor")
    if plan.admin_delay == 0 and (plan.proposers or plan.executors):  # (None: a timelock may exist)
        raise ConfigError("--proposer/--executor need a timelock (--admin-delay): without one there is "
                          "nobody to propose to")
    unknown = sorted(set(plan.redeploy) - {*ALL_CONTRACTS, "*"})
    if unknown:
        raise ConfigError(f"--redeploy {unknown[0]}: no such contract (one of {', '.join(ALL_CONTRACTS)})")
    if "EvidenceLog" in plan.redeploy and not plan.move_log:
        raise ConfigError("--redeploy EvidenceLog moves the evidence log to a new contract: pass --move-log "
                          "as well (the old log's trust file is kept, so its anchored heads stay verifiable; "
                          "`ledger anchor` then anchors the whole log into the new one)")


def redeploy_set(plan: DeployPlan, live: Mapping[str, bool], manifest: DeploymentManifest | None,
                 ) -> tuple[set[str], list[str]]:
    """The contracts to deploy anew (named, or with ``*`` every one whose code is not what the
    manifest recorded) and why, given which manifest contracts are `live`. Raises
    `DeploymentError` for a redeploy that would break the deployment."""
    names = set(plan.redeploy) - {"*"}
    if "*" in plan.redeploy:
        names |= {n for n, ok in live.items() if not ok}
    notes = []
    if names & {"EscrowTermsRules", "PanelArbitrator"} and "FulfillmentEscrow" not in names \
            and not plan.log_only and manifest is not None and "FulfillmentEscrow" in manifest.contracts:
        pulled = sorted(names & {"EscrowTermsRules", "PanelArbitrator"})
        raise DeploymentError(
            f"redeploying {' and '.join(pulled)} alone would leave the live FulfillmentEscrow pointing at "
            "the old one (its terms rules are immutable, its arbitrator is named in every terms version): to "
            "change the panel use `ledger admin arbitrator --panel …`; to replace them, --redeploy "
            "FulfillmentEscrow as well (orders open on the old escrow stay there)")
    if "AdminTimelock" in names and live.get("AdminTimelock", False):
        raise DeploymentError("a live AdminTimelock is not redeployed: it holds the admin roles. Hand "
                              "them to another account with `ledger admin role handover` instead")
    if "EvidenceLog" in names and live.get("EvidenceLog", False) and not plan.move_log:
        raise DeploymentError("the EvidenceLog is live: moving the log to a new contract needs --move-log")
    if "EvidenceLog" in names and not live.get("EvidenceLog", False):
        notes.append("the EvidenceLog at the manifest's address has no code (a reset node): deployed anew")
    return names, notes


def _admin_command(what: str, value: str) -> str:
    return {
        "panel": f"`ledger admin arbitrator --panel {value}` (with --threshold and --cost)",
        "threshold": "`ledger admin arbitrator --panel … --threshold N`",
        "arbitration cost": "`ledger admin arbitrator --panel … --cost WEI`",
        "treasury": f"`ledger admin treasury {value}`",
        "deposit ratio": f"`ledger admin deposit-ratio {value}`",
        "admin delay": "a timelock operation on the AdminTimelock itself (updateDelay)",
    }.get(what, f"`ledger admin role grant {value}` (then revoke the old holder)")


def conflicts(plan: DeployPlan, live: Configuration) -> list[str]:
    """Every setting `plan` asks for that the live deployment does not have, and how to change it."""
    wanted: list[tuple[str, object, object, str]] = []
    panel = live.panel
    if panel is not None and not plan.log_only:
        if plan.panel is not None:
            members = sorted(to_checksum_address(m) for m in plan.panel)
            wanted.append(("panel", members, sorted(panel.members), ",".join(members)))
            threshold = plan.threshold or len(members) // 2 + 1
            wanted.append(("threshold", threshold, panel.threshold, str(threshold)))
        elif plan.threshold is not None:
            wanted.append(("threshold", plan.threshold, panel.threshold, str(plan.threshold)))
        if plan.arbitration_cost is not None:
            wanted.append(("arbitration cost", plan.arbitration_cost, panel.cost, str(plan.arbitration_cost)))
    if plan.treasury is not None and live.treasury is not None:
        t = to_checksum_address(plan.treasury)
        wanted.append(("treasury", t, live.treasury, t))
    if plan.deposit_ratio_bps is not None and live.terms is not None:
        wanted.append(("deposit ratio", plan.deposit_ratio_bps, live.terms["deposit_ratio_bps"],
                       str(plan.deposit_ratio_bps)))
    if live.admin_delay is not None and plan.admin_delay and plan.admin_delay != live.admin_delay:
        wanted.append(("admin delay", plan.admin_delay, live.admin_delay, str(plan.admin_delay)))
    roles = (("EvidenceLog", "admin", plan.log_admin), ("EvidenceLog", "anchorer", plan.anchorer),
             ("FulfillmentEscrow", "admin", plan.admin), ("PanelArbitrator", "admin", plan.admin))
    for contract, role, who in roles:
        holders = live.roles.get(contract, {}).get(role)
        if who is not None and holders is not None and to_checksum_address(who) not in holders:
            wanted.append((f"{contract} {role}", to_checksum_address(who), ", ".join(holders) or "nobody",
                           f"{role} {to_checksum_address(who)} --contract {contract}"))
    return [f"{what}: the deployment has {have}, this run asks for {want}: change it with "
            f"{_admin_command(what, value)}"
            for what, want, have, value in wanted if want != have]
