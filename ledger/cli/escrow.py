"""`ledger order|deposit|dispute|pledge|withdraw|carrier|token|escrow`: the escrow CLI.

Parties are named by key references, never by literal keys: ``dev:N`` (a development
account of the embedded chain or a local anvil), ``env:VAR`` (a private key in an
environment variable) or ``keystore:PATH`` (an encrypted keystore; password from
LEDGER_KEYSTORE_PASSWORD or LEDGER_KEYSTORE_PASSWORD_FILE, or its own source:
``keystore:PATH?password-file=FILE`` or ``keystore:PATH?password-env=VAR``; `KEYREF_HELP`
is the help text saying so). Where only an address is
needed (a lender, a merchant credited with a deposit) an ``0x`` address works too.
Permissionless steps (carrier attestations, releases, timeout refunds) are sent by the
platform's own key (LEDGER_PRIVATE_KEY / keystore, or dev:0 on a local node).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from ledger._internal.rfc3339 import rfc3339
from ledger.chain.keys import resolve_signer
from ledger.cli._common import (
    KEYREF_HELP,
    add_json,
    add_rpc,
    add_tx_options,
    address,
    address_of,
    address_or_keyref,
    admin_for,
    amount,
    console,
    cost_text,
    data_dir,
    duration,
    emit,
    keyref,
    open_chain,
    open_store,
    price,
    read_input,
    tx_costs,
)
from ledger.deploy import escrow_client
from ledger.errors import ConfigError, LedgerError
from ledger.escrow import payout
from ledger.escrow.admin import Submitted
from ledger.escrow.eip712 import Offer
from ledger.escrow.platform import EscrowStep, Platform
from ledger.escrow.types import NATIVE, ZERO32, OrderState, Ruling, split_ruling

__all__ = ["configure"]


def _token(text: str) -> str:
    """ETH (the native token) or an ERC-20 address, as the escrow names it."""
    return NATIVE if text.upper() == "ETH" else to_checksum_address(text)


def _token_arg(text: str) -> str:
    """A token as given, ETH or an ERC-20 address (an argparse type; `_token` converts it)."""
    if text.upper() != "ETH" and not is_address(text):
        raise argparse.ArgumentTypeError(f"must be ETH or an ERC-20 address, not {text[:80]!r}")
    return text


def _ruling(text: str) -> int:
    names = {r.name.lower(): int(r) for r in Ruling}
    t = text.strip().lower()
    if t in names:
        return names[t]
    if t.startswith("split:"):
        try:
            return split_ruling(int(t[6:]))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    raise argparse.ArgumentTypeError(
        f"unknown ruling {text!r}: refund, release, fraud, refused, or split:BPS (buyer's share)"
    )


class _Ctx:
    """The chain, the store and the deployed escrow for one command.

    Steps an earlier command stored but could not settle (its node stopped answering, or it
    was killed) are resumed first, with their stored bytes, as the outbox protocol asks."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.chain = open_chain(args)
        self.store = open_store(args)
        self.client = escrow_client(self.chain, data_dir(args))
        self.platform = Platform(self.store, self.client, self.chain.default_account)
        self.platform.confirmations = getattr(args, "confirmations", None)
        # A quick look, not a wait: settle what is mined, re-send what the node lost, bump what
        # is underpriced; a step still pending is finished by re-running it, or `ledger resume`.
        for o in self.platform.resume(timeout=0):
            where = f"{o.row.label} tx 0x{o.row.tx_hash.hex()[:12]}…"
            note = "still pending (`ledger resume` waits for it)" if o.status == "sent" else o.status
            console(stderr=True).print(f"an earlier escrow step, {where}: {note}", markup=False)

    def signer(self, ref: str) -> LocalAccount:
        return resolve_signer(ref, self.chain)

    def address(self, ref: str) -> str:
        return address_of(self.chain, ref)

    def close(self) -> None:
        self.store.close()


def _run(args: argparse.Namespace, body: Any) -> int:
    ctx = _Ctx(args)
    try:
        payload, text = body(ctx)
    finally:
        ctx.close()
    emit(args, payload, text)
    return 0


