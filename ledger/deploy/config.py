"""A deployment's configuration as the chain holds it, and its differences from the manifest.

AccessControl does not enumerate a role's holders, so they are read from the contract's own
``RoleGranted`` events since its deployment block and each confirmed with ``hasRole``
(`ledger.escrow.roles.Roles`: only a grant gives a role, so nobody is missed). Everything
else is a view call: the panel's epoch, members, threshold and cost, the escrow's treasury
and current terms, the timelock's delay.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from eth_utils import to_checksum_address

from ledger.chain.rpc import Chain
from ledger.deploy.manifest import Configuration, ManifestEntry, PanelConfig
from ledger.escrow.roles import ROLE_CONTRACTS, Roles
from ledger.escrow.types import Terms

__all__ = ["config_differences", "read_configuration", "role_holders"]

def role_holders(chain: Chain, name: str, address: str, from_block: int) -> dict[str, list[str]]:
    """Every role of the contract `name` at `address` and its holders (sorted), from its
    events since `from_block` confirmed with ``hasRole`` (`ledger.escrow.roles.Roles`)."""
    roles = Roles(chain, name, chain.contract(name, address), from_block)
    return {role: sorted(holders) for role, holders in roles.all_holders().items()}


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
        if name in ROLE_CONTRACTS:
            roles[name] = role_holders(chain, name, entry.address, entry.block_number)
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
