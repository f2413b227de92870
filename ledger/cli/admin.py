"""`ledger admin`: change the escrow's terms, deposit ratio, treasury, fees, arbitrator panel,
carriers and tokens; with a timelocked deployment, schedule the change and execute it after
the delay (docs/escrow.md, "Admin changes").

Every change command builds the admin calls and hands them to `ledger.escrow.admin.Admin`:
sent at once without a timelock, scheduled as one operation with it. `show` lists the
scheduled operations; `execute` and `cancel` act on one. `role` grants, revokes and renounces
the contracts' AccessControl roles, lists their holders and hands an admin role over in two
steps (`ledger.escrow.roles` says what it refuses, and why). `sweep` and `panel-fees` send
what the escrow holds beyond its books, and the panel's earned fees.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from eth_utils import is_address, to_checksum_address

from ledger._internal.rfc3339 import rfc3339
from ledger.chain.keys import resolve_signer
from ledger.cli._common import (
    KEYREF_HELP,
    add_json,
    add_rpc,
    add_tx_options,
    address_of,
    address_or_keyref,
    admin_for,
    amount,
    bounded,
    cost_text,
    data_dir,
    duration,
    emit,
    keyref,
    note_admin_change,
    open_chain,
    open_store,
    submitted_out,
    tx_costs,
)
from ledger.deploy import deployed, escrow_client, meta_evidence_uri, read_manifest
from ledger.errors import ConfigError, DeploymentError
from ledger.escrow.admin import Admin
from ledger.escrow.calls import Call
from ledger.escrow.roles import ROLE_CONTRACTS, RoleChange, RoleRefused, Roles, removals_in
from ledger.escrow.types import NATIVE, panel_extra_data

__all__ = ["configure"]

#: `ledger admin terms` options: option -> Terms field (windows take durations)
_TERM_OPTIONS = {
    "fee_bps": ("--fee-bps", "platform fee on the merchant's released share, bps"),
    "reserve_bps": ("--reserve-bps", "risk-reserve contribution, bps"),
    "compensation_bps": ("--compensation-bps", "fraud compensation from the deposit, bps of the price"),
    "delivery_window": ("--delivery-window", "shipped -> delivered at the latest"),
    "return_ship_window": ("--return-ship-window", "return requested -> shipped back"),
    "return_delivery_window": ("--return-delivery-window", "return shipped -> delivered"),
    "return_inspection_window": ("--return-inspection-window", "return delivered -> merchant may dispute"),
    "response_window": ("--response-window", "dispute opened -> the respondent's answer"),
    "arbitration_window": ("--arbitration-window", "dispute opened -> the arbitrator's ruling"),
    "deposit_ratio_bps": ("--deposit-ratio", "deposit each new order locks, bps of its price"),
}


def _terms_call(admin: Admin, changes: dict[str, Any], extra_data: bytes | None = None) -> Call:
    """setTerms: the current terms with `changes` (a new version for orders funded after it)."""
    current = admin.client.terms()
    terms = dataclasses.replace(current, **changes)
    if extra_data is not None:
        terms = dataclasses.replace(terms, arbitrator_extra_data=extra_data)
    if terms == current:
        raise ConfigError("nothing to change: the new terms equal the current ones")
    return admin.client.calls.set_terms(terms, meta_evidence_uri(terms))


def _change(admin: Admin, args: argparse.Namespace) -> tuple[list[Call], dict[str, Any]]:
    """The admin calls a change command asks for (and what to add to its output)."""
    calls, what = admin.client.calls, args.admin_cmd
    extra: dict[str, Any] = {}
    if what == "terms":
        changes = {f: getattr(args, f) for f in _TERM_OPTIONS if getattr(args, f) is not None}
        if not changes:
            raise ConfigError("ledger admin terms: name at least one field to change (see --help)")
        todo = [_terms_call(admin, changes)]
    elif what == "deposit-ratio":
        todo = [_terms_call(admin, {"deposit_ratio_bps": args.bps})]
    elif what == "treasury":
        todo = [calls.set_treasury(address_of(admin.chain, args.treasury))]
    elif what == "fees":
        token = NATIVE if args.token.upper() == "ETH" else to_checksum_address(args.token)
        todo = [calls.withdraw_fees(token, args.amount)]
    elif what == "arbitrator":
        arb = admin.client.arbitrator
        if arb is None:
            raise ConfigError("this deployment has no PanelArbitrator")
        members = [address_of(admin.chain, ref) for ref in args.panel.split(",")]
        threshold = args.threshold or len(members) // 2 + 1
        if not len(members) // 2 < threshold <= len(members):
            raise ConfigError(f"--threshold {threshold}: a panel of {len(members)} needs a strict majority")
        epoch = int(admin.chain.call(arb.functions.panel())[0]) + 1
        # One operation: the new epoch, and terms naming it (for orders funded after both apply).
        todo = [calls.set_panel(members, threshold, args.cost),
                _terms_call(admin, {}, extra_data=panel_extra_data(epoch))]
        extra = {"panel_epoch": epoch}
    elif what == "carrier":
        todo = [calls.set_carrier(address_of(admin.chain, args.address), args.action == "add")]
    elif what == "token":
        todo = [calls.set_token_allowed(to_checksum_address(args.address), args.action == "allow")]
    elif what == "panel-fees":
        to = address_of(admin.chain, args.to)
        if int(to, 16) == 0:
            raise ConfigError("--to: refusing to send the panel's fees to the zero address")
        todo = [calls.withdraw_panel_fees(to, args.amount)]
    else:  # pragma: no cover - argparse restricts the choices
        raise ConfigError(f"unknown admin command {what!r}")
    return todo, extra


def cmd_admin(args: argparse.Namespace) -> int:  # long function: one branch per subcommand
    what = args.admin_cmd
    if what == "role":
        return cmd_role(args)
    if what in ("show", "execute", "cancel"):
        admin, contract_roles = _role_admin(args)
    else:
        admin, contract_roles = admin_for(args), {}
    if what == "show":
        ops = admin.operations()
        tl = admin.timelock
        payload = {"timelock": tl.address if tl is not None else None, "delay": admin.delay,
                   "operations": [op.to_json() for op in ops]}
        head = (f"admin timelock {tl.address}, delay {admin.delay} s" if tl is not None
                else "no admin timelock: admin changes apply at once")
        lines = [head] + [f"0x{op.id.hex()} {op.status}"
                          + (f" (from {rfc3339(op.ready_at)})" if op.ready_at else "")
                          + "".join(f"\n  {c}" for c in op.calls) for op in ops]
        emit(args, payload, "\n".join(lines))
        return 0
    if what in ("execute", "cancel"):
        op_id = bytes.fromhex(args.operation.removeprefix("0x"))
        if what == "execute":  # role removals are checked again against the holders now
            op = admin.operation(op_id)
            removals = removals_in(list(contract_roles.values()), op.targets, op.payloads)
            for name, removed in removals.items():
                contract_roles[name].check_removals(removed)
        receipt = admin.execute(op_id) if what == "execute" else admin.cancel(op_id)
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        done = {"execute": "executed", "cancel": "cancelled"}[what]
        if what == "execute":
            note_admin_change(args, admin.chain, f"timelock operation {args.operation} executed", [tx])
        costs = tx_costs(admin.chain, [receipt])
        emit(args, {"operation": args.operation, done: True, "tx_hash": tx, **costs},
             f"operation {args.operation} {done} (tx {tx}; {cost_text(costs)})")
        return 0
    if what == "sweep":  # anyone may: it only sends what no book counts, to the treasury
        return submitted_out(args, admin.submit([admin.client.calls.sweep(_token_arg(args.token))],
                                                at_once=True), chain=admin.chain)
    todo, extra = _change(admin, args)
    if admin.timelock is not None and any(c.label == "setTerms" for c in todo):
        # setTerms publishes whole terms, built from the current version: of two pending
        # operations that both publish terms, the one executed last wins.
        waiting = [op for op in admin.operations() if op.status in ("pending", "ready")
                   and any(".setTerms(" in c for c in op.calls)]
        if waiting:
            extra["warning"] = (
                "operation(s) " + ", ".join("0x" + op.id.hex() for op in waiting) + " also publish "
                "terms; each was built from the terms current when it was scheduled, so the one "
                "executed last decides every field: execute or cancel them first")
    return submitted_out(args, admin.submit(todo), extra, chain=admin.chain)


# --- roles (`ledger admin role ...`) --------------------------------------------------------

def _role_admin(args: argparse.Namespace) -> tuple[Admin, dict[str, Roles]]:
    """The admin side with the manifest's AdminTimelock whenever one is deployed (a role may be
    administered by it whoever holds the escrow's), and the roles of every deployed contract."""
    chain = open_chain(args)
    ddir = data_dir(args)
    manifest = read_manifest(ddir, chain.chain_id)
    if manifest is None:
        raise DeploymentError(f"no deployment for chain {chain.chain_id} in {ddir}: "
                              "run `ledger deploy` first")
    roles = {n: Roles(chain, n, deployed(chain, ddir, n), e.block_number)
             for n in ROLE_CONTRACTS if (e := manifest.contracts.get(n)) is not None}
    client = escrow_client(chain, ddir) if {"FulfillmentEscrow", "PanelArbitrator"} <= set(roles) else None
    tl = roles.get("AdminTimelock")
    sender = resolve_signer(args.as_, chain) if getattr(args, "as_", None) else chain.default_account
    log = {"EvidenceLog": roles["EvidenceLog"].contract} if "EvidenceLog" in roles else {}
    admin = Admin(client, tl.contract if tl else None, sender, from_block=tl.from_block if tl else 0,
                  chain=chain, contracts=log)
    return admin, roles