def _step_out(ctx: _Ctx, step: EscrowStep) -> tuple[dict[str, Any], str]:
    state = ctx.client.state(ctx.platform.escrow_id(step.order_id)).name
    block = int(step.receipt["blockNumber"])
    payload: dict[str, Any] = {
        "order_id": step.order_id, "action": step.action, "state": state,
        "tx_hash": "0x" + step.tx_hash.hex(), "block": block,
        "gas_used": step.gas_used, "record_id": step.record_id,
        "evidence": None if step.evidence is None else "0x" + step.evidence.hex(),
    }  # fmt: skip
    costs = tx_costs(ctx.chain, [step.receipt])
    payload.update(cost_wei=costs["cost_wei"],
                   effective_gas_price=costs["transactions"][0]["effective_gas_price"])
    text = (f"{step.action} {step.order_id}: {state} (block {block}, {cost_text(costs)}, "
            f"tx {payload['tx_hash'][:18]}…)")
    if step.record_id and step.evidence is not None:
        text += f"\n  evidence: record {step.record_id} (leaf {step.evidence.hex()[:16]}…)"
    return payload, text


def _load_record(path: str, option: str) -> dict[str, Any]:
    data = read_input(path, option)
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{option} {path}: not a JSON record: {exc}") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{option} {path}: expected one JSON object (a record)")
    return obj


def _hexed(value: Any) -> Any:
    """JSON-able: bytes as 0x-hex (as wallets take bytes32 in eth_signTypedData_v4)."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {k: _hexed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hexed(v) for v in value]
    return value


def _load_signed_offer(path: str) -> dict[str, Any]:
    """An offer signed in the merchant's own wallet: the JSON `ledger order offer` wrote, with
    ``signature`` (65 bytes, 0x-hex) filled in; ``offer`` or ``typed_data.message`` is the offer."""
    data = read_input(path, "--offer")
    try:
        doc = json.loads(data)
        offer = doc.get("offer") or doc["typed_data"]["message"]
        sig = bytes.fromhex(str(doc["signature"]).removeprefix("0x"))
        Offer.from_message(offer)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"--offer {path}: not a signed offer ({type(exc).__name__}: {exc}); expected the "
                          "JSON of `ledger order offer` with \"signature\" filled in") from None
    if len(sig) != 65:
        raise ConfigError(f"--offer {path}: the signature must be 65 bytes (r, s, v), not {len(sig)}")
    return {"record": doc.get("record"), "offer": offer, "signature": sig}


# ------------------------------------------------------------------------------- commands


def _offer_doc(ctx: _Ctx, a: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """`order offer`: the record and the typed data a merchant signs in its own wallet."""
    buyer = NATIVE if a.buyer.lower() == "any" else ctx.address(a.buyer)
    rec, offer = ctx.platform.make_offer(
        _load_record(a.record, "--record"), merchant=ctx.address(a.merchant), buyer=buyer,
        price=a.price, token=_token(a.token), ship_within=a.ship_within,
        inspection_window=a.inspection, offer_ttl=a.offer_ttl,
    )  # fmt: skip
    typed = _hexed(offer.typed_data(ctx.chain.chain_id, ctx.client.address))
    doc = {"record": rec.to_json(), "offer": typed["message"], "typed_data": typed, "signature": None}
    return doc, json.dumps(doc, indent=2)


def _open(ctx: _Ctx, a: argparse.Namespace) -> EscrowStep:
    """`order open`: with the merchant's key here, or with an offer it signed in its wallet."""
    p = ctx.platform
    if a.offer:
        signed = _load_signed_offer(a.offer)
        record = signed.get("record") if a.record is None else _load_record(a.record, "--record")
        if not isinstance(record, dict):
            raise ConfigError("--offer: the file has no \"record\" (the order record the offer commits "
                              "to); give it with --record")
        return p.fund_offer(record, Offer.from_message(signed["offer"]), signed["signature"],
                            buyer=ctx.signer(a.buyer))
    if a.record is None or a.merchant is None or a.price is None:
        raise ConfigError("order open needs --record, --merchant and --price (or --offer, an offer "
                          "the merchant signed)")
    return p.open_order(
        _load_record(a.record, "--record"), merchant=ctx.signer(a.merchant),
        buyer=ctx.signer(a.buyer), price=a.price, token=_token(a.token), ship_within=a.ship_within,
        inspection_window=a.inspection, offer_ttl=a.offer_ttl,
    )  # fmt: skip


