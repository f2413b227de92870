"""Roles of the deployed contracts (OpenZeppelin AccessControl): who holds them, and changes
that can never lock the operator out.

The contracts use plain `AccessControl` (no enumeration, no `AccessControlDefaultAdminRules`:
FulfillmentEscrow is within a kilobyte of EIP-170, so nothing is added on chain). So:

1. Holders are read from the contract's own ``RoleGranted``/``RoleRevoked`` events since
   its deployment block (the manifest's ``block_number``), and every candidate is confirmed
   with ``hasRole`` now; the events only nominate, the contract decides.
2. A role is named as the contract names it, without ``_ROLE``: ``admin``
   (``DEFAULT_ADMIN_ROLE``), ``anchorer``, ``proposer``, ``executor``, ``canceller``; read
   from each contract's ABI, so a role a contract adds is known without a change here.
3. A revoke or renounce is refused (`RoleRefused`, before any transaction) when it would
   leave a *vital* role with no holder: the admin role of every contract, and the proposer
   and executor roles of the AdminTimelock (it administers itself: with no proposer nothing
   can ever be scheduled again, its own roles included). It is also refused when every
   remaining admin is an account that has never shown it controls a key (no code, no
   transaction sent, not the signer of this very change): a typo'd address would otherwise
   be all that is left. The safe way to replace an admin is the two-step handover: grant
   (`handover`), then the new holder's own key revokes the others (`accept`).
4. A grant to the zero address is refused (nobody holds its key).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3.contract import Contract

from ledger.chain.rpc import Chain
from ledger.errors import ConfigError
from ledger.escrow.calls import Call

__all__ = ["ADMIN_ROLE", "ROLE_CONTRACTS", "RoleChange", "RoleRefused", "Roles", "removals_in"]

ADMIN_ROLE = b"\x00" * 32  # OpenZeppelin's DEFAULT_ADMIN_ROLE
ZERO_ADDRESS = "0x" + "00" * 20
LOG_CHUNK = 10_000  # blocks per eth_getLogs (public RPC endpoints refuse wider ranges)

#: the contracts whose roles `ledger admin role` manages, in the order it lists them
ROLE_CONTRACTS = ("EvidenceLog", "FulfillmentEscrow", "PanelArbitrator", "AdminTimelock")

#: roles that must keep a holder, beyond every contract's admin role (see the module docstring)
_VITAL = {"AdminTimelock": ("proposer", "executor")}


class RoleRefused(ConfigError):
    """A role change that would lock the operator out, or makes no sense; nothing was sent."""


@dataclass(frozen=True)
class RoleChange:
    """One grant, revoke or renounce, as a call on the contract."""

    action: str  # "grant" | "revoke" | "renounce"
    role: str  # its name ("admin", "anchorer", ...)
    account: str


def _role_name(constant: str) -> str:
    return "admin" if constant == "DEFAULT_ADMIN_ROLE" else constant.removesuffix("_ROLE").lower()


class Roles:
    """The roles of one deployed contract (see the module docstring)."""

    def __init__(self, chain: Chain, name: str, contract: Contract, from_block: int) -> None:
        self.chain = chain
        self.name = name
        self.contract = contract
        self.from_block = from_block
        self._ids: dict[str, bytes] | None = None

    @property
    def ids(self) -> dict[str, bytes]:
        """Role name -> role id, from the contract's ``*_ROLE`` constants."""
        if self._ids is None:
            abi: list[dict[str, Any]] = [dict(e) for e in self.contract.abi]
            constants = [str(e["name"]) for e in abi
                         if e.get("type") == "function" and str(e.get("name", "")).endswith("_ROLE")
                         and not e.get("inputs") and [o["type"] for o in e.get("outputs", [])] == ["bytes32"]]
            self._ids = {_role_name(c): bytes(self.chain.call(getattr(self.contract.functions, c)()))
                         for c in sorted(constants, key=lambda c: (c != "DEFAULT_ADMIN_ROLE", c))}
        return self._ids

    def canonical(self, role: str) -> str:
        """A role's name from its name or constant ("anchorer", "ANCHORER_ROLE"); `RoleRefused`
        naming the contract's roles when it has no such role."""
        text = role.strip()
        name = _role_name(text.upper()) if text.upper().endswith("_ROLE") else text.lower()
        if name not in self.ids:
            raise RoleRefused(f"{self.name} has no role {role[:40]!r}: its roles are {', '.join(self.ids)}")
        return name

    def role_id(self, role: str) -> bytes:
        return self.ids[self.canonical(role)]

    def name_of(self, role_id: bytes) -> str:
        return next((n for n, r in self.ids.items() if r == role_id), "0x" + role_id.hex())

    def has(self, role: str, account: str) -> bool:
        return bool(self.chain.call(self.contract.functions.hasRole(self.role_id(role),
                                                                    to_checksum_address(account))))

    def admin_role_of(self, role: str) -> str:
        """The name of the role that may grant and revoke `role` (``getRoleAdmin``)."""
        return self.name_of(bytes(self.chain.call(self.contract.functions.getRoleAdmin(self.role_id(role)))))

    def holders(self, role: str) -> list[str]:
        """Who holds `role` now: every account its events ever granted it to, confirmed with
        ``hasRole`` (in the order they were first granted it)."""
        role_id = self.role_id(role)
        latest = int(self.chain.w3.eth.block_number)
        logs = []
        for lo in range(self.from_block, latest + 1, LOG_CHUNK):  # nodes cap one eth_getLogs' range
            logs += self.contract.events.RoleGranted().get_logs(
                from_block=lo, to_block=min(lo + LOG_CHUNK - 1, latest), argument_filters={"role": role_id})
        seen: dict[str, None] = {}
        for log in sorted(logs, key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"]))):
            if bytes(log["args"]["role"]) == role_id:  # a node may ignore the topic filter
                seen.setdefault(to_checksum_address(log["args"]["account"]))
        return [a for a in seen if self.has(role, a)]

    def all_holders(self) -> dict[str, list[str]]:
        return {role: self.holders(role) for role in self.ids}

    # -- the calls, checked -------------------------------------------------------------------
    def call(self, change: RoleChange) -> Call:
        """The contract call of a change, refused (`RoleRefused`) when it changes nothing or
        grants to the zero address. Removals are checked separately (`check_removals`)."""
        role_id, account = self.role_id(change.role), to_checksum_address(change.account)
        held = self.has(change.role, account)
        if change.action == "grant":
            if account == to_checksum_address(ZERO_ADDRESS):
                raise RoleRefused(f"refusing to grant {self.name}'s {change.role} role to the zero "
                                  "address: nobody holds its key")
            if held:
                raise RoleRefused(f"{account} already holds {self.name}'s {change.role} role: "
                                  "nothing to grant")
            return Call(self.contract.functions.grantRole(role_id, account))
        if not held:
            raise RoleRefused(f"{account} does not hold {self.name}'s {change.role} role: nothing to "
                              f"{change.action} (`ledger admin role list --contract {self.name}`)")
        if change.action == "revoke":
            return Call(self.contract.functions.revokeRole(role_id, account))
        return Call(self.contract.functions.renounceRole(role_id, account))

    def check_removals(self, removed: Iterable[tuple[str, str]], *, signer: str | None = None) -> None:
        """Refuse (`RoleRefused`) removing (role, account) pairs that would leave a vital role
        with no holder, or the admin role only with accounts that never proved a key (see the
        module docstring); `signer` signs the change, so it has proved its key."""
        removed = [(role, to_checksum_address(acct)) for role, acct in removed]
        for role in sorted({r for r, _ in removed}):
            if role != "admin" and role not in _VITAL.get(self.name, ()):
                continue
            gone = {a for r, a in removed if r == role}
            left = [h for h in self.holders(role) if h not in gone]
            if not left:
                raise RoleRefused(
                    f"refusing to remove {', '.join(sorted(gone))} from {self.name}'s {role} role: no "
                    f"holder would be left, and nobody could ever {_WHY[role]}. Grant the role to "
                    "its new holder first (for the admin role: `ledger admin role handover`)")
            if role == "admin" and not any(self._proved(a, signer) for a in left):
                raise RoleRefused(
                    f"refusing to remove {', '.join(sorted(gone))} from {self.name}'s admin role: the "
                    f"admin(s) left ({', '.join(left)}) never sent a transaction and hold no code, so "
                    "nothing shows anyone holds their key (a typo'd address?). Let the new admin "
                    f"prove it: `ledger admin role accept --contract {self.name} --key KEYREF`")

    def _proved(self, account: str, signer: str | None) -> bool:
        if signer is not None and to_checksum_address(signer) == account:
            return True
        w3, address = self.chain.w3, to_checksum_address(account)
        return bool(w3.eth.get_code(address)) or int(w3.eth.get_transaction_count(address)) > 0


_WHY = {"admin": "grant or revoke a role of it again (or change anything the admin changes)",
        "proposer": "schedule an admin change again (the timelock administers itself)",
        "executor": "execute a scheduled admin change (the timelock administers itself)"}


def removals_in(roles: Sequence[Roles], targets: Sequence[str], payloads: Sequence[bytes],
                ) -> dict[str, list[tuple[str, str]]]:
    """The role removals a batch of calls makes, by contract name: (role, account) of every
    ``revokeRole``/``renounceRole`` on one of `roles`' contracts."""
    by_address = {r.contract.address: r for r in roles}
    out: dict[str, list[tuple[str, str]]] = {}
    for target, data in zip(targets, payloads, strict=True):
        r = by_address.get(to_checksum_address(target))
        if r is None:
            continue
        try:
            fn, args = r.contract.decode_function_input(data)
        except ValueError:
            continue
        if fn.fn_name in ("revokeRole", "renounceRole"):
            role, account = list(args.values())  # renounceRole's account is "callerConfirmation"
            out.setdefault(r.name, []).append((r.name_of(bytes(role)), str(account)))
    return out