def _roles_of(roles: dict[str, Roles], name: str) -> Roles:
    if name not in roles:
        raise DeploymentError(f"--contract {name}: not deployed on this chain (the manifest names "
                              f"{', '.join(roles) or 'no contract'})")
    return roles[name]


def _contract_type(text: str) -> str:
    for name in ROLE_CONTRACTS:
        if text.strip().lower() == name.lower():
            return name
    raise argparse.ArgumentTypeError(f"not a contract with roles: {text[:40]!r} "
                                     f"(one of {', '.join(ROLE_CONTRACTS)})")


def _via_timelock(admin: Admin, r: Roles, role: str) -> bool:
    """Whether a change of `role` goes through the timelock: it holds the role that administers it."""
    tl = admin.timelock
    return tl is not None and r.has(r.admin_role_of(role), tl.address)


def _role_list(args: argparse.Namespace, roles: dict[str, Roles]) -> int:
    payload: dict[str, Any] = {}
    lines: list[str] = []
    for r in [_roles_of(roles, args.contract)] if args.contract else roles.values():
        rows = [{"role": role, "id": "0x" + rid.hex(), "admin_role": r.admin_role_of(role),
                 "holders": r.holders(role)} for role, rid in r.ids.items()]
        payload[r.name] = {"address": r.contract.address, "roles": rows}
        lines.append(f"{r.name} {r.contract.address}")
        lines += [f"  {x['role']:<10} {', '.join(x['holders']) or 'nobody'} (granted and revoked by "
                  f"the {x['admin_role']} role)" for x in rows]
    emit(args, payload, "\n".join(lines))
    return 0