def cmd_order(args: argparse.Namespace) -> int:
    def body(ctx: _Ctx) -> tuple[dict[str, Any], str]:
        p, a = ctx.platform, args
        op = a.order_cmd
        if op == "show":
            status = p.status(a.order)
            lines = [f"order {a.order}: {status['state']} price {status['price']} token {status['token']}"
                     + (f" pledged to {status['lender']}" if status["lender"] else "")]
            lines += [f"  record  #{r['index']:<6} {r['id']:<40} {r['kind']:<9} {r['ts']}"
                      for r in status["records"]]
            lines += [f"  action  {x['action']:<16} {x['status']:<9} block {x['block']} gas {x['gas_used']}"
                      + (f"  error: {x['error']}" if x["error"] else "") for x in status["actions"]]
            return status, "\n".join(lines)
        if op == "offer":
            return _offer_doc(ctx, a)
        if op == "open":
            step = _open(ctx, a)
        elif op == "ship":
            step = p.ship(a.order, carrier=ctx.signer(a.carrier), carrier_code=a.carrier_code,
                          tracking_number=a.tracking)
        elif op == "deliver":
            step = p.deliver(a.order, carrier=ctx.signer(a.carrier), method=a.method)
        elif op == "confirm":
            step = p.confirm_delivery(a.order, buyer=ctx.signer(a.buyer))
        elif op == "release":
            step = p.release(a.order, sender=ctx.signer(a.as_) if a.as_ else None)
        elif op == "refund":
            step = p.refund(a.order, sender=ctx.signer(a.as_) if a.as_ else None)
        elif op == "cancel":
            step = p.cancel(a.order, merchant=ctx.signer(a.as_))
        elif op == "return":
            step = p.request_return(a.order, buyer=ctx.signer(a.buyer), amount=a.amount,
                                    reason=a.reason, return_type=a.type, detail=a.detail)
        elif op == "return-ship":
            step = p.ship_return(a.order, carrier=ctx.signer(a.carrier), carrier_code=a.carrier_code,
                                 tracking_number=a.tracking)
        elif op == "return-deliver":
            step = p.deliver_return(a.order, carrier=ctx.signer(a.carrier))
        elif op == "return-confirm":
            step = p.confirm_return(a.order, merchant=ctx.signer(a.as_))
        elif op == "return-settle":
            step = p.settle_return(a.order, sender=ctx.signer(a.as_) if a.as_ else None)
        else:  # pragma: no cover - argparse restricts the choices
            raise ConfigError(f"unknown order command {op}")
        return _step_out(ctx, step)

    return _run(args, body)


def cmd_dispute(args: argparse.Namespace) -> int:
    def body(ctx: _Ctx) -> tuple[dict[str, Any], str]:
        p, a = ctx.platform, args
        op = a.dispute_cmd
        if op == "open":
            statement = _load_record(a.statement, "--statement") if a.statement else None
            step = p.open_dispute(a.order, party=ctx.signer(a.as_), statement=statement,
                                  evidence_record_id=a.record_id)
        elif op == "evidence":
            step = p.submit_evidence(a.order, party=ctx.signer(a.as_), record_id=a.record_id)
        elif op == "vote":
            step = p.vote(a.order, member=ctx.signer(a.member), ruling=a.ruling)
        elif op == "default":
            step = p.claim_default(a.order, opener=ctx.signer(a.as_))
        else:
            step = p.timeout_dispute(a.order)
        return _step_out(ctx, step)

    return _run(args, body)


