"""`ledger admin`: change the escrow's terms, deposit ratio, treasury, fees, arbitrator panel,
carriers and tokens; with a timelocked deployment, schedule the change and execute it after
the delay (docs/escrow.md, "Admin changes").

Every change command builds the admin calls and hands them to `ledger.escrow.admin.Admin`:
sent at once without a timelock, scheduled as one operation with it. `show` lists the
scheduled operations; `execute` and `cancel` act on one.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from eth_utils import is_address, to_checksum_address

from ledger._internal.rfc3339 import rfc3339
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
    duration,
    emit,
    keyref,
    note_admin_change,
    submitted_out,
)
from ledger.deploy import meta_evidence_uri
from ledger.errors import ConfigError
from ledger.escrow.admin import Admin
from ledger.escrow.calls import Call
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
    else:  # pragma: no cover - argparse restricts the choices
        raise ConfigError(f"unknown admin command {what!r}")
    return todo, extra


def cmd_admin(args: argparse.Namespace) -> int:
    admin = admin_for(args)
    what = args.admin_cmd
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
        receipt = admin.execute(op_id) if what == "execute" else admin.cancel(op_id)
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
        done = {"execute": "executed", "cancel": "cancelled"}[what]
        if what == "execute":
            note_admin_change(args, f"timelock operation {args.operation} executed", [tx])
        emit(args, {"operation": args.operation, done: True, "tx_hash": tx},
             f"operation {args.operation} {done} (tx {tx})")
        return 0
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
    return submitted_out(args, admin.submit(todo), extra)


def _erc20(text: str) -> str:
    if not is_address(text):
        raise argparse.ArgumentTypeError(f"not an ERC-20 address: {text[:80]!r}")
    return text


def configure(name: str, sp: argparse.ArgumentParser) -> None:
    sub = sp.add_subparsers(dest="admin_cmd", required=True, metavar="COMMAND")

    def cmd(n: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(n, help=help_, description=help_, epilog=KEYREF_HELP)
        add_rpc(p)
        add_tx_options(p)
        add_json(p)
        p.add_argument("--as", dest="as_", metavar="KEYREF", type=keyref,
                       help="who signs: the admin, or a proposer/executor of the timelock "
                       "(default: the platform key)")
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
    p.add_argument("--token", required=True, help="ETH or an ERC-20 address")
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
    for verb in ("execute", "cancel"):
        p = cmd(verb, f"{verb} a scheduled operation" + (" once its delay has passed" if verb == "execute"
                                                          else " before it runs (a proposer)"))
        p.add_argument("operation", help="operation id (0x…, from `ledger admin show`)")
    sp.set_defaults(func=cmd_admin)