def _no_pending_anchor(args: argparse.Namespace, r: Roles, account: str) -> None:
    """Refuse taking the anchorer role from an account with an anchor still pending: it would
    revert, or be abandoned, instead of anchoring the head the store already signed."""
    path = data_dir(args) / "evidence.sqlite3"
    if not path.exists():
        return
    try:
        store = open_store(args)
    except ConfigError as exc:
        raise ConfigError(f"taking the anchorer role first checks {path} for anchors still "
                          f"pending: {exc}") from None
    with store:
        pending = [a for a in store.anchors(r.chain.chain_id, contract=r.contract.address, status="sent")
                   if a.sender.lower() == account.lower()]
    if pending:
        a = pending[-1]
        raise RoleRefused(f"{account} has an anchor still pending on {r.name} (head size {a.size}, tx "
                          f"0x{a.tx_hash.hex()}): without the anchorer role it would revert. Run `ledger "
                          "resume` until it is settled, then take the role")


def _change_role(args: argparse.Namespace, admin: Admin, r: Roles) -> int:
    """grant, revoke or renounce ROLE ACCOUNT, checked, then sent or scheduled."""
    role, what = r.canonical(args.role), args.role_cmd
    account = address_of(admin.chain, args.account)
    tl = admin.timelock
    if what == "renounce" and not (tl is not None and account == tl.address):
        # renounceRole is sent by the account itself (the timelock renounces through itself)
        signer = resolve_signer(args.account, admin.chain) if not is_address(args.account) else \
            admin.sender if admin.sender.address == account else None
        if signer is None:
            raise RoleRefused(f"renounceRole is sent by {account} itself: give ACCOUNT as its KEYREF, "
                              "or sign with --as KEYREF of that account")
        admin.sender, via = signer, False
    else:
        via = what == "renounce" or _via_timelock(admin, r, role)
    if not via and what != "renounce":
        guard = r.admin_role_of(role)
        if not r.has(guard, admin.sender.address):
            raise RoleRefused(
                f"{admin.sender.address} does not hold {r.name}'s {guard} role, which grants and "
                f"revokes its {role} role: sign with --as KEYREF of a holder "
                f"({', '.join(r.holders(guard)) or 'none'})")
    change = RoleChange(what, role, account)
    call = r.call(change)  # refuses a no-op and a grant to the zero address
    if what != "grant":
        r.check_removals([(role, account)], signer=None if via else admin.sender.address)
        if r.name == "EvidenceLog" and role == "anchorer":
            _no_pending_anchor(args, r, account)
    return submitted_out(args, admin.submit([call], at_once=not via), {"role": role, "account": account},
                         chain=admin.chain)