def cmd_pledge(args: argparse.Namespace) -> int:
    words = list(args.order)
    if len(words) == 2 and words[0] == "show" and args.lender is None:
        words = words[1:]
    if len(words) != 1:
        raise ConfigError(f"ledger pledge: one order id expected (or `show ORDER`), not {' '.join(words)!r}")
    args.order = words[0]

    def body(ctx: _Ctx) -> tuple[dict[str, Any], str]:
        if args.lender is None:
            key = ctx.platform.funded_as(args.order)
            info = ctx.client.order(key or ZERO32)
            if key is None or info.state is OrderState.NONE:
                raise LedgerError(f"unknown order {args.order!r}: no order on chain at escrow "
                                  f"{ctx.client.address}, so nothing is pledged")
            lender = info.lender if info.pledged else None
            open_claims = payout.claims(ctx.client, key)
            payload = {"order_id": args.order, "state": info.state.name, "lender": lender,
                       "price": info.price, "token": info.token, "deadline": info.deadline,
                       "payout_claims": [c.to_json() for c in open_claims]}
            lines = [f"order {args.order}: {info.state.name}, price {info.price}, "
                     + (f"payout pledged to {lender}" if lender else "not pledged")]
            lines.append("what could still reduce the payout:" if open_claims
                         else "nothing: the order is settled")
            lines += [f"  - {c.what} ({c.by}" + (f", until {rfc3339(c.until)})" if c.until else ")")
                      for c in open_claims]
            return payload, "\n".join(lines)
        if args.merchant is None:
            raise ConfigError("pledging needs --merchant KEYREF (the order's merchant signs it)")
        step = ctx.platform.pledge(args.order, merchant=ctx.signer(args.merchant),
                                   lender=ctx.address(args.lender))
        return _step_out(ctx, step)

    return _run(args, body)


def cmd_deposit(args: argparse.Namespace) -> int:
    def body(ctx: _Ctx) -> tuple[dict[str, Any], str]:
        c, a = ctx.client, args
        token = _token(a.token)
        merchant = ctx.address(a.merchant)
        receipts: list[dict[str, Any]] = []
        if a.deposit_cmd == "add":
            payer = ctx.signer(a.from_ or a.merchant)
            approved = c.approve(token, payer, a.amount)  # an ERC-20 first lets the escrow pull it
            receipts += [approved] if approved is not None else []
            receipts.append(c.send(c.calls.deposit_for(merchant, token, a.amount), payer))
        elif a.deposit_cmd == "withdraw":
            if is_address(a.merchant):
                raise ConfigError("--merchant: withdrawing a deposit needs the merchant's KEYREF "
                                  "(the merchant signs it), not an address")
            receipts.append(c.withdraw_deposit(token, a.amount, ctx.signer(a.merchant)))
        have, locked = c.deposit_of(token, merchant)
        payload = {"merchant": merchant, "token": token, "deposit": have, "locked": locked,
                   "free": max(0, have - locked)}
        text = (f"merchant {merchant}: deposit {have}, locked by open orders {locked}, "
                f"withdrawable {max(0, have - locked)} ({a.token})")
        return _with_costs(ctx, receipts, payload, text)

    return _run(args, body)


def cmd_withdraw(args: argparse.Namespace) -> int:
    def body(ctx: _Ctx) -> tuple[dict[str, Any], str]:
        token = _token(args.token)
        who = ctx.signer(args.as_)
        credit = ctx.client.credit_of(token, who.address)
        receipt = ctx.client.withdraw(token, who, args.to)
        payload = {"account": who.address, "token": token, "amount": credit,
                   "to": args.to or who.address, "tx_hash": "0x" + bytes(receipt["transactionHash"]).hex()}
        return _with_costs(ctx, [receipt], payload,
                           f"withdrew {credit} ({args.token}) for {who.address} to {payload['to']}")

    return _run(args, body)


def _with_costs(ctx: _Ctx, receipts: list[dict[str, Any]], payload: dict[str, Any], text: str,
                ) -> tuple[dict[str, Any], str]:
    """A command's output with what its transactions cost (`tx_costs`), if it sent any."""
    if not receipts:
        return payload, text
    costs = tx_costs(ctx.chain, receipts)
    return {**payload, "tx_hashes": [t["tx_hash"] for t in costs["transactions"]], **costs}, (
        f"{text}\n{len(receipts)} transaction(s): {cost_text(costs)}")


