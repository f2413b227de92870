"""A deployment's configuration as the chain holds it, and its differences from the manifest.

AccessControl does not enumerate a role's holders, so they are read from the contract's own
``RoleGranted`` / ``RoleRevoked`` events since its deployment block, replayed in order, and
each holder confirmed with ``hasRole`` at the block read (a holder an event names but
``hasRole`` denies is not listed, and the reverse cannot happen: only those events change a
role). Everything else is a view call: the panel's epoch, members, threshold and cost, the
escrow's treasury and current terms, the timelock's delay.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from eth_utils import keccak, to_checksum_address
from web3.contract import Contract

from ledger.chain.rpc import Chain
from ledger.deploy.manifest import Configuration, ManifestEntry, PanelConfig
from ledger.escrow.types import Terms

__all__ = ["ROLES", "config_differences", "read_configuration", "role_holders"]

ADMIN_ROLE = bytes(32)
LOG_CHUNK = 10_000  # blocks per eth_getLogs (public RPC endpoints refuse wider ranges)

#: the roles of each contract, by the name the CLI and the manifest use
ROLES: dict[str, dict[str, bytes]] = {
    "EvidenceLog": {"admin": ADMIN_ROLE, "anchorer": keccak(text="ANCHORER_ROLE")},
    "FulfillmentEscrow": {"admin": ADMIN_ROLE},
    "PanelArbitrator": {"admin": ADMIN_ROLE},
    "AdminTimelock": {"admin": ADMIN_ROLE, "proposer": keccak(text="PROPOSER_ROLE"),
                      "executor": keccak(text="EXECUTOR_ROLE"), "canceller": keccak(text="CANCELLER_ROLE")},
}


def role_holders(chain: Chain, contract: Contract, name: str, from_block: int, block: int,
                 ) -> dict[str, list[str]]:
    """Every role of `contract` (a `name` of `ROLES`) and its holders at `block`."""
    roles = ROLES[name]
    by_id = {v: k for k, v in roles.items()}
    seen: dict[bytes, set[str]] = {r: set() for r in roles.values()}
    logs = []
    for lo in range(from_block, block + 1, LOG_CHUNK):  # nodes cap the blocks one eth_getLogs spans
        hi = min(lo + LOG_CHUNK - 1, block)
        logs += [*contract.events.RoleGranted().get_logs(from_block=lo, to_block=hi),
                 *contract.events.RoleRevoked().get_logs(from_block=lo, to_block=hi)]
    for log in logs:
        role = bytes(log["args"]["role"])
        if role in seen:
            seen[role].add(to_checksum_address(log["args"]["account"]))
    return {by_id[role]: sorted(a for a in accounts
                                if chain.call(contract.functions.hasRole(role, a), block=block))
            for role, accounts in seen.items()}


def _terms_json(t: Terms) -> dict[str, Any]:
    out = dataclasses.asdict(t)
    out["arbitrator"] = to_checksum_address(t.arbitrator)
    out["arbitrator_extra_data"] = "0x" + t.arbitrator_extra_data.hex()
    return out


def read_configuration(chain: Chain, contracts: Mapping[str, ManifestEntry], block: int | None = None,
                       ) -> Configuration:
    """The configuration of the deployed `contracts` (manifest entries by name) at `block`
    (default: the latest)."""
    at = int(chain.w3.eth.block_number) if block is None else block
    roles: dict[str, dict[str, list[str]]] = {}
    for name, entry in sorted(contracts.items()):
        if name in ROLES:
            contract = chain.contract(name, entry.address)
            roles[name] = role_holders(chain, contract, name, entry.block_number, at)
    panel = treasury = terms_id = terms = delay = None
    if "PanelArbitrator" in contracts:
        arb = chain.contract("PanelArbitrator", contracts["PanelArbitrator"].address)
        epoch, members, threshold, cost = chain.call(arb.functions.panel(), block=at)
        panel = PanelConfig(int(epoch), [to_checksum_address(m) for m in members], int(threshold), int(cost))
    if "FulfillmentEscrow" in contracts:
        esc = chain.contract("FulfillmentEscrow", contracts["FulfillmentEscrow"].address)
        treasury = to_checksum_address(chain.call(esc.functions.treasury(), block=at))
        terms_id = int(chain.call(esc.functions.currentTermsId(), block=at))
        terms = _terms_json(Terms.from_tuple(chain.call(esc.functions.terms(terms_id), block=at)))
    if "AdminTimelock" in contracts:
        tl = chain.contract("AdminTimelock", contracts["AdminTimelock"].address)
        delay = int(chain.call(tl.functions.getMinDelay(), block=at))
    return Configuration(block_number=at, roles=roles, panel=panel, treasury=treasury, terms_id=terms_id,
                         terms=terms, admin_delay=delay)


def config_differences(recorded: Configuration, live: Configuration) -> list[str]:
    """What differs between the manifest's configuration and the chain's, in words."""
    out = []
    for name in sorted(set(recorded.roles) | set(live.roles)):
        mine, theirs = recorded.roles.get(name, {}), live.roles.get(name, {})
        for role in sorted(set(mine) | set(theirs)):
            a, b = set(mine.get(role, [])), set(theirs.get(role, []))
            for who in sorted(b - a):
                out.append(f"{name} {role}: {who} holds the role on chain, the manifest does not list it")
            for who in sorted(a - b):
                out.append(f"{name} {role}: the manifest lists {who}, who no longer holds the role on chain")
    fields: list[tuple[str, Any, Any]] = [
        ("panel", recorded.panel, live.panel), ("treasury", recorded.treasury, live.treasury),
        ("terms version", recorded.terms_id, live.terms_id),
        ("admin delay", recorded.admin_delay, live.admin_delay)]
    for what, was, now in fields:
        if was != now:
            out.append(f"{what}: the manifest says {_show(was)}, the chain says {_show(now)}")
    if recorded.terms_id == live.terms_id and recorded.terms != live.terms:
        keys = sorted(k for k in set(recorded.terms or {}) | set(live.terms or {})
                      if (recorded.terms or {}).get(k) != (live.terms or {}).get(k))
        out.append(f"terms {live.terms_id}: differ in {', '.join(keys)}")
    return out


def _show(v: Any) -> str:
    if isinstance(v, PanelConfig):
        return (f"epoch {v.epoch}, {v.threshold} of [{', '.join(v.members)}], cost {v.cost} wei")
    return "nothing" if v is None else str(v)