def _handover(args: argparse.Namespace, admin: Admin, r: Roles) -> int:
    """Step 1: grant the admin role to the new holder; the old holders keep theirs."""
    to = address_of(admin.chain, args.to)
    call = r.call(RoleChange("grant", "admin", to))
    via = _via_timelock(admin, r, "admin")
    if not via and not r.has("admin", admin.sender.address):
        raise RoleRefused(f"{admin.sender.address} does not hold {r.name}'s admin role: sign with --as "
                          f"KEYREF of an admin ({', '.join(r.holders('admin')) or 'none'})")
    nxt = (f"then the new admin proves its key and removes the others: `ledger admin role accept "
           f"--contract {r.name} --key KEYREF` (KEYREF: {to}'s key)")
    return submitted_out(args, admin.submit([call], at_once=not via),
                         {"role": "admin", "account": to, "next": nxt}, chain=admin.chain)


def _accept(args: argparse.Namespace, admin: Admin, r: Roles) -> int:
    """Step 2: the new admin's own key revokes the other admins (signing is the proof)."""
    new = resolve_signer(args.key, admin.chain)
    if not r.has("admin", new.address):
        raise RoleRefused(
            f"{new.address} (the --key given) does not hold {r.name}'s admin role, so it cannot accept "
            f"it: `ledger admin role handover --contract {r.name} --to {new.address}` hands it over "
            "(and, scheduled, `ledger admin execute` once ready)")
    old = [h for h in r.holders("admin") if h != new.address]
    if args.from_:
        leaving = address_of(admin.chain, args.from_)
        if leaving not in old:
            raise RoleRefused(f"--from {leaving}: not an admin of {r.name} besides {new.address}")
        old = [leaving]
    if not old:
        raise RoleRefused(f"{new.address} is already {r.name}'s only admin: nothing to accept")
    r.check_removals([("admin", o) for o in old], signer=new.address)
    admin.sender = new
    calls = [r.call(RoleChange("revoke", "admin", o)) for o in old]
    return submitted_out(args, admin.submit(calls, at_once=True),
                         {"role": "admin", "account": new.address, "revoked": old}, chain=admin.chain)


def cmd_role(args: argparse.Namespace) -> int:
    admin, roles = _role_admin(args)
    if args.role_cmd == "list":
        return _role_list(args, roles)
    r = _roles_of(roles, args.contract)
    if args.role_cmd == "handover":
        return _handover(args, admin, r)
    if args.role_cmd == "accept":
        return _accept(args, admin, r)
    return _change_role(args, admin, r)