def _scheduled(ctx: _Ctx, done: Submitted) -> tuple[dict[str, Any], str]:
    op = done.operation
    assert op is not None
    return _with_costs(ctx, done.receipts, {"scheduled": op.to_json()}, (
        f"scheduled operation 0x{op.id.hex()} ({'; '.join(done.calls)}), executable from "
        f"{rfc3339(op.ready_at)}: run `ledger admin execute 0x{op.id.hex()}` then"))


def cmd_carrier(args: argparse.Namespace) -> int:
    def body(ctx: _Ctx) -> tuple[dict[str, Any], str]:
        addr = ctx.address(args.carrier)
        done = admin_for(args).submit([ctx.client.calls.set_carrier(addr, args.carrier_cmd == "add")])
        if not done.executed:  # timelocked: scheduled
            return _scheduled(ctx, done)
        registered = ctx.client.is_carrier(addr)
        return _with_costs(ctx, done.receipts, {"carrier": addr, "registered": registered},
                           f"carrier {addr} {'registered' if registered else 'removed'}")

    return _run(args, body)


def cmd_token(args: argparse.Namespace) -> int:
    def body(ctx: _Ctx) -> tuple[dict[str, Any], str]:
        token = _token(args.token)
        done = admin_for(args).submit([ctx.client.calls.set_token_allowed(token, args.token_cmd == "allow")])
        if not done.executed:  # timelocked: scheduled
            return _scheduled(ctx, done)
        tid, allowed = ctx.client.token_info(token)
        return _with_costs(ctx, done.receipts, {"token": token, "id": tid, "allowed": allowed},
                           f"token {token}: {'allowed' if allowed else 'not allowed'} for new orders")

    return _run(args, body)


def cmd_escrow(args: argparse.Namespace) -> int:
    def body(ctx: _Ctx) -> tuple[dict[str, Any], str]:
        token = _token(args.token)
        t = ctx.client.totals(token)
        balance = ctx.client.balance(token)
        terms = ctx.client.terms()
        payload = {"escrow": ctx.client.address, "token": token, "balance": balance,
                   "escrowed": t.escrowed, "deposits": t.deposits, "reserve": t.reserve,
                   "fees": t.fees, "credits": t.credits, "books_balance": t.total == balance,
                   "terms": terms.__dict__ | {"arbitrator_extra_data": terms.arbitrator_extra_data.hex()}}
        text = (f"escrow {ctx.client.address} ({args.token}): balance {balance} = escrowed {t.escrowed}"
                f" + deposits {t.deposits} + reserve {t.reserve} + fees {t.fees} + credits {t.credits}"
                f" [{'books balance' if t.total == balance else 'BOOKS DO NOT BALANCE'}]\n"
                f"terms: fee {terms.fee_bps} bps, reserve {terms.reserve_bps} bps, arbitrator "
                f"{terms.arbitrator}")
        return payload, text

    return _run(args, body)


def _common_options() -> argparse.ArgumentParser:
    """Options every step takes, so that they can follow the step: `ledger order ship X --rpc URL`."""
    common = argparse.ArgumentParser(add_help=False)
    add_rpc(common)
    add_tx_options(common)
    add_json(common)
    return common


