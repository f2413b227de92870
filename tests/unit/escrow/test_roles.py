"""Roles: holders from events confirmed with hasRole; removals that would lock the operator out
are refused before anything is sent; a grant to the zero address too."""

from __future__ import annotations

import pytest

from ledger.chain.keys import dev_keys
from ledger.chain.rpc import Chain
from ledger.escrow.roles import RoleChange, RoleRefused, Roles, removals_in

NOBODY = "0x1111111111111111111111111111111111111112"


def _log(chain: Chain) -> Roles:
    contract = chain.deploy("EvidenceLog", chain.default_account.address)
    return Roles(chain, "EvidenceLog", contract, int(chain.w3.eth.block_number))


def test_roles_are_named_from_the_contract_and_holders_follow_the_chain(chain: Chain) -> None:
    r = _log(chain)
    me, other = chain.default_account, dev_keys()[2]
    assert list(r.ids) == ["admin", "anchorer"] and r.ids["admin"] == b"\x00" * 32
    assert r.canonical("ANCHORER_ROLE") == r.canonical(" Anchorer ") == "anchorer"
    with pytest.raises(RoleRefused, match="its roles are admin, anchorer"):
        r.role_id("pauser")
    assert r.holders("anchorer") == [me.address] and r.admin_role_of("anchorer") == "admin"
    chain.transact(r.call(RoleChange("grant", "anchorer", other.address)).fn, me)
    assert r.holders("anchorer") == [me.address, other.address]
    chain.transact(r.call(RoleChange("revoke", "anchorer", other.address)).fn, me)
    chain.transact(r.call(RoleChange("grant", "anchorer", other.address)).fn, me)  # granted again
    chain.transact(r.call(RoleChange("renounce", "anchorer", me.address)).fn, me)
    assert r.all_holders() == {"admin": [me.address], "anchorer": [other.address]}


def test_changes_that_do_nothing_or_grant_to_nobody_are_refused(chain: Chain) -> None:
    r = _log(chain)
    me = chain.default_account.address
    with pytest.raises(RoleRefused, match="zero address"):
        r.call(RoleChange("grant", "admin", "0x" + "00" * 20))
    with pytest.raises(RoleRefused, match="already holds"):
        r.call(RoleChange("grant", "admin", me))
    with pytest.raises(RoleRefused, match="does not hold"):
        r.call(RoleChange("revoke", "anchorer", NOBODY))


def test_the_admin_role_keeps_a_holder_that_proved_its_key(chain: Chain) -> None:
    r = _log(chain)
    me = chain.default_account
    with pytest.raises(RoleRefused, match="no holder would be left"):
        r.check_removals([("admin", me.address)])
    r.check_removals([("anchorer", me.address)])  # not vital: the admin can grant it again
    chain.transact(r.call(RoleChange("grant", "admin", NOBODY)).fn, me)  # a typo
    with pytest.raises(RoleRefused, match="never sent a transaction"):
        r.check_removals([("admin", me.address)])
    fresh = chain.w3.eth.account.create()
    chain.transact(r.call(RoleChange("grant", "admin", fresh.address)).fn, me)
    r.check_removals([("admin", me.address)], signer=fresh.address)  # its own signature proves it
    other = dev_keys()[3]
    chain.transact(r.call(RoleChange("grant", "admin", other.address)).fn, me)
    chain.send_eth(other.address, 10**17, me)
    chain.send_eth(me.address, 1, other)  # it has sent a transaction
    r.check_removals([("admin", me.address)])


def test_removals_in_a_batch_are_found_by_contract_and_role(chain: Chain) -> None:
    r = _log(chain)
    me = chain.default_account.address
    revoke = r.call(RoleChange("revoke", "anchorer", me))
    renounce = r.call(RoleChange("renounce", "admin", me))
    grant = r.call(RoleChange("grant", "anchorer", NOBODY))
    calls = [revoke, renounce, grant]
    found = removals_in([r], [c.fn.address for c in calls], [c.calldata for c in calls])
    assert found == {"EvidenceLog": [("anchorer", me), ("admin", me)]}
    assert removals_in([r], [NOBODY], [revoke.calldata]) == {}