def _configure_roles(rp: argparse.ArgumentParser, options: Any) -> None:
    sub = rp.add_subparsers(dest="role_cmd", required=True, metavar="ACTION")

    def action(n: str, help_: str, *, contract_required: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(n, help=help_, description=help_)
        options(p)
        p.add_argument("--contract", required=contract_required, type=_contract_type,
                       help=f"one of {', '.join(ROLE_CONTRACTS)}")
        return p

    action("list", "every role of a contract (default: of every deployed one) and its holders now: from "
           "its RoleGranted events, each confirmed with hasRole", contract_required=False)
    for verb, help_ in (("grant", "grant ROLE to ACCOUNT (never to the zero address)"),
                        ("revoke", "revoke ROLE from ACCOUNT (refused if it would leave the admin role "
                         "with no holder, or only with accounts that never proved a key)"),
                        ("renounce", "ACCOUNT gives up ROLE, signing itself (ACCOUNT as KEYREF, or --as); "
                         "refused as revoke is")):
        p = action(verb, help_ + "; scheduled when the admin timelock administers ROLE")
        p.add_argument("role", help="a role name from `ledger admin role list` (admin, anchorer, "
                       "proposer, ...)")
        p.add_argument("account", type=address_or_keyref, help="address or KEYREF")
    p = action("handover", "admin handover, step 1: grant the admin role to the new holder (the old "
               "ones keep it until the new one accepts)")
    p.add_argument("--to", required=True, type=address_or_keyref, help="the new admin: address or KEYREF")
    p = action("accept", "admin handover, step 2: the new admin's own key revokes the other admins "
               "(signing proves it holds the key)")
    p.add_argument("--key", required=True, type=keyref, help="the new admin's KEYREF")
    p.add_argument("--from", dest="from_", type=address_or_keyref,
                   help="revoke only this admin (default: every other admin)")


def _token_arg(text: str) -> str:
    return NATIVE if text.strip().upper() == "ETH" else to_checksum_address(text.strip())


def _token_type(text: str) -> str:
    if text.strip().upper() != "ETH" and not is_address(text.strip()):
        raise argparse.ArgumentTypeError(f"not ETH or an ERC-20 address: {text[:80]!r}")
    return text.strip()


def _erc20(text: str) -> str:
    if not is_address(text):
        raise argparse.ArgumentTypeError(f"not an ERC-20 address: {text[:80]!r}")
    return text


def _options(p: argparse.ArgumentParser) -> None:
    add_rpc(p)
    add_tx_options(p)
    add_json(p)
    p.add_argument("--as", dest="as_", metavar="KEYREF", type=keyref,
                   help="who signs: the admin, or a proposer/executor of the timelock "
                   "(default: the platform key)")


def configure(name: str, sp: argparse.ArgumentParser) -> None:
    sub = sp.add_subparsers(dest="admin_cmd", required=True, metavar="COMMAND")

    def cmd(n: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(n, help=help_, description=help_, epilog=KEYREF_HELP)
        _options(p)
        return p

    cmd("show", "the admin timelock, its delay and every scheduled operation with its state")
    p = cmd("terms", "publish new terms (the current ones with these fields changed) for orders "
            "funded after the change; open orders keep theirs")
    for field, (opt, help_) in _TERM_OPTIONS.items():
        kind = duration if field.endswith("window") else bounded(0, 10_000, "basis points")
        p.add_argument(opt, dest=field, type=kind, help=help_)
    p = cmd("deposit-ratio", "publish the current terms with another deposit ratio: new orders lock "
            "it; what open orders lock does not change")
    p.add_argument("bps", type=bounded(0, 10_000, "basis points"))
    p = cmd("treasury", "set where accrued platform fees are sent")
    p.add_argument("treasury", type=address_or_keyref, help="address or KEYREF")
    p = cmd("fees", "send accrued platform fees (never more) to the treasury")
    p.add_argument("--token", required=True, type=_token_type, help="ETH or an ERC-20 address")
    p.add_argument("--amount", required=True, type=amount, help="base units")
    p = cmd("arbitrator", "publish a new panel epoch (members, threshold, cost) and terms naming it: "
            "orders funded after both apply are decided by it")
    p.add_argument("--panel", required=True, help="members: addresses or KEYREFs, comma-separated")
    p.add_argument("--threshold", type=bounded(1, 32, "a number of votes"), help="default: a majority")
    p.add_argument("--cost", type=amount, default=0, help="arbitration cost in wei (default 0)")
    p = cmd("carrier", "register or remove a carrier's signing address")
    p.add_argument("action", choices=["add", "remove"])
    p.add_argument("address", type=address_or_keyref, help="address or KEYREF")
    p = cmd("token", "allow or disallow an ERC-20 for new orders")
    p.add_argument("action", choices=["allow", "disallow"])
    p.add_argument("address", type=_erc20, help="ERC-20 address")
    p = cmd("sweep", "send what the escrow holds of a token beyond its books (sent to it by mistake) to "
            "the treasury; anyone may, so it is sent at once, never scheduled")
    p.add_argument("--token", required=True, type=_token_type, help="ETH or an ERC-20 address")
    p = cmd("panel-fees", "send the panel's earned dispute fees (never the held ones) to an address")
    p.add_argument("--to", required=True, type=address_or_keyref, help="address or KEYREF")
    p.add_argument("--amount", required=True, type=amount, help="wei")
    role_help = ("AccessControl roles of the deployed contracts: list, grant, revoke, renounce, and a "
                 "two-step admin handover (handover, then accept)")
    _configure_roles(sub.add_parser("role", help=role_help, description=role_help), _options)
    for verb in ("execute", "cancel"):
        p = cmd(verb, f"{verb} a scheduled operation" + (" once its delay has passed" if verb == "execute"
                                                          else " before it runs (a proposer)"))
        p.add_argument("operation", help="operation id (0x…, from `ledger admin show`)")
    sp.set_defaults(func=cmd_admin)