def _order_args(sp: argparse.ArgumentParser) -> None:  # long function: one argparse table
    common = _common_options()
    osub = sp.add_subparsers(dest="order_cmd", required=True, metavar="STEP")

    def step(name: str, help_: str, *, order: bool = True) -> argparse.ArgumentParser:
        p = osub.add_parser(name, help=help_, description=help_, parents=[common], epilog=KEYREF_HELP)
        if order:
            p.add_argument("order", metavar="ORDER", help="evidence-log order id")
        return p

    p = step("offer", "the offer a merchant signs in its own wallet: the order record (ts filled in) and "
             "the EIP-712 typed data (eth_signTypedData_v4), as JSON; nothing is stored or sent", order=False)
    p.add_argument("--record", required=True,
                   help="the order record, id ORDER_ID:order (JSON file, or - for stdin)")
    p.add_argument("--merchant", required=True, type=address_or_keyref, help="address or KEYREF")
    p.add_argument("--buyer", required=True, help="address, KEYREF, or 'any' (whoever funds it)")
    p.add_argument("--price", required=True, type=price, help="in the token's base units")
    p.add_argument("--token", default="ETH", type=_token_arg, help="ETH or an allowed ERC-20 address")
    p.add_argument("--ship-within", type=duration, default=3 * 86400, help="ship-by, from now (3d)")
    p.add_argument("--inspection", type=duration, default=3 * 86400, help="inspection window (3d)")
    p.add_argument("--offer-ttl", type=duration, default=3600, help="offer expiry (1h)")
    p = step("open", "log the order record, the merchant signs the offer (or brings one it signed: "
             "--offer), the buyer funds it", order=False)
    p.add_argument("--record", help="the order record, id ORDER_ID:order (JSON file, or - for stdin)")
    p.add_argument("--offer", metavar="FILE", help="an offer the merchant signed in its own wallet: the JSON "
                   "of `ledger order offer` with \"signature\" filled in (or - for stdin)")
    p.add_argument("--merchant", metavar="KEYREF", type=keyref, help="the merchant signs here (no --offer)")
    p.add_argument("--buyer", required=True, metavar="KEYREF", type=keyref)
    p.add_argument("--price", type=price, help="in the token's base units (no --offer)")
    p.add_argument("--token", default="ETH", type=_token_arg, help="ETH or an allowed ERC-20 address")
    p.add_argument("--ship-within", type=duration, default=3 * 86400, help="ship-by, from now (3d)")
    p.add_argument("--inspection", type=duration, default=3 * 86400, help="inspection window (3d)")
    p.add_argument("--offer-ttl", type=duration, default=3600, help="offer expiry (1h)")
    p = step("ship", "a registered carrier attests the shipment")
    p.add_argument("--carrier", required=True, metavar="KEYREF", type=keyref)
    p.add_argument("--carrier-code", required=True, help="e.g. SF")
    p.add_argument("--tracking", required=True, help="the tracking number")
    p = step("deliver", "the carrier attests delivery of the shipped parcel")
    p.add_argument("--carrier", required=True, metavar="KEYREF", type=keyref)
    p.add_argument("--method", default="doorstep", choices=["signed", "locker", "doorstep", "pickup"])
    p = step("confirm", "the buyer confirms delivery itself")
    p.add_argument("--buyer", required=True, metavar="KEYREF", type=keyref)
    for name, help_ in (("release", "release after the inspection window (anyone)"),
                        ("refund", "refund on timeout: not shipped, or not delivered, in time (anyone)"),
                        ("return-settle", "settle a return on timeout (anyone)")):
        p = step(name, help_)
        p.add_argument("--as", dest="as_", metavar="KEYREF", type=keyref,
                       help="sender (default: the platform key)")
    p = step("cancel", "the merchant (the lender once the payout is pledged) refunds the buyer in full")
    p.add_argument("--as", "--merchant", dest="as_", required=True, metavar="KEYREF", type=keyref,
                   help="the merchant, or the lender once the payout is pledged")
    p = step("return", "the buyer requests a full or partial return within the inspection window")
    p.add_argument("--buyer", required=True, metavar="KEYREF", type=keyref)
    p.add_argument("--amount", required=True, type=amount, help="refund in the token's base units")
    p.add_argument("--reason", default="not_as_described")
    p.add_argument("--type", default="return_and_refund", choices=["refund_only", "return_and_refund"])
    p.add_argument("--detail")
    p = step("return-ship", "a carrier attests the return parcel's shipment")
    p.add_argument("--carrier", required=True, metavar="KEYREF", type=keyref)
    p.add_argument("--carrier-code", required=True)
    p.add_argument("--tracking", required=True)
    p = step("return-deliver", "a carrier attests the return parcel's delivery to the merchant")
    p.add_argument("--carrier", required=True, metavar="KEYREF", type=keyref)
    p = step("return-confirm", "the merchant (the lender once the payout is pledged) accepts the "
             "return: refund now, release the rest")
    p.add_argument("--as", "--merchant", dest="as_", required=True, metavar="KEYREF", type=keyref,
                   help="the merchant, or the lender once the payout is pledged")
    step("show", "the order on chain, its evidence records and the escrow actions taken")
    sp.set_defaults(func=cmd_order)


def _dispute_args(sp: argparse.ArgumentParser) -> None:
    common = _common_options()
    dsub = sp.add_subparsers(dest="dispute_cmd", required=True, metavar="STEP")

    def dstep(name: str, help_: str) -> argparse.ArgumentParser:
        return dsub.add_parser(name, help=help_, description=help_, parents=[common],
                               epilog=KEYREF_HELP)

    p = dstep("open", "open a dispute citing an evidence record (pays the arbitration cost)")
    p.add_argument("order", metavar="ORDER")
    p.add_argument("--as", dest="as_", required=True, metavar="KEYREF", type=keyref,
                   help="the buyer or the merchant")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--record-id", help="an existing record, e.g. ORDER:dlv")
    g.add_argument("--statement", help="a new record (JSON file) stating the complaint")
    p = dstep("evidence", "submit a log record as ERC-1497 evidence")
    p.add_argument("order", metavar="ORDER")
    p.add_argument("--as", dest="as_", required=True, metavar="KEYREF", type=keyref)
    p.add_argument("--record-id", required=True)
    p = dstep("vote", "a panel member votes")
    p.add_argument("order", metavar="ORDER")
    p.add_argument("--member", required=True, metavar="KEYREF", type=keyref)
    p.add_argument("--ruling", required=True, type=_ruling,
                   help="refund, release, fraud, refused, or split:BPS (the buyer's share)")
    p = dstep("default", "the opener wins: the respondent did not answer in time")
    p.add_argument("order", metavar="ORDER")
    p.add_argument("--as", dest="as_", required=True, metavar="KEYREF", type=keyref)
    p = dstep("timeout", "the arbitrator never ruled: split 50/50 (anyone)")
    p.add_argument("order", metavar="ORDER")
    sp.set_defaults(func=cmd_dispute)


def configure(name: str, sp: argparse.ArgumentParser) -> None:
    if name == "order":
        _order_args(sp)
        return
    if name == "dispute":
        _dispute_args(sp)
        return
    add_rpc(sp)
    add_tx_options(sp)
    add_json(sp)
    sp.epilog = KEYREF_HELP
    if name == "pledge":
        sp.add_argument("order", metavar="ORDER", nargs="+",
                        help="the order (`ledger pledge show ORDER` is the same as `ledger pledge ORDER`)")
        sp.add_argument("--lender", type=address_or_keyref, help="address or KEYREF; omit to show the pledge")
        sp.add_argument("--merchant", metavar="KEYREF", type=keyref,
                        help="the order's merchant (signs the pledge)")
        sp.set_defaults(func=cmd_pledge)
    elif name == "deposit":
        sp.add_argument("deposit_cmd", choices=["add", "withdraw", "show"])
        sp.add_argument("--merchant", required=True, type=address_or_keyref,
                        help="address or KEYREF (KEYREF to withdraw)")
        sp.add_argument("--amount", type=amount, default=0, help="in the token's base units")
        sp.add_argument("--token", default="ETH", type=_token_arg)
        sp.add_argument("--from", dest="from_", metavar="KEYREF", type=keyref,
                        help="who pays a deposit (default: the merchant)")
        sp.set_defaults(func=cmd_deposit)
    elif name == "withdraw":
        sp.add_argument("--as", dest="as_", required=True, metavar="KEYREF", type=keyref)
        sp.add_argument("--token", default="ETH", type=_token_arg)
        sp.add_argument("--to", type=address, help="recipient address (default: the account itself)")
        sp.set_defaults(func=cmd_withdraw)
    elif name == "carrier":
        sp.add_argument("carrier_cmd", choices=["add", "remove"])
        sp.add_argument("carrier", type=address_or_keyref, help="address or KEYREF")
        sp.set_defaults(func=cmd_carrier)
    elif name == "token":
        sp.add_argument("token_cmd", choices=["allow", "disallow"])
        sp.add_argument("token", type=_token_arg, help="ERC-20 address")
        sp.set_defaults(func=cmd_token)
    elif name == "escrow":
        sp.add_argument("--token", default="ETH", type=_token_arg)
        sp.set_defaults(func=cmd_escrow)
