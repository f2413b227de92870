"""FulfillmentEscrow and PanelArbitrator through `EscrowClient`.

Every transition and every forbidden one: each rejection asserts the exact custom error and
its values; each settlement checks credits, the per-token books (whose sum must equal the
escrow's real balance), real token/ETH movements on withdrawal, and the events. Every test
runs on the embedded py-evm chain and on anvil (see conftest's `chain`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain.abi import decode_revert
from ledger.chain.keys import labelled_key
from ledger.deploy import DEFAULT_DEPOSIT_RATIO_BPS, deploy_escrow
from ledger.dev.sandbox import MERCHANT_DEPOSIT, EscrowEnv
from ledger.errors import ConfigError, ContractRevert
from ledger.escrow.client import EscrowClient
from ledger.escrow.eip712 import (
    Attestation,
    Offer,
    canonical_tracking,
    escrow_order_id,
    recover_signer,
    sign_attestation,
    sign_offer,
    tracking_hash,
)
from ledger.escrow.types import (
    BPS,
    DAY,
    HOUR,
    MIN_PRICE,
    NATIVE,
    RULING_SPLIT_BASE,
    ZERO32,
    Party,
    Resolution,
    Ruling,
    panel_extra_data,
    split_ruling,
)
from ledger.escrow.types import OrderState as S

ETH = NATIVE
PRICE = 1_234_567_891  # 1234.567891 TUSD: not round, so the fee and reserve round down
ETH_PRICE = 3 * 10**17 + 7
EVIDENCE = keccak(text="leaf:42:evidence record")
ADMIN_ROLE = "0x" + "00" * 32
DEPOSIT = MERCHANT_DEPOSIT  # the sandbox's per-merchant deposit in TUSD
RATIO_BPS = DEFAULT_DEPOSIT_RATIO_BPS  # the sandbox deploys with the default ratio
RULING_OPTIONS = RULING_SPLIT_BASE + BPS  # ruling 4 + b: the buyer gets b bps
RECEIVER_REJECTS, RECEIVER_REENTERS = 1, 2  # MaliciousReceiver.Mode

IN_RETURN = (S.RETURNING, S.RETURN_SHIPPED, S.RETURN_DELIVERED)


def mask(*states: S) -> int:
    """The `expectedStates` bit mask of EscrowUnexpectedState."""
    return sum(1 << int(s) for s in states)


UNDISPUTED_OPEN = mask(S.FUNDED, S.SHIPPED, S.DELIVERED, *IN_RETURN)
OPEN = UNDISPUTED_OPEN | mask(S.DISPUTED)


def ceil_bps(amount: int, bps: int) -> int:
    return -(-amount * bps // BPS)


# -- assertions ---------------------------------------------------------------------------


def _reverts(name: str, action: Callable[[], Any], **args: Any) -> ContractRevert:
    """The exact custom error and the given values of its arguments, compared exactly
    (decoded addresses are checksummed; bytes are lower-case 0x hex)."""
    with pytest.raises(ContractRevert) as info:
        action()
    assert info.value.error_name == name, str(info.value)
    for key, value in args.items():
        assert info.value.error_args[key] == value, (key, str(info.value))
    return info.value


def _args(error: ContractRevert) -> dict[str, Any]:
    return dict(error.error_args)


def _inner(error: ContractRevert, field: str = "returnData") -> ContractRevert:
    """The error wrapped in a `bytes` argument (a receiver's bubbled call, a ruling failure)."""
    return decode_revert(bytes.fromhex(str(error.error_args[field])[2:]))


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _b32(name: str) -> str:
    """A short ASCII parameter name as the right-padded bytes32 of EscrowParameterOutOfBounds."""
    return "0x" + name.encode().ljust(32, b"\x00").hex()


def names(env: EscrowEnv, receipt: dict[str, Any]) -> list[str]:
    return [name for name, _ in env.client.events(receipt)]


def the(env: EscrowEnv, receipt: dict[str, Any], name: str) -> dict[str, Any]:
    """The args of the one `name` event in a receipt."""
    found = [args for n, args in env.client.events(receipt) if n == name]
    assert len(found) == 1, (name, names(env, receipt))
    return found[0]


def block_time(env: EscrowEnv, receipt: dict[str, Any]) -> int:
    return int(env.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def gas_cost(receipt: dict[str, Any]) -> int:
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def shares(env: EscrowEnv, gross: int, terms_id: int = 1) -> tuple[int, int, int]:
    """(payout, fee, reserve) of a released `gross` at the terms version's rates."""
    t = env.client.terms(terms_id)
    fee, reserve = gross * t.fee_bps // BPS, gross * t.reserve_bps // BPS
    return gross - fee - reserve, fee, reserve


def assert_books(env: EscrowEnv, *tokens: str) -> None:
    """escrowed + deposits + reserve + fees + credits == the escrow's real balance."""
    for token in tokens:
        assert env.client.totals(token).total == env.client.balance(token), token


# -- order helpers ------------------------------------------------------------------------

_serial = itertools.count()


def new_order_id(merchant: str) -> bytes:
    """A fresh escrow order id in `merchant`'s namespace."""
    return escrow_order_id(f"live-order-{next(_serial)}", merchant)


#: tracking hash -> the waybill's canonical spelling; the tests name waybills by their hash (what
#: events and views show) and `attest` signs the spelling behind it
_SPELLING: dict[bytes, str] = {}


def waybill(number: str, carrier: str = "DHL") -> bytes:
    """The tracking hash of a waybill (remembering its spelling for `attest`)."""
    spelling = canonical_tracking(carrier, number)
    _SPELLING[tracking_hash(carrier, number)] = spelling
    return tracking_hash(carrier, number)


def _canonical_or_none(spelling: str) -> str | None:
    """`canonical_tracking` of a ``CARRIER:NUMBER`` spelling if it is already canonical."""
    carrier, _, number = spelling.partition(":")
    try:
        canonical = canonical_tracking(carrier, number)
    except ValueError:
        return None
    return canonical if canonical == spelling else None


def make_offer(env: EscrowEnv, *, merchant: LocalAccount | None = None, buyer: str = NATIVE,
               token: str | None = None, price: int = PRICE, ship_by: int | None = None,
               inspection: int = DAY, expires: int | None = None,
               order_id: bytes | None = None) -> Offer:
    now = env.chain.timestamp()
    return Offer(
        order_id=order_id or new_order_id((merchant or env.merchant).address),
        merchant=(merchant or env.merchant).address,
        buyer=buyer, token=token or env.token, price=price,
        ship_by=now + 2 * DAY if ship_by is None else ship_by, inspection_window=inspection,
        order_record=keccak(text="order record leaf"),
        expires_at=now + DAY if expires is None else expires,
        terms_id=env.client.current_terms_id(),
    )


def signed(env: EscrowEnv, merchant: LocalAccount | None = None, **kw: Any) -> tuple[Offer, bytes]:
    offer = make_offer(env, merchant=merchant, **kw)
    return offer, env.client.sign_offer(merchant or env.merchant, offer)


def fund_order(env: EscrowEnv, *, by: LocalAccount | None = None,
               merchant: LocalAccount | None = None, **kw: Any) -> tuple[bytes, dict[str, Any]]:
    offer, sig = signed(env, merchant, **kw)
    return offer.order_id, env.client.fund(offer, sig, by or env.buyer)


def attest(env: EscrowEnv, kind: str, oid: bytes, th: bytes | str, *, at: int | None = None,
           carrier: LocalAccount | None = None, evidence: bytes = EVIDENCE) -> tuple[Attestation, bytes]:
    """A signed attestation of the waybill `th` (a tracking hash from `waybill`, or a spelling)."""
    spelling = th if isinstance(th, str) else _SPELLING[th]
    att = Attestation(kind, oid, spelling, env.chain.timestamp() if at is None else at, evidence)
    return att, env.client.sign_attestation(carrier or env.carrier, att)


def signer_of(env: EscrowEnv, att: Attestation, sig: bytes, escrow: str | None = None) -> str:
    """The (checksummed) address that `sig` recovers to as a signature of `att`."""
    return recover_signer(att.typed_data(env.chain.chain_id, escrow or env.client.address), sig)


def ship_order(env: EscrowEnv, oid: bytes, *, th: bytes | None = None, at: int | None = None,
               carrier: LocalAccount | None = None) -> tuple[bytes, dict[str, Any]]:
    th = th or waybill(f"JD{oid.hex()[-14:]}")
    att, sig = attest(env, "Shipment", oid, th, at=at, carrier=carrier)
    return th, env.client.ship(att, sig, env.stranger)  # anyone may relay it


def deliver_order(env: EscrowEnv, oid: bytes, th: bytes, *, at: int | None = None,
                  carrier: LocalAccount | None = None) -> dict[str, Any]:
    att, sig = attest(env, "Delivery", oid, th, at=at, carrier=carrier)
    return env.client.deliver(att, sig, env.stranger)


def delivered_order(env: EscrowEnv, **kw: Any) -> tuple[bytes, bytes]:
    oid, _ = fund_order(env, **kw)
    th, _ = ship_order(env, oid)
    deliver_order(env, oid, th)
    return oid, th


def ship_return(env: EscrowEnv, oid: bytes, *, th: bytes | None = None, at: int | None = None,
                carrier: LocalAccount | None = None) -> tuple[bytes, dict[str, Any]]:
    th = th or waybill(f"RET{oid.hex()[-14:]}")
    att, sig = attest(env, "ReturnShipment", oid, th, at=at, carrier=carrier or env.carrier2)
    return th, env.client.ship_return(att, sig, env.stranger)


def deliver_return(env: EscrowEnv, oid: bytes, th: bytes, *, at: int | None = None,
                   carrier: LocalAccount | None = None) -> dict[str, Any]:
    att, sig = attest(env, "ReturnDelivery", oid, th, at=at, carrier=carrier or env.carrier2)
    return env.client.deliver_return(att, sig, env.stranger)


def past(env: EscrowEnv, deadline: int) -> None:
    """Move chain time just past `deadline` (timeout actions need block.timestamp > deadline)."""
    env.chain.time_travel(max(deadline - env.chain.timestamp() + 1, 1))


def past_deadline(env: EscrowEnv, oid: bytes) -> int:
    deadline = env.client.order(oid).deadline
    past(env, deadline)
    return deadline


def escrow_tx(env: EscrowEnv, fn: str, *args: Any, sender: LocalAccount, value: int = 0,
              gas: int | None = None) -> dict[str, Any]:
    """A raw escrow call (for what the client does not let go wrong, e.g. a wrong msg.value)."""
    return env.chain.transact(getattr(env.client.escrow.functions, fn)(*args), sender,
                              value=value, gas=gas)


def calldata(env: EscrowEnv, fn: str, *args: Any) -> bytes:
    return bytes.fromhex(env.client.escrow.encode_abi(fn, list(args))[2:])


def fresh_party(env: EscrowEnv, seed: str) -> LocalAccount:
    """A new key with ETH and TUSD, registered nowhere."""
    acct = labelled_key(f"escrow-contract-test {seed}")
    env.chain.send_eth(acct.address, 10**20, env.admin)
    env.chain.transact(token_contract(env).functions.mint(acct.address, 10**15), env.admin)
    return acct


def token_contract(env: EscrowEnv) -> Any:
    return env.chain.contract("TestStablecoin", env.token)


def open_with_panel(env: EscrowEnv, oid: bytes, opener: LocalAccount,
                    ruling: int) -> dict[str, Any]:
    """Open a dispute and have two of the three panel members rule; the deciding receipt."""
    env.client.open_dispute(oid, opener, EVIDENCE)
    dispute_id = env.client.dispute_of(oid).dispute_id
    env.client.vote(dispute_id, ruling, env.panel[0])
    return env.client.vote(dispute_id, ruling, env.panel[1])


# =========================================================================================
# Funding
# =========================================================================================


def _offer_digest_by_hand(env: EscrowEnv, escrow: str, offer: Offer) -> bytes:
    """EIP-712 digest of `offer`, encoded word by word from the contract's published type string
    and the domain its `eip712Domain()` reports (independent of eth_account's encoder)."""
    fields, name, version, chain_id, contract = env.chain.call(
        env.client.escrow.functions.eip712Domain())[:5]
    assert fields == b"\x0f" and (name, version, chain_id) == (
        "FulfillmentEscrow", "1", env.chain.chain_id) and contract == escrow
    def word(v: Any) -> bytes:
        return v.rjust(32, b"\0") if isinstance(v, bytes) else int(v).to_bytes(32, "big")

    def address(a: str) -> bytes:
        return bytes.fromhex(a[2:])

    domain = keccak(keccak(text="EIP712Domain(string name,string version,uint256 chainId,"
                                 "address verifyingContract)")
                    + keccak(text=name) + keccak(text=version) + word(chain_id)
                    + word(address(contract)))
    typehash = keccak(text="Offer(bytes32 orderId,address merchant,address buyer,address token,"
                           "uint256 price,uint64 shipBy,uint32 inspectionWindow,bytes32 orderRecord,"
                           "uint64 expiresAt,uint16 termsId)")
    struct = keccak(typehash + offer.order_id + word(address(offer.merchant))
                    + word(address(offer.buyer)) + word(address(offer.token)) + word(offer.price)
                    + word(offer.ship_by) + word(offer.inspection_window) + offer.order_record
                    + word(offer.expires_at) + word(offer.terms_id))
    return keccak(b"\x19\x01" + domain + struct)


def test_fund_erc20_and_eth_offers(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    buyer_tokens = c.balance(env.token, env.buyer.address)
    offer, sig = signed(env, buyer=env.buyer.address)  # pinned to this buyer
    # The client's typed data hashes to what an encoder written from the contract's own type
    # string and its ERC-5267 domain gives; the contract accepting the signature closes the loop.
    message = encode_typed_data(full_message=offer.typed_data(env.chain.chain_id, c.address))
    assert keccak(b"\x19" + message.version + message.header + message.body) == \
        _offer_digest_by_hand(env, c.address, offer)

    receipt = c.fund(offer, sig, env.buyer)
    assert names(env, receipt) == ["OrderFunded"]
    assert the(env, receipt, "OrderFunded") == {
        "orderId": offer.order_id, "merchant": env.merchant.address, "buyer": env.buyer.address,
        "token": env.token, "price": PRICE, "termsId": 1, "orderRecord": offer.order_record}
    info = c.order(offer.order_id)
    assert (info.merchant, info.buyer, info.token, info.price, info.state, info.clock,
            info.inspection_window, info.terms_id, info.deadline) == (
        env.merchant.address, env.buyer.address, env.token, PRICE, S.FUNDED, offer.ship_by,
        DAY, 1, offer.ship_by)
    assert not info.pledged and c.lender_of(offer.order_id) is None
    assert c.balance(env.token, env.buyer.address) == buyer_tokens - PRICE
    assert c.totals(env.token).escrowed == PRICE and c.totals(env.token).credits == 0
    assert c.deposit_of(env.token, env.merchant.address) == (DEPOSIT, ceil_bps(PRICE, RATIO_BPS))

    # An open ETH offer (buyer zero): whoever funds it becomes the buyer.
    eth_offer, eth_sig = signed(env, token=ETH, price=ETH_PRICE)
    eth_before, escrow_before = c.balance(ETH, env.buyer2.address), c.balance(ETH)
    receipt = c.fund(eth_offer, eth_sig, env.buyer2)
    assert the(env, receipt, "OrderFunded")["buyer"] == env.buyer2.address
    assert c.order(eth_offer.order_id).buyer == env.buyer2.address
    assert c.order(eth_offer.order_id).token == ETH
    assert c.balance(ETH, env.buyer2.address) == eth_before - ETH_PRICE - gas_cost(receipt)
    assert c.balance(ETH) == escrow_before + ETH_PRICE
    assert c.totals(ETH).escrowed == ETH_PRICE
    assert c.deposit_of(ETH, env.merchant.address)[1] == ceil_bps(ETH_PRICE, RATIO_BPS)
    assert_books(env, env.token, ETH)


def test_fund_rejects_forged_and_replayed_signatures(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    c.approve(env.token, env.buyer, 10 * PRICE)
    offer, sig = signed(env)
    oid = offer.order_id

    def fund(o: Offer, s: bytes) -> Callable[[], Any]:
        return lambda: c.fund(o, s, env.buyer, approve=False)

    def invalid(o: Offer, s: bytes) -> None:
        _reverts("EscrowInvalidSignature", fund(o, s), orderId=_hex(o.order_id),
                 merchant=env.merchant.address)

    flipped = sig[:20] + bytes([sig[20] ^ 0x01]) + sig[21:]
    for bad in (flipped, b"", sig[:64], bytes(65), sig + b"\x00"):
        invalid(offer, bad)
    # Signed by someone else (the client itself refuses to sign another merchant's offer).
    with pytest.raises(ConfigError):
        c.sign_offer(env.stranger, offer)
    typed = offer.typed_data(env.chain.chain_id, c.address)
    forged = env.stranger.sign_message(encode_typed_data(full_message=typed)).signature
    invalid(offer, bytes(forged))
    # The merchant's signature does not carry over to other terms ...
    for field, value in (("price", PRICE - 1), ("buyer", env.buyer.address),
                         ("token", ETH), ("ship_by", offer.ship_by + 1),
                         ("inspection_window", 2 * DAY), ("expires_at", offer.expires_at + 1),
                         ("order_record", ZERO32)):
        invalid(dataclasses.replace(offer, **{field: value}), sig)
    # ... nor to another order id (replay), nor to another chain id.
    invalid(dataclasses.replace(offer, order_id=new_order_id(offer.merchant)), sig)
    invalid(offer, sign_offer(env.merchant, offer, env.chain.chain_id + 1, c.address))

    # ... nor to another deployment of the escrow on the same chain.
    dep = deploy_escrow(env.chain, None, panel=[m.address for m in env.panel], threshold=2,
                        redeploy=True)
    other = EscrowClient.at(env.chain, dep.escrow.address, dep.arbitrator.address)
    other.deposit(env.merchant.address, ETH, 10**18, env.merchant)
    eth_offer, here = signed(env, token=ETH, price=ETH_PRICE)
    there = other.sign_offer(env.merchant, eth_offer)
    assert here != there
    _reverts("EscrowInvalidSignature", lambda: other.fund(eth_offer, here, env.buyer),
             orderId=_hex(eth_offer.order_id), merchant=env.merchant.address)
    other.fund(eth_offer, there, env.buyer)
    assert other.state(eth_offer.order_id) == S.FUNDED and c.state(eth_offer.order_id) == S.NONE
    _reverts("EscrowInvalidSignature", lambda: c.fund(eth_offer, there, env.buyer),
             orderId=_hex(eth_offer.order_id))

    # Nothing was recorded by the rejections; the genuine signature still works, once.
    assert c.state(oid) == S.NONE and c.totals(env.token).escrowed == 0
    fund(offer, sig)()
    assert c.state(oid) == S.FUNDED
    _reverts("EscrowOrderExists", fund(offer, sig), orderId=_hex(oid))
    assert c.totals(env.token).escrowed == PRICE
    assert_books(env, env.token, ETH)


def test_fund_rejects_invalid_offers(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    c.approve(env.token, env.buyer, 10**14)
    now = env.chain.timestamp()

    def attempt(name: str, *, by: LocalAccount | None = None, value: int | None = None,
                **kw: Any) -> ContractRevert:
        offer, sig = signed(env, **kw)
        send = offer.price if value is None and offer.token == ETH else (value or 0)
        return _reverts(name, lambda: escrow_tx(env, "fund", offer.as_tuple(), sig,
                                                sender=by or env.buyer, value=send))

    err = attempt("EscrowOfferExpired", expires=now - 10)
    assert err.error_args["expiresAt"] == now - 10
    err = attempt("EscrowUnauthorizedCaller", buyer=env.buyer.address, by=env.buyer2)
    assert _args(err)["caller"] == env.buyer2.address
    err = attempt("EscrowInvalidParties", by=env.merchant)  # the merchant buying from itself
    assert (_args(err)["merchant"], _args(err)["buyer"]) == (env.merchant.address,) * 2
    attempt("EscrowInvalidParties", buyer=env.merchant.address, by=env.merchant)
    for price in (0, 1, MIN_PRICE - 1, 2**88):  # below the minimum a fee would round to 0
        assert attempt("EscrowInvalidPrice", price=price).error_args["price"] == price
    for ship_by in (now, now - DAY, now + 181 * DAY):
        err = attempt("EscrowParameterOutOfBounds", ship_by=ship_by)
        args = _args(err)
        assert (args["parameter"], args["value"]) == (_b32("shipBy"), ship_by)
        assert args["min"] > now and args["max"] - args["min"] == 180 * DAY - 1
    for window in (HOUR - 1, 30 * DAY + 1, 0):
        assert _args(attempt("EscrowParameterOutOfBounds", inspection=window)) == {
            "parameter": _b32("inspectionWindow"), "value": window, "min": HOUR,
            "max": 30 * DAY}
    unlisted = env.chain.deploy("TestStablecoin", sender=env.admin).address
    for token in (unlisted, env.stranger.address):
        assert _args(attempt("EscrowTokenNotAllowed", token=token)) == {"token": token}
    err = _reverts("EscrowInvalidOrderId", lambda: escrow_tx(
        env, "fund", make_offer(env, order_id=ZERO32).as_tuple(), b"", sender=env.buyer))
    assert _args(err) == {"orderId": _hex(ZERO32), "merchant": env.merchant.address}
    # Squatting: another merchant (with a buyer address of its own) funds the real merchant's
    # order id first, for the minimum price, so the real order could never be funded. The id lies
    # in the merchant's namespace: nobody else's signed offer can occupy it.
    victim = new_order_id(env.merchant.address)
    for squatter in (env.merchant2, env.stranger):
        squat, squat_sig = signed(env, merchant=env.merchant2, order_id=victim, price=MIN_PRICE)
        squat = dataclasses.replace(squat, merchant=squatter.address)
        squat_sig = c.sign_offer(squatter, squat)
        _reverts("EscrowInvalidOrderId", lambda squat=squat, squat_sig=squat_sig: c.fund(
            squat, squat_sig, env.buyer2), orderId=_hex(victim), merchant=squatter.address)
    assert c.state(victim) == S.NONE  # free for the merchant's own offer
    # msg.value must be exactly the ETH price, and zero for an ERC-20 order.
    for wrong in (ETH_PRICE - 1, ETH_PRICE + 1, 0):
        err = attempt("EscrowWrongValue", token=ETH, price=ETH_PRICE, value=wrong)
        assert err.error_args == {"expected": ETH_PRICE, "received": wrong}
    assert attempt("EscrowWrongValue", value=1).error_args == {"expected": 0, "received": 1}
    # Not enough allowance: the token's own error bubbles up through SafeERC20.
    c.approve(env.token, env.buyer2, PRICE - 1)
    attempt("ERC20InsufficientAllowance", by=env.buyer2)
    assert c.totals(env.token).escrowed == 0 and c.totals(ETH).escrowed == 0

    # The largest price that fits the order's 88-bit field is accepted and stored exactly.
    top = 2**88 - 1
    token = token_contract(env)
    for party in (env.buyer, env.merchant):
        env.chain.transact(token.functions.mint(party.address, top), env.admin)
    c.deposit(env.merchant.address, env.token, ceil_bps(top, RATIO_BPS), env.merchant)
    oid, _ = fund_order(env, price=top)
    assert c.order(oid).price == top and c.totals(env.token).escrowed == top
    assert_books(env, env.token, ETH)


def test_deposit_requirement_and_used_order_ids(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    m = env.stranger  # a merchant without any deposit
    need = ceil_bps(PRICE, RATIO_BPS)
    offer, sig = signed(env, merchant=m)
    _reverts("EscrowDepositTooLow", lambda: c.fund(offer, sig, env.buyer),
             merchant=m.address, have=0, need=need)
    receipt = c.deposit(m.address, env.token, need - 1, m)
    assert the(env, receipt, "DepositAdded") == {
        "merchant": m.address, "token": env.token, "from": m.address, "amount": need - 1}
    _reverts("EscrowDepositTooLow", lambda: c.fund(offer, sig, env.buyer),
             merchant=m.address, have=need - 1, need=need)
    receipt = c.deposit(m.address, env.token, 1, env.buyer2)  # anyone may top it up
    assert the(env, receipt, "DepositAdded")["from"] == env.buyer2.address
    c.fund(offer, sig, env.buyer)
    assert c.deposit_of(env.token, m.address) == (need, need)
    # The next order needs the deposit to cover what both lock.
    offer2, sig2 = signed(env, merchant=m)
    _reverts("EscrowDepositTooLow", lambda: c.fund(offer2, sig2, env.buyer),
             merchant=m.address, have=need, need=2 * need)
    # Deposits are per token: none in ETH.
    eth_offer, eth_sig = signed(env, merchant=m, token=ETH, price=ETH_PRICE)
    _reverts("EscrowDepositTooLow", lambda: c.fund(eth_offer, eth_sig, env.buyer),
             merchant=m.address, have=0, need=ceil_bps(ETH_PRICE, RATIO_BPS))
    # A used order id cannot be funded again, by anyone, with any offer.
    oid = offer.order_id
    _reverts("EscrowOrderExists", lambda: c.fund(offer, sig, env.buyer2), orderId=_hex(oid))
    dup, dup_sig = signed(env, merchant=m, order_id=oid, price=PRICE + 1)
    _reverts("EscrowOrderExists", lambda: c.fund(dup, dup_sig, env.buyer), orderId=_hex(oid))
    assert c.order(oid).merchant == m.address and c.totals(env.token).escrowed == PRICE
    assert_books(env, env.token, ETH)


# =========================================================================================
# Shipping and delivery
# =========================================================================================


def test_shipping_needs_an_independent_carrier_and_a_fresh_waybill(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    oid, _ = fund_order(env)
    oid2, _ = fund_order(env, merchant=env.merchant2)
    th = waybill("JD0001234567")
    now = env.chain.timestamp()

    def ship(att: Attestation, sig: bytes) -> Callable[[], Any]:
        return lambda: c.ship(att, sig, env.stranger)

    att, sig = attest(env, "Shipment", oid, th, carrier=env.stranger)
    _reverts("EscrowNotCarrier", ship(att, sig), orderId=_hex(oid), signer=env.stranger.address)
    # The carrier's signature is bound to the message type and to the order.
    # (The escrow recovers some unrelated address from a signature of another message.)
    att, sig = attest(env, "Delivery", oid, th)
    as_shipment = dataclasses.replace(att, kind="Shipment")
    bogus = signer_of(env, as_shipment, sig)
    assert bogus != env.carrier.address
    _reverts("EscrowNotCarrier", ship(as_shipment, sig), orderId=_hex(oid), signer=bogus)
    att2, sig2 = attest(env, "Shipment", oid2, th)
    other_order = dataclasses.replace(att2, order_id=oid)
    bogus = signer_of(env, other_order, sig2)
    assert bogus != env.carrier.address
    _reverts("EscrowNotCarrier", ship(other_order, sig2), orderId=_hex(oid), signer=bogus)
    # ... and to this chain and this escrow (the EIP-712 domain).
    att = Attestation("Shipment", oid, _SPELLING[th], now)
    other_escrow = to_checksum_address(keccak(text="another escrow")[:20])
    for chain_id, verifier in ((env.chain.chain_id + 1, c.address),
                               (env.chain.chain_id, other_escrow)):
        foreign = sign_attestation(env.carrier, att, chain_id, verifier)
        bogus = signer_of(env, att, foreign)
        assert bogus != env.carrier.address
        _reverts("EscrowNotCarrier", ship(att, foreign), orderId=_hex(oid), signer=bogus)
    # A merchant that is also a registered carrier cannot attest its own shipment.
    c.set_carrier(env.merchant.address, True, env.admin)
    att, sig = attest(env, "Shipment", oid, th, carrier=env.merchant)
    _reverts("EscrowSignerIsParty", ship(att, sig), orderId=_hex(oid),
             signer=env.merchant.address)
    # Attested times must not be in the future.
    att, sig = attest(env, "Shipment", oid, th, at=now + HOUR)
    _reverts("EscrowInvalidTimestamp", ship(att, sig), orderId=_hex(oid), timestamp=now + HOUR,
             notBefore=0)
    # Only the canonical spelling of a waybill is accepted, whoever signed it: a carrier's
    # client that skips normalising cannot open a second spelling of a used waybill.
    for spelling in ("dhl:JD0001234567", "DHL:JD-0001234567", "DHL JD0001234567", "DHLJD0001",
                     ":JD0001", "DHL:", "DHL::1", "DHL:1:2", "D:", "", "A:" + "9" * 63,
                     "DHL:JD\u00d8001", "DHL:JD\x00001"):
        assert _canonical_or_none(spelling) is None, spelling
        att, sig = attest(env, "Shipment", oid, spelling)
        _reverts("EscrowNonCanonicalTracking", ship(att, sig), orderId=_hex(oid),
                 tracking=spelling)
    for spelling in ("D:1", "A:" + "9" * 62):  # the shortest and the longest accepted
        assert _canonical_or_none(spelling) == spelling
    assert c.state(oid) == S.FUNDED and c.order_of_tracking(th) is None

    att, sig = attest(env, "Shipment", oid, th, at=now)
    receipt = ship(att, sig)()
    assert the(env, receipt, "OrderShipped") == {
        "orderId": oid, "carrier": env.carrier.address, "trackingHash": th, "shippedAt": now,
        "evidence": EVIDENCE}
    # The attested time is evidence; the delivery window runs from the recording block.
    recorded = block_time(env, receipt)
    info = c.order(oid)
    assert (info.state, info.clock, info.deadline) == (
        S.SHIPPED, recorded, recorded + c.terms().delivery_window)
    assert c.order_of_tracking(th) == oid
    # The empty-parcel fraud: the same waybill on another order, however it is written.
    for carrier, number in (("DHL", "JD0001234567"), ("dhl", "jd0001234567"),
                            (" Dhl ", "\tJd0001234567  ")):
        reused = tracking_hash(carrier, number)
        assert reused == th
        att2, sig2 = attest(env, "Shipment", oid2, reused, carrier=env.carrier2)
        _reverts("EscrowTrackingReused", ship(att2, sig2), trackingHash=_hex(th),
                 firstOrderId=_hex(oid))
    # Wrong states: shipped already, unknown order.
    att, sig = attest(env, "Shipment", oid, waybill("JD-other"))
    _reverts("EscrowUnexpectedState", ship(att, sig), orderId=_hex(oid), current=S.SHIPPED,
             expectedStates=mask(S.FUNDED))
    unknown = new_order_id(env.merchant.address)
    att, sig = attest(env, "Shipment", unknown, waybill("JD-unknown"))
    _reverts("EscrowUnexpectedState", ship(att, sig), orderId=_hex(unknown), current=S.NONE,
             expectedStates=mask(S.FUNDED))
    # The second order ships normally with its own parcel, attested by the other carrier.
    ship_order(env, oid2, carrier=env.carrier2)
    assert c.state(oid2) == S.SHIPPED


def test_the_contract_and_the_client_agree_on_the_canonical_waybill(escrow_env: EscrowEnv) -> None:
    """The on-chain spelling rule is the client's `canonical_tracking`, byte for byte: every byte
    value in the number, and generated spellings, are accepted by one exactly when by the other
    (read-only calls on a funded order, so nothing is spent)."""
    env, c = escrow_env, escrow_env.client
    oid, _ = fund_order(env)

    def accepted(spelling: str) -> bool:
        att = Attestation("Shipment", oid, spelling, env.chain.timestamp())
        sig = c.sign_attestation(env.carrier, att)
        try:
            env.chain.call(c.escrow.functions.ship(att.as_tuple(), sig), env.stranger)
        except ContractRevert as error:
            assert error.error_name == "EscrowNonCanonicalTracking", str(error)
            return False
        return True

    for byte in range(256):
        spelling = "DHL:JD" + chr(byte) + "01"  # code points < 256; >= 0x80 are two UTF-8 bytes
        want = chr(byte).isascii() and (chr(byte).isdigit() or chr(byte).isupper())
        assert accepted(spelling) is want, (byte, spelling)
        assert (_canonical_or_none(spelling) == spelling) is want, (byte, spelling)

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.text(alphabet="AZ09az:- _.\u00d8\u00e9\x00\x7f", max_size=70)
           | st.from_regex(r"[A-Z0-9]{1,40}:[A-Z0-9]{1,40}", fullmatch=True))
    def agree(spelling: str) -> None:
        assert accepted(spelling) is (_canonical_or_none(spelling) == spelling), spelling

    agree()
    assert c.state(oid) == S.FUNDED


def test_back_dated_shipment_is_evidence_but_the_window_runs_from_recording(
        escrow_env: EscrowEnv) -> None:
    """An old waybill's attestation, dated before the order was even funded, is accepted as
    evidence (its time is emitted), but it cannot shorten the delivery window: the window,
    and with it the buyer's timeout refund, counts from the block that records the shipment.
    """
    env, c = escrow_env, escrow_env.client
    t = c.terms()
    refunded, receipt = fund_order(env)
    delivered, _ = fund_order(env)
    funded_at = block_time(env, receipt)
    back_dated = funded_at - 20 * DAY
    assert back_dated + t.delivery_window < funded_at  # "expired" before the order existed

    th, receipt = ship_order(env, refunded, th=waybill("JD-OLD-PARCEL"), at=back_dated)
    assert the(env, receipt, "OrderShipped") == {
        "orderId": refunded, "carrier": env.carrier.address, "trackingHash": th,
        "shippedAt": back_dated, "evidence": EVIDENCE}
    recorded = block_time(env, receipt)
    deadline = recorded + t.delivery_window
    info = c.order(refunded)
    assert (info.state, info.clock, info.deadline) == (S.SHIPPED, recorded, deadline)
    _reverts("EscrowTooEarly", lambda: c.refund(refunded, env.buyer), orderId=_hex(refunded),
             deadline=deadline)

    # A carrier's delivery inside the recorded window is accepted, however old the waybill.
    th2, receipt = ship_order(env, delivered, th=waybill("JD-OLDER-PARCEL"), at=back_dated - DAY)
    assert c.order(delivered).clock == block_time(env, receipt) >= recorded
    past(env, deadline - HOUR)
    deliver_order(env, delivered, th2)
    assert c.state(delivered) == S.DELIVERED

    # The refund is still too early at the deadline's exact second; due one second later.
    _reverts("EscrowTooEarly", lambda: c.refund(refunded, env.buyer), orderId=_hex(refunded),
             deadline=deadline)
    env.chain.set_next_timestamp(deadline)
    _reverts("EscrowTooEarly", lambda: c.refund(refunded, env.buyer), orderId=_hex(refunded),
             deadline=deadline)
    env.chain.set_next_timestamp(deadline + 1)
    receipt = c.refund(refunded, env.stranger, EVIDENCE)
    assert block_time(env, receipt) == deadline + 1
    assert the(env, receipt, "OrderRefunded") == {
        "orderId": refunded, "buyer": env.buyer.address, "amount": PRICE, "evidence": EVIDENCE}
    assert c.credit_of(env.token, env.buyer.address) == PRICE
    assert_books(env, env.token)


def test_tracking_number_written_with_spaces_or_hyphens_counts_as_reused(
        escrow_env: EscrowEnv) -> None:
    """Whitespace and hyphens anywhere in a waybill are formatting: 'sf 1234-5678' is
    'SF12345678', so a reused waybill cannot slip past EscrowTrackingReused that way."""
    env, c = escrow_env, escrow_env.client
    oid, _ = fund_order(env)
    oid2, _ = fund_order(env)
    assert tracking_hash("sf", "sf 1234-5678") == tracking_hash("SF", "SF12345678")
    th, _ = ship_order(env, oid, th=waybill("JD 0001 2345 67"))
    assert th == waybill("JD0001234567")
    for carrier, number in (("DHL", "JD00012345 67"), ("D H-L", "jd-0001-2345-67"),
                            ("dhl", " JD\t0001\n2345-67 "), ("DHL", "JD--0001 - 234567")):
        reused = waybill(number, carrier)
        assert reused == th, (carrier, number)
        att, sig = attest(env, "Shipment", oid2, reused)
        _reverts("EscrowTrackingReused", lambda att=att, sig=sig: c.ship(att, sig, env.stranger),
                 trackingHash=_hex(th), firstOrderId=_hex(oid))
    # Letters and digits still count: another number is another parcel.
    other = waybill("JD 0001 2345 68")
    assert other != th
    ship_order(env, oid2, th=other)
    assert (c.state(oid2), c.order_of_tracking(other)) == (S.SHIPPED, oid2)


def test_delivery_by_carrier_or_buyer(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    oid, _ = fund_order(env)
    th, receipt = ship_order(env, oid)
    recorded_ship = block_time(env, receipt)
    assert c.order(oid).clock == recorded_ship
    unshipped, _ = fund_order(env)
    other, _ = fund_order(env)
    other_th, _ = ship_order(env, other)
    late, _ = fund_order(env)
    late_th, _ = ship_order(env, late)
    now = env.chain.timestamp()

    def deliver(att: Attestation, sig: bytes) -> Callable[[], Any]:
        return lambda: c.deliver(att, sig, env.stranger)

    # Delivery before shipment.
    att, sig = attest(env, "Delivery", unshipped, waybill("JD-none"))
    _reverts("EscrowUnexpectedState", deliver(att, sig), orderId=_hex(unshipped),
             current=S.FUNDED, expectedStates=mask(S.SHIPPED))
    _reverts("EscrowUnexpectedState", lambda: c.confirm_delivery(unshipped, env.buyer),
             orderId=_hex(unshipped), current=S.FUNDED, expectedStates=mask(S.SHIPPED))
    # Another order's parcel, or one never shipped.
    for wrong in (other_th, waybill("JD-never-shipped")):
        att, sig = attest(env, "Delivery", oid, wrong)
        _reverts("EscrowTrackingMismatch", deliver(att, sig), orderId=_hex(oid),
                 trackingHash=_hex(wrong))
    att, sig = attest(env, "Delivery", oid, th, carrier=env.stranger)
    _reverts("EscrowNotCarrier", deliver(att, sig), signer=env.stranger.address)
    c.set_carrier(env.merchant.address, True, env.admin)
    att, sig = attest(env, "Delivery", oid, th, carrier=env.merchant)
    _reverts("EscrowSignerIsParty", deliver(att, sig), orderId=_hex(oid),
             signer=env.merchant.address)
    # Delivered in the future: refused (the only bound; the earliest allowed time is 0).
    for at in (now + HOUR, 2**64 - 1):
        att, sig = attest(env, "Delivery", oid, th, at=at)
        _reverts("EscrowInvalidTimestamp", deliver(att, sig), orderId=_hex(oid), timestamp=at,
                 notBefore=0)
    assert c.state(oid) == S.SHIPPED

    # A back-dated delivery, even one dated before the shipment was recorded, is evidence
    # only: it does not shorten the inspection window, which runs from recording.
    env.chain.time_travel(HOUR)
    att, sig = attest(env, "Delivery", oid, th, at=recorded_ship - 1)
    receipt = deliver(att, sig)()
    assert the(env, receipt, "OrderDelivered") == {
        "orderId": oid, "attester": env.carrier.address, "trackingHash": th,
        "deliveredAt": recorded_ship - 1, "evidence": EVIDENCE}
    recorded = block_time(env, receipt)
    info = c.order(oid)
    assert (info.state, info.clock, info.deadline) == (S.DELIVERED, recorded, recorded + DAY)
    # Submitted again (a relayer's retry, a copy in someone's batch): nothing happens.
    assert names(env, deliver(att, sig)()) == [] and c.order(oid) == info

    # The buyer may confirm delivery itself; nobody else may.
    for caller in (env.merchant, env.stranger, env.buyer2, env.carrier):
        _reverts("EscrowUnauthorizedCaller", lambda caller=caller: c.confirm_delivery(
            other, caller), orderId=_hex(other), caller=caller.address)
    receipt = c.confirm_delivery(other, env.buyer, EVIDENCE)
    confirmed = block_time(env, receipt)
    assert the(env, receipt, "OrderDelivered") == {
        "orderId": other, "attester": env.buyer.address, "trackingHash": ZERO32,
        "deliveredAt": confirmed, "evidence": EVIDENCE}
    assert (c.order(other).state, c.order(other).deadline) == (S.DELIVERED, confirmed + DAY)
    _reverts("EscrowUnexpectedState", lambda: c.confirm_delivery(other, env.buyer),
             current=S.DELIVERED)

    # A carrier's delivery must be recorded within the delivery window (dated inside it or
    # not); the buyer's own confirmation has no deadline while the order is Shipped.
    late_deadline = c.order(late).deadline
    att, sig = attest(env, "Delivery", late, late_th, at=late_deadline - HOUR)
    past(env, late_deadline)
    _reverts("EscrowWindowClosed", deliver(att, sig), orderId=_hex(late),
             deadline=late_deadline)
    assert c.state(late) == S.SHIPPED
    receipt = c.confirm_delivery(late, env.buyer)
    confirmed = block_time(env, receipt)
    assert confirmed > late_deadline
    assert (c.order(late).state, c.order(late).deadline) == (S.DELIVERED, confirmed + DAY)
    _reverts("EscrowUnexpectedState", lambda: c.refund(late, env.buyer), orderId=_hex(late),
             current=S.DELIVERED, expectedStates=mask(S.FUNDED, S.SHIPPED))


# =========================================================================================
# Release and timeouts
# =========================================================================================


def test_release_after_inspection_pays_out_once(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    terms = c.terms()
    assert (terms.fee_bps, terms.reserve_bps) == (200, 100)
    oid, _ = delivered_order(env)
    deadline = c.order(oid).deadline
    _reverts("EscrowTooEarly", lambda: c.release(oid, env.buyer), orderId=_hex(oid),
             deadline=deadline)
    past(env, deadline)
    receipt = c.release(oid, env.stranger, EVIDENCE)  # anyone may release after the window
    fee, reserve = 24_691_357, 12_345_678  # 2% and 1% of 1_234_567_891, rounded down
    payout = PRICE - fee - reserve
    assert (payout, fee, reserve) == shares(env, PRICE) == (1_197_530_856, fee, reserve)
    assert the(env, receipt, "OrderReleased") == {
        "orderId": oid, "payee": env.merchant.address, "payout": payout, "fee": fee,
        "reserve": reserve, "evidence": EVIDENCE}
    assert c.state(oid) == S.RELEASED and c.order(oid).deadline == 0
    assert c.credit_of(env.token, env.merchant.address) == payout
    assert c.credit_of(env.token, env.stranger.address) == 0
    totals = c.totals(env.token)
    assert (totals.escrowed, totals.fees, totals.reserve, totals.credits, totals.deposits) == (
        0, fee, reserve, payout, 2 * DEPOSIT)
    assert c.deposit_of(env.token, env.merchant.address) == (DEPOSIT, 0)

    # No order pays out twice, or moves once it is terminal. A second release is a no-op (so a
    # relayer's batch cannot be made to revert by someone releasing one of its orders first).
    again = c.release(oid, env.stranger)
    assert names(env, again) == [] and c.credit_of(env.token, env.merchant.address) == payout
    assert c.totals(env.token) == totals
    _reverts("EscrowUnexpectedState", lambda: c.refund(oid, env.buyer), current=S.RELEASED,
             expectedStates=mask(S.FUNDED, S.SHIPPED))
    _reverts("EscrowUnexpectedState", lambda: c.cancel(oid, env.merchant), current=S.RELEASED,
             expectedStates=UNDISPUTED_OPEN)
    _reverts("EscrowUnexpectedState", lambda: c.request_return(oid, 1, env.buyer),
             current=S.RELEASED, expectedStates=mask(S.DELIVERED))
    _reverts("EscrowUnexpectedState", lambda: c.open_dispute(oid, env.buyer),
             current=S.RELEASED, expectedStates=mask(S.SHIPPED, S.DELIVERED, *IN_RETURN))

    # Withdrawal moves the real tokens, once.
    before = c.balance(env.token, env.merchant.address)
    receipt = c.withdraw(env.token, env.merchant)
    assert the(env, receipt, "Withdrawn") == {
        "token": env.token, "account": env.merchant.address, "to": env.merchant.address,
        "amount": payout}
    assert c.balance(env.token, env.merchant.address) == before + payout
    assert c.credit_of(env.token, env.merchant.address) == 0
    _reverts("EscrowNothingToWithdraw", lambda: c.withdraw(env.token, env.merchant),
             token=env.token, account=env.merchant.address)
    unknown = env.chain.deploy("TestStablecoin", sender=env.admin).address
    _reverts("EscrowTokenNotAllowed", lambda: c.withdraw(unknown, env.merchant), token=unknown)

    # ETH: the buyer confirms delivery; the payout is pulled to another address.
    eth_oid, _ = fund_order(env, token=ETH, price=ETH_PRICE)
    ship_order(env, eth_oid)
    c.confirm_delivery(eth_oid, env.buyer)
    past_deadline(env, eth_oid)
    receipt = c.release(eth_oid, env.buyer)
    eth_payout, eth_fee, eth_reserve = shares(env, ETH_PRICE)
    assert the(env, receipt, "OrderReleased")["payout"] == eth_payout
    _reverts("EscrowZeroAddress", lambda: c.withdraw(ETH, env.merchant, to=NATIVE))
    cold = Account.from_key(keccak(text="merchant cold wallet")).address
    receipt = c.withdraw(ETH, env.merchant, to=cold)
    assert the(env, receipt, "Withdrawn")["to"] == cold
    assert c.balance(ETH, cold) == eth_payout
    assert (c.totals(ETH).fees, c.totals(ETH).reserve, c.totals(ETH).credits) == (
        eth_fee, eth_reserve, 0)
    assert_books(env, env.token, ETH)


def test_timeout_refunds_go_to_the_buyer(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    never, _ = fund_order(env)  # never shipped
    lost, _ = fund_order(env)  # shipped, never delivered
    lost_th, receipt = ship_order(env, lost)
    delivered, _ = delivered_order(env)
    ship_by = c.order(never).deadline
    lost_deadline = block_time(env, receipt) + c.terms().delivery_window  # from recording
    assert c.order(lost).deadline == lost_deadline
    _reverts("EscrowTooEarly", lambda: c.refund(never, env.buyer), orderId=_hex(never),
             deadline=ship_by)
    _reverts("EscrowTooEarly", lambda: c.refund(lost, env.buyer), orderId=_hex(lost),
             deadline=lost_deadline)
    _reverts("EscrowUnexpectedState", lambda: c.refund(delivered, env.buyer),
             current=S.DELIVERED, expectedStates=mask(S.FUNDED, S.SHIPPED))

    past(env, ship_by)
    # Too late to ship: attested before shipBy but submitted after it, or attested after it.
    for at in (ship_by, env.chain.timestamp()):
        att, sig = attest(env, "Shipment", never, waybill("JD-late"), at=at)
        _reverts("EscrowLateShipment", lambda att=att, sig=sig: c.ship(att, sig, env.stranger),
                 orderId=_hex(never), shippedAt=at, shipBy=ship_by)
    receipt = c.refund(never, env.stranger, EVIDENCE)  # a stranger triggers it ...
    assert the(env, receipt, "OrderRefunded") == {
        "orderId": never, "buyer": env.buyer.address, "amount": PRICE, "evidence": EVIDENCE}
    assert c.credit_of(env.token, env.buyer.address) == PRICE  # ... the buyer gets it
    assert c.credit_of(env.token, env.stranger.address) == 0
    assert c.state(never) == S.REFUNDED
    assert names(env, c.refund(never, env.buyer)) == []  # already refunded: a no-op
    assert c.credit_of(env.token, env.buyer.address) == PRICE

    _reverts("EscrowTooEarly", lambda: c.refund(lost, env.buyer), deadline=lost_deadline)
    past(env, lost_deadline)
    c.refund(lost, env.merchant)
    assert c.credit_of(env.token, env.buyer.address) == 2 * PRICE
    att, sig = attest(env, "Delivery", lost, lost_th)
    _reverts("EscrowUnexpectedState", lambda: c.deliver(att, sig, env.stranger),
             current=S.REFUNDED, expectedStates=mask(S.SHIPPED))
    totals = c.totals(env.token)
    assert (totals.escrowed, totals.fees, totals.reserve, totals.credits) == (PRICE, 0, 0,
                                                                              2 * PRICE)
    assert c.deposit_of(env.token, env.merchant.address)[1] == ceil_bps(PRICE, RATIO_BPS)  # the delivered one
    before = c.balance(env.token, env.buyer.address)
    c.withdraw(env.token, env.buyer)
    assert c.balance(env.token, env.buyer.address) == before + 2 * PRICE
    assert_books(env, env.token)


def test_merchant_cancels_in_every_undisputed_open_state(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    orders: dict[S, bytes] = {}
    orders[S.FUNDED], _ = fund_order(env)
    orders[S.SHIPPED], _ = fund_order(env)
    ship_order(env, orders[S.SHIPPED])
    orders[S.DELIVERED], _ = delivered_order(env)
    for state in (*IN_RETURN, S.DISPUTED):
        orders[state], _ = delivered_order(env)
    for state in IN_RETURN:
        c.request_return(orders[state], PRICE, env.buyer)
    rth, _ = ship_return(env, orders[S.RETURN_SHIPPED])
    rth2, _ = ship_return(env, orders[S.RETURN_DELIVERED])
    deliver_return(env, orders[S.RETURN_DELIVERED], rth2)
    c.open_dispute(orders[S.DISPUTED], env.buyer)
    for state, oid in orders.items():
        assert c.state(oid) == state

    for n, state in enumerate((S.FUNDED, S.SHIPPED, S.DELIVERED, *IN_RETURN), start=1):
        oid = orders[state]
        for caller in (env.buyer, env.stranger):
            _reverts("EscrowUnauthorizedCaller", lambda oid=oid, caller=caller: c.cancel(
                oid, caller), orderId=_hex(oid), caller=caller.address)
        receipt = c.cancel(oid, env.merchant, EVIDENCE)
        assert the(env, receipt, "OrderRefunded") == {
            "orderId": oid, "buyer": env.buyer.address, "amount": PRICE, "evidence": EVIDENCE}
        assert c.state(oid) == S.REFUNDED
        assert c.credit_of(env.token, env.buyer.address) == n * PRICE
    disputed = orders[S.DISPUTED]
    _reverts("EscrowUnexpectedState", lambda: c.cancel(disputed, env.merchant),
             orderId=_hex(disputed), current=S.DISPUTED, expectedStates=UNDISPUTED_OPEN)
    assert c.credit_of(env.token, env.merchant.address) == 0
    assert c.deposit_of(env.token, env.merchant.address)[1] == ceil_bps(PRICE, RATIO_BPS)
    assert c.totals(env.token).fees == 0
    assert_books(env, env.token)


def test_windows_are_inclusive_and_timeouts_strict(escrow_env: EscrowEnv) -> None:
    """At a deadline's exact second the in-window action still works and the timeout does
    not; one second later it is the other way round. Each call is sent with Chain.transact
    (as the client does) in a block at the exact time: set_next_timestamp, and the pre-flight
    simulation runs on the pending block, which has that time. A refused call is decoded by
    that simulation and not sent; forced through with explicit gas (no simulation) it is
    mined at that time, fails and leaves the state alone."""
    env, c = escrow_env, escrow_env.client
    t = c.terms()
    waybills: dict[bytes, bytes] = {}

    def mined(when: int, fn: str, *args: Any, sender: LocalAccount,
              gas: int | None = None) -> dict[str, Any]:
        env.chain.set_next_timestamp(when)
        receipt = escrow_tx(env, fn, *args, sender=sender, gas=gas)
        assert block_time(env, receipt) == when
        return receipt

    def refused(when: int, oid: bytes, fn: str, *args: Any, sender: LocalAccount, error: str,
                parent_rerun: str | None = None, **expected: Any) -> None:
        """`error` at `when`, from the client's simulation; then mined and failed. How the
        client explains the mined failure: anvil traces the transaction, so it is the same
        error; the embedded chain re-runs it at the parent block, whose earlier time gives
        the same error (timeouts), none ("Unknown": an in-window action one second late)
        or another one (`parent_rerun`)."""
        state, latest = c.state(oid), env.chain.timestamp()
        env.chain.set_next_timestamp(when)
        simulated = _reverts(error, lambda: escrow_tx(env, fn, *args, sender=sender),
                             orderId=_hex(oid), **expected)
        assert env.chain.timestamp() == latest and c.state(oid) == state  # nothing sent
        with pytest.raises(ContractRevert) as info:
            mined(when, fn, *args, sender=sender, gas=1_000_000)
        assert env.chain.timestamp() == when and c.state(oid) == state
        err = info.value
        if env.chain.kind != "embedded":
            assert (err.error_name, err.error_args) == (error, simulated.error_args), str(err)
        elif parent_rerun is None:
            assert (err.error_name, err.error_args) == (error, simulated.error_args), str(err)
            assert str(err).endswith("(re-run at the parent block)"), str(err)
        elif parent_rerun == "Unknown":
            assert (err.error_name, err.error_args) == ("Unknown", {}), str(err)
            assert "re-run at the parent block it succeeds" in str(err), str(err)
        else:
            assert err.error_name == parent_rerun, str(err)

    def attested(kind: str, oid: bytes, at: int | None = None) -> tuple[Any, ...]:
        att, sig = attest(env, kind, oid, waybills[oid], at=at,
                          carrier=env.carrier2 if kind.startswith("Return") else None)
        return att.as_tuple(), sig

    # Created in the order their deadlines come, ten seconds apart (anvil may give
    # consecutive blocks the same time).
    def spaced(make: Callable[[], Any]) -> bytes:
        oid = make()[0]
        env.chain.time_travel(10)
        return bytes(oid)

    def shipped_order() -> tuple[bytes]:
        oid, _ = fund_order(env)
        waybills[oid], _ = ship_order(env, oid)
        return (oid,)

    def return_shipped_order() -> tuple[bytes]:
        oid, _ = delivered_order(env)
        c.request_return(oid, PRICE, env.buyer)
        waybills[oid], _ = ship_return(env, oid)
        return (oid,)

    returned, released, closed = (spaced(lambda: delivered_order(env)) for _ in range(3))
    shipped, refunded, late = (spaced(lambda: fund_order(env)) for _ in range(3))
    silent, unruled = (spaced(lambda: delivered_order(env)) for _ in range(2))
    for oid in (silent, unruled):
        c.open_dispute(oid, env.buyer)
        env.chain.time_travel(10)
    c.submit_evidence(unruled, env.merchant, "leaf:1:answer")
    lost, disputed = (spaced(shipped_order) for _ in range(2))
    return_lost, returned_back = (spaced(return_shipped_order) for _ in range(2))

    d = c.order(returned).deadline  # inspection: in-window actions up to and at the deadline
    mined(d, "requestReturn", returned, PRICE, ZERO32, sender=env.buyer)
    d = c.order(released).deadline
    refused(d, released, "release", released, ZERO32, sender=env.stranger,
            error="EscrowTooEarly", deadline=d)
    mined(d + 1, "release", released, ZERO32, sender=env.stranger)
    d = c.order(closed).deadline
    refused(d + 1, closed, "requestReturn", closed, 1, ZERO32, sender=env.buyer,
            error="EscrowWindowClosed", deadline=d, parent_rerun="Unknown")
    refused(d + 2, closed, "openDispute", closed, ZERO32, sender=env.buyer,
            error="EscrowWindowClosed", deadline=d)

    ship_by = c.order(shipped).deadline  # shipBy: a shipment at shipBy is on time
    waybills[shipped] = waybill("JD-on-time")
    mined(ship_by, "ship", *attested("Shipment", shipped, at=ship_by), sender=env.stranger)
    shipped_clock = c.order(shipped).clock
    assert shipped_clock == ship_by  # recorded then
    ship_by = c.order(refunded).deadline
    refused(ship_by, refunded, "refund", refunded, ZERO32, sender=env.stranger,
            error="EscrowTooEarly", deadline=ship_by)
    mined(ship_by + 1, "refund", refunded, ZERO32, sender=env.stranger)
    ship_by = c.order(late).deadline  # attested at shipBy, but recorded a second late
    waybills[late] = waybill("JD-late")
    refused(ship_by + 1, late, "ship", *attested("Shipment", late, at=ship_by),
            sender=env.stranger, error="EscrowLateShipment", shippedAt=ship_by, shipBy=ship_by,
            parent_rerun="EscrowInvalidTimestamp")  # at the parent's time, shipBy is ahead

    d = c.order(silent).deadline  # response window
    refused(d, silent, "claimDefault", silent, sender=env.buyer, error="EscrowTooEarly",
            deadline=d)
    mined(d + 1, "claimDefault", silent, sender=env.buyer)

    # Delivery window: the carrier's delivery and the merchant's dispute are in-window
    # actions, the buyer's refund the timeout.
    d = c.order(lost).deadline
    refused(d, lost, "refund", lost, ZERO32, sender=env.stranger, error="EscrowTooEarly",
            deadline=d)
    refused(d + 1, lost, "deliver", *attested("Delivery", lost), sender=env.stranger,
            error="EscrowWindowClosed", deadline=d, parent_rerun="Unknown")
    refused(d + 2, lost, "openDispute", lost, ZERO32, sender=env.merchant,
            error="EscrowWindowClosed", deadline=d)
    mined(d + 3, "refund", lost, ZERO32, sender=env.stranger)
    d = c.order(disputed).deadline
    mined(d, "openDispute", disputed, ZERO32, sender=env.merchant)
    # Return-delivery window: the carrier's delivery back, then the timeout settlement.
    d = c.order(return_lost).deadline
    refused(d, return_lost, "settleReturn", return_lost, ZERO32, sender=env.stranger,
            error="EscrowTooEarly", deadline=d)
    refused(d + 1, return_lost, "deliverReturn", *attested("ReturnDelivery", return_lost),
            sender=env.stranger, error="EscrowWindowClosed", deadline=d, parent_rerun="Unknown")
    mined(d + 2, "settleReturn", return_lost, ZERO32, sender=env.stranger)
    d = c.order(returned_back).deadline
    mined(d, "deliverReturn", *attested("ReturnDelivery", returned_back), sender=env.stranger)
    d = c.order(shipped).deadline  # shipped at shipBy: the carrier delivers at the last second
    assert d == shipped_clock + t.delivery_window
    mined(d, "deliver", *attested("Delivery", shipped), sender=env.stranger)

    d = c.dispute_of(unruled).opened_at + t.arbitration_window
    assert c.order(unruled).deadline == d  # answered: the arbitrator's window
    refused(d, unruled, "timeoutDispute", unruled, sender=env.stranger, error="EscrowTooEarly",
            deadline=d)
    mined(d + 1, "timeoutDispute", unruled, sender=env.stranger)

    orders = {returned: S.RETURNING, released: S.RELEASED, closed: S.DELIVERED,
              shipped: S.DELIVERED, refunded: S.REFUNDED, late: S.FUNDED, silent: S.RESOLVED,
              unruled: S.RESOLVED, lost: S.REFUNDED, disputed: S.DISPUTED,
              return_lost: S.RETURNED, returned_back: S.RETURN_DELIVERED}
    assert {o: c.state(o) for o in orders} == orders
    assert_books(env, env.token)


def test_time_dependent_revert_in_the_next_block_is_decoded(escrow_env: EscrowEnv) -> None:
    """The client simulates on the pending block, whose time is the next block's: after
    set_next_timestamp a revert that depends on that time is decoded before anything is
    sent, and an action that is only valid then passes. A transaction that passed its
    simulation but fails when mined (the deadline passed in between) keeps its revert data
    where the node traces transactions (anvil); the embedded chain has none to give."""
    env, c = escrow_env, escrow_env.client
    oid, _ = delivered_order(env)
    deadline = c.order(oid).deadline
    head = env.chain.w3.eth.block_number
    env.chain.set_next_timestamp(deadline + 1)
    _reverts("EscrowWindowClosed", lambda: c.request_return(oid, 1, env.buyer),
             orderId=_hex(oid), deadline=deadline)
    assert env.chain.w3.eth.block_number == head and c.state(oid) == S.DELIVERED  # not sent
    receipt = c.release(oid, env.stranger)  # at the latest block's time it would be too early
    assert block_time(env, receipt) == deadline + 1 and c.state(oid) == S.RELEASED

    other, _ = delivered_order(env)
    deadline = c.order(other).deadline
    fn = c.escrow.functions.requestReturn(other, 1, ZERO32)
    raw, tx_hash, _ = env.chain.build_signed(fn, env.buyer)  # simulated in the window
    env.chain.set_next_timestamp(deadline + 1)
    env.chain.broadcast(raw)
    receipt = env.chain.wait(tx_hash)
    assert (receipt["status"], block_time(env, receipt)) == (0, deadline + 1)
    assert c.state(other) == S.DELIVERED
    data = env.chain.revert_data(tx_hash)
    if env.chain.kind == "embedded":
        assert data is None
    else:
        assert data is not None
        err = decode_revert(data)
        assert (err.error_name, err.error_args) == (
            "EscrowWindowClosed", {"orderId": _hex(other), "deadline": deadline})


# =========================================================================================
# Returns
# =========================================================================================


def test_partial_return_confirmed_by_the_merchant(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    t = c.terms()
    oid, th = delivered_order(env)
    amount = PRICE * 3 // 10
    for caller in (env.merchant, env.stranger):
        _reverts("EscrowUnauthorizedCaller", lambda caller=caller: c.request_return(
            oid, amount, caller), orderId=_hex(oid), caller=caller.address)
    for bad in (0, PRICE + 1):
        _reverts("EscrowInvalidReturnAmount", lambda bad=bad: c.request_return(
            oid, bad, env.buyer), orderId=_hex(oid), amount=bad, price=PRICE)
    receipt = c.request_return(oid, amount, env.buyer, EVIDENCE)
    assert the(env, receipt, "ReturnRequested") == {
        "orderId": oid, "amount": amount, "evidence": EVIDENCE}
    requested = block_time(env, receipt)
    info = c.order(oid)
    assert (info.state, info.clock, info.deadline) == (
        S.RETURNING, requested, requested + t.return_ship_window)
    assert c.return_of(oid) == (amount, ZERO32)
    _reverts("EscrowUnexpectedState", lambda: c.request_return(oid, amount, env.buyer),
             current=S.RETURNING, expectedStates=mask(S.DELIVERED))
    _reverts("EscrowUnexpectedState", lambda: c.settle_return(oid, env.stranger),
             current=S.RETURNING, expectedStates=mask(S.RETURN_SHIPPED, S.RETURN_DELIVERED))

    # The return parcel is attested by a carrier that is neither party.
    rth = waybill("RET-000777")
    for party in (env.buyer, env.merchant):
        c.set_carrier(party.address, True, env.admin)
        att, sig = attest(env, "ReturnShipment", oid, rth, carrier=party)
        _reverts("EscrowSignerIsParty", lambda att=att, sig=sig: c.ship_return(
            att, sig, env.stranger), orderId=_hex(oid), signer=party.address)
    att, sig = attest(env, "ReturnShipment", oid, rth, carrier=env.stranger)
    _reverts("EscrowNotCarrier", lambda: c.ship_return(att, sig, env.stranger),
             signer=env.stranger.address)
    att, sig = attest(env, "Shipment", oid, rth)  # an outbound-type signature
    as_return = dataclasses.replace(att, kind="ReturnShipment")
    bogus = signer_of(env, as_return, sig)
    assert bogus != env.carrier.address
    _reverts("EscrowNotCarrier", lambda: c.ship_return(as_return, sig, env.stranger),
             orderId=_hex(oid), signer=bogus)
    future = env.chain.timestamp() + HOUR
    att, sig = attest(env, "ReturnShipment", oid, rth, at=future, carrier=env.carrier2)
    _reverts("EscrowInvalidTimestamp", lambda: c.ship_return(att, sig, env.stranger),
             orderId=_hex(oid), timestamp=future, notBefore=0)
    att, sig = attest(env, "ReturnShipment", oid, th)  # the outbound waybill again
    _reverts("EscrowTrackingReused", lambda: c.ship_return(att, sig, env.stranger),
             trackingHash=_hex(th), firstOrderId=_hex(oid))

    # An attested time before the return was even requested is evidence only: the
    # return-delivery window runs from when the return shipment is recorded.
    shipped = requested - 1
    rth, receipt = ship_return(env, oid, th=rth, at=shipped)
    assert the(env, receipt, "ReturnShipped") == {
        "orderId": oid, "carrier": env.carrier2.address, "trackingHash": rth,
        "shippedAt": shipped, "evidence": EVIDENCE}
    recorded = block_time(env, receipt)
    assert c.return_of(oid) == (amount, rth)
    info = c.order(oid)
    assert (info.state, info.clock, info.deadline) == (
        S.RETURN_SHIPPED, recorded, recorded + t.return_delivery_window)
    for wrong in (th, waybill("RET-other")):
        att, sig = attest(env, "ReturnDelivery", oid, wrong, carrier=env.carrier2)
        _reverts("EscrowTrackingMismatch", lambda att=att, sig=sig: c.deliver_return(
            att, sig, env.stranger), orderId=_hex(oid), trackingHash=_hex(wrong))
    att, sig = attest(env, "ReturnDelivery", oid, rth, carrier=env.buyer)
    _reverts("EscrowSignerIsParty", lambda: c.deliver_return(att, sig, env.stranger),
             signer=env.buyer.address)
    future = env.chain.timestamp() + HOUR
    att, sig = attest(env, "ReturnDelivery", oid, rth, at=future, carrier=env.carrier2)
    _reverts("EscrowInvalidTimestamp", lambda: c.deliver_return(att, sig, env.stranger),
             orderId=_hex(oid), timestamp=future, notBefore=0)
    # Likewise a delivery dated before the attested shipment: the return-inspection
    # window runs from recording.
    receipt = deliver_return(env, oid, rth, at=shipped - 1)
    assert the(env, receipt, "ReturnDelivered") == {
        "orderId": oid, "carrier": env.carrier2.address, "trackingHash": rth,
        "deliveredAt": shipped - 1, "evidence": EVIDENCE}
    arrived = block_time(env, receipt)
    info = c.order(oid)
    assert (info.state, info.clock, info.deadline) == (
        S.RETURN_DELIVERED, arrived, arrived + t.return_inspection_window)

    for caller in (env.buyer, env.stranger):
        _reverts("EscrowUnauthorizedCaller", lambda caller=caller: c.confirm_return(
            oid, caller), orderId=_hex(oid), caller=caller.address)
    receipt = c.confirm_return(oid, env.merchant, EVIDENCE)
    payout, fee, reserve = shares(env, PRICE - amount)
    assert the(env, receipt, "ReturnSettled") == {
        "orderId": oid, "refund": amount, "payee": env.merchant.address, "payout": payout,
        "fee": fee, "reserve": reserve, "evidence": EVIDENCE}
    assert c.state(oid) == S.RETURNED
    assert c.credit_of(env.token, env.buyer.address) == amount
    assert c.credit_of(env.token, env.merchant.address) == payout
    totals = c.totals(env.token)
    assert (totals.escrowed, totals.fees, totals.reserve, totals.credits) == (
        0, fee, reserve, amount + payout)
    _reverts("EscrowUnexpectedState", lambda: c.confirm_return(oid, env.merchant),
             current=S.RETURNED, expectedStates=mask(*IN_RETURN))
    before = c.balance(env.token, env.buyer.address)
    c.withdraw(env.token, env.buyer)
    assert c.balance(env.token, env.buyer.address) == before + amount
    assert_books(env, env.token)


def test_returns_settled_by_timeouts(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    t = c.terms()
    late, _ = delivered_order(env)  # the buyer never asks within the inspection window
    full, _ = delivered_order(env)  # full return, delivered back, merchant silent
    lost, _ = delivered_order(env)  # half return, shipped back, never delivered
    kept, _ = delivered_order(env)  # return requested, never shipped
    c.request_return(full, PRICE, env.buyer)
    full_th, _ = ship_return(env, full)
    receipt = deliver_return(env, full, full_th)
    full_deadline = block_time(env, receipt) + t.return_inspection_window
    c.request_return(lost, PRICE // 2, env.buyer)
    lost_th, receipt = ship_return(env, lost)
    lost_deadline = block_time(env, receipt) + t.return_delivery_window  # from recording
    receipt = c.request_return(kept, PRICE // 4, env.buyer)
    kept_deadline = block_time(env, receipt) + t.return_ship_window
    assert [c.order(o).deadline for o in (full, lost, kept)] == [
        full_deadline, lost_deadline, kept_deadline]

    _reverts("EscrowTooEarly", lambda: c.settle_return(full, env.stranger),
             orderId=_hex(full), deadline=full_deadline)
    _reverts("EscrowTooEarly", lambda: c.settle_return(lost, env.stranger),
             orderId=_hex(lost), deadline=lost_deadline)
    _reverts("EscrowTooEarly", lambda: c.release(kept, env.stranger), orderId=_hex(kept),
             deadline=kept_deadline)

    past(env, kept_deadline)  # also past the inspection windows and the return inspection
    late_deadline = c.order(late).deadline
    _reverts("EscrowWindowClosed", lambda: c.request_return(late, 1, env.buyer),
             orderId=_hex(late), deadline=late_deadline)
    att, sig = attest(env, "ReturnShipment", kept, waybill("RET-too-late"), carrier=env.carrier2)
    _reverts("EscrowWindowClosed", lambda: c.ship_return(att, sig, env.stranger),
             orderId=_hex(kept), deadline=kept_deadline)
    # A requested return never shipped in time: the merchant is paid in full.
    receipt = c.release(kept, env.stranger, EVIDENCE)
    kept_payout, kept_fee, kept_reserve = shares(env, PRICE)
    assert the(env, receipt, "OrderReleased") == {
        "orderId": kept, "payee": env.merchant.address, "payout": kept_payout, "fee": kept_fee,
        "reserve": kept_reserve, "evidence": EVIDENCE}
    # A delivered full return the merchant did not dispute: the buyer gets it all, no fee.
    receipt = c.settle_return(full, env.stranger, EVIDENCE)
    assert the(env, receipt, "ReturnSettled") == {
        "orderId": full, "refund": PRICE, "payee": env.merchant.address, "payout": 0, "fee": 0,
        "reserve": 0, "evidence": EVIDENCE}

    _reverts("EscrowTooEarly", lambda: c.settle_return(lost, env.stranger),
             deadline=lost_deadline)
    # The carrier's delivery of the return must be recorded within the return-delivery
    # window, however it is dated.
    att, sig = attest(env, "ReturnDelivery", lost, lost_th, at=lost_deadline - HOUR,
                      carrier=env.carrier2)
    past(env, lost_deadline)
    _reverts("EscrowWindowClosed", lambda: c.deliver_return(att, sig, env.stranger),
             orderId=_hex(lost), deadline=lost_deadline)
    assert c.state(lost) == S.RETURN_SHIPPED
    receipt = c.settle_return(lost, env.buyer)
    lost_payout, lost_fee, lost_reserve = shares(env, PRICE - PRICE // 2)
    event = the(env, receipt, "ReturnSettled")
    assert (event["refund"], event["payout"], event["fee"], event["reserve"]) == (
        PRICE // 2, lost_payout, lost_fee, lost_reserve)
    assert [c.state(o) for o in (full, lost, kept)] == [S.RETURNED, S.RETURNED, S.RELEASED]
    assert c.credit_of(env.token, env.buyer.address) == PRICE + PRICE // 2
    assert c.credit_of(env.token, env.merchant.address) == kept_payout + lost_payout
    totals = c.totals(env.token)
    assert (totals.escrowed, totals.fees, totals.reserve) == (
        PRICE, kept_fee + lost_fee, kept_reserve + lost_reserve)  # `late` is still open
    assert_books(env, env.token)


# =========================================================================================
# Disputes
# =========================================================================================


def test_who_may_open_a_dispute_and_when(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    t = c.terms()
    arb = c.arbitrator
    assert arb is not None
    shipped, _ = fund_order(env)
    ship_order(env, shipped)
    _reverts("EscrowUnexpectedState", lambda: c.open_dispute(shipped, env.buyer),
             orderId=_hex(shipped), current=S.SHIPPED,
             expectedStates=mask(S.DELIVERED, S.RETURNING))
    for caller in (env.stranger, env.carrier, env.panel[0]):
        _reverts("EscrowUnauthorizedCaller", lambda caller=caller: c.open_dispute(
            shipped, caller), orderId=_hex(shipped), caller=caller.address)
    _reverts("EscrowWrongValue", lambda: escrow_tx(
        env, "openDispute", shipped, EVIDENCE, sender=env.merchant, value=1),
        expected=0, received=1)
    funded, _ = fund_order(env)
    _reverts("EscrowUnexpectedState", lambda: c.open_dispute(funded, env.merchant),
             current=S.FUNDED, expectedStates=mask(S.SHIPPED, S.DELIVERED, *IN_RETURN))

    receipt = c.open_dispute(shipped, env.merchant, EVIDENCE)
    opened = block_time(env, receipt)
    assert names(env, receipt) == ["DisputeCreation", "DisputeOpened", "Dispute", "Evidence"]
    assert the(env, receipt, "DisputeCreation") == {"disputeID": 0, "arbitrable": c.address}
    assert the(env, receipt, "DisputeOpened") == {
        "orderId": shipped, "arbitrator": arb.address, "disputeId": 0,
        "opener": env.merchant.address, "evidence": EVIDENCE}
    group = int.from_bytes(shipped, "big")
    assert the(env, receipt, "Dispute") == {
        "arbitrator": arb.address, "disputeID": 0, "metaEvidenceID": 1, "evidenceGroupID": group}
    assert the(env, receipt, "Evidence") == {
        "arbitrator": arb.address, "evidenceGroupID": group, "party": env.merchant.address,
        "evidence": "0x" + EVIDENCE.hex()}
    d = c.dispute_of(shipped)
    assert (d.arbitrator, d.dispute_id, d.opened_at, d.opener, d.answered) == (
        arb.address, 0, opened, Party.MERCHANT, False)
    assert (c.order(shipped).state, c.order(shipped).deadline) == (
        S.DISPUTED, opened + t.response_window)
    assert env.chain.call(c.escrow.functions.orderOfDispute(arb.address, 0)) == shipped
    dispute = env.chain.call(arb.functions.disputes(0))
    assert (dispute[0], dispute[4]) == (c.address, RULING_OPTIONS)
    _reverts("EscrowUnexpectedState", lambda: c.open_dispute(shipped, env.buyer),
             current=S.DISPUTED, expectedStates=mask(S.SHIPPED, S.DELIVERED, *IN_RETURN))

    # The buyer: while Delivered or Returning (in the window); the merchant: Shipped or returns.
    delivered, _ = delivered_order(env)
    _reverts("EscrowUnexpectedState", lambda: c.open_dispute(delivered, env.merchant),
             current=S.DELIVERED, expectedStates=mask(S.SHIPPED, *IN_RETURN))
    c.open_dispute(delivered, env.buyer)
    assert c.dispute_of(delivered).opener == Party.BUYER
    returning, _ = delivered_order(env)
    c.request_return(returning, PRICE, env.buyer)
    c.open_dispute(returning, env.buyer)
    merchant_side: list[bytes] = []
    for n in range(3):
        oid, _ = delivered_order(env)
        c.request_return(oid, PRICE, env.buyer)
        if n >= 1:
            rth, _ = ship_return(env, oid)
        if n == 2:
            deliver_return(env, oid, rth)
        merchant_side.append(oid)
    _reverts("EscrowUnexpectedState", lambda: c.open_dispute(merchant_side[1], env.buyer),
             current=S.RETURN_SHIPPED, expectedStates=mask(S.DELIVERED, S.RETURNING))
    for oid, state in zip(merchant_side, IN_RETURN, strict=True):
        assert c.state(oid) == state
        c.open_dispute(oid, env.merchant)
        assert c.dispute_of(oid).opener == Party.MERCHANT
    assert [c.dispute_of(o).dispute_id for o in (delivered, returning, *merchant_side)] == [
        1, 2, 3, 4, 5]

    # After the windows: closed for the buyer, and for the merchant in return states ...
    late_buyer, _ = delivered_order(env)
    late_merchant, _ = delivered_order(env)
    c.request_return(late_merchant, PRICE, env.buyer)
    slow, _ = fund_order(env)
    ship_order(env, slow)
    timely, _ = fund_order(env)
    ship_order(env, timely)
    past(env, c.order(late_merchant).deadline)
    _reverts("EscrowWindowClosed", lambda: c.open_dispute(late_buyer, env.buyer),
             orderId=_hex(late_buyer), deadline=c.order(late_buyer).deadline)
    _reverts("EscrowWindowClosed", lambda: c.open_dispute(late_merchant, env.merchant),
             orderId=_hex(late_merchant), deadline=c.order(late_merchant).deadline)
    # ... and for the merchant while Shipped: within the delivery window only, like every
    # in-window action; after it the buyer's timeout refund is due.
    slow_deadline = c.order(slow).deadline
    assert c.order(timely).deadline >= slow_deadline
    past(env, slow_deadline - HOUR)
    c.open_dispute(timely, env.merchant)
    assert c.state(timely) == S.DISPUTED
    past(env, slow_deadline)
    _reverts("EscrowWindowClosed", lambda: c.open_dispute(slow, env.merchant),
             orderId=_hex(slow), deadline=slow_deadline)
    assert c.state(slow) == S.SHIPPED
    receipt = c.refund(slow, env.buyer, EVIDENCE)
    assert the(env, receipt, "OrderRefunded") == {
        "orderId": slow, "buyer": env.buyer.address, "amount": PRICE, "evidence": EVIDENCE}
    _reverts("EscrowUnexpectedState", lambda: c.open_dispute(slow, env.merchant),
             current=S.REFUNDED, expectedStates=mask(S.SHIPPED, S.DELIVERED, *IN_RETURN))


def test_arbitration_cost_must_be_paid_exactly(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    arb = c.arbitrator
    assert arb is not None
    cost = 10**16
    members = [m.address for m in env.panel]
    _reverts("AccessControlUnauthorizedAccount", lambda: env.chain.transact(
        arb.functions.setPanel(members, 2, cost), env.merchant),
        account=env.merchant.address, neededRole=ADMIN_ROLE)
    # The attack: price disputes out of reach for open orders, so the merchant wins by timeout.
    # A cost is part of an immutable panel epoch, and an order's terms name the epoch it gets.
    before, _ = delivered_order(env)
    receipt = env.chain.transact(arb.functions.setPanel(members, 2, cost), env.admin)
    assert the(env, receipt, "PanelSet") == {"epoch": 2, "members": members, "threshold": 2,
                                             "cost": cost}
    assert c.arbitration_cost(before) == 0  # epoch 1, as when it was funded
    c.open_dispute(before, env.buyer)
    assert env.chain.call(arb.functions.disputes(c.dispute_of(before).dispute_id))[1] == 1
    # Orders funded under terms naming epoch 2 pay its cost, exactly.
    c.set_terms(dataclasses.replace(c.terms(), arbitrator_extra_data=panel_extra_data(2)),
                "ipfs://epoch-2", env.admin)
    oid, _ = delivered_order(env)
    assert c.arbitration_cost(oid) == cost
    for wrong in (0, cost - 1, cost + 1):
        _reverts("EscrowWrongValue", lambda wrong=wrong: escrow_tx(
            env, "openDispute", oid, EVIDENCE, sender=env.buyer, value=wrong),
            expected=cost, received=wrong)
    arb_before, escrow_before = c.balance(ETH, arb.address), c.balance(ETH)
    c.open_dispute(oid, env.buyer, EVIDENCE)
    assert c.balance(ETH, arb.address) == arb_before + cost
    assert c.balance(ETH) == escrow_before
    assert c.state(oid) == S.DISPUTED
    assert_books(env, ETH, env.token)


def test_the_arbitration_fee_goes_back_to_the_winner_of_a_default_or_timeout(escrow_env: EscrowEnv) -> None:
    """A dispute's fee is held by the panel until its ruling reaches the escrow; if the escrow ends
    the dispute without it (the respondent's default, the arbitrator's timeout), anyone can have
    the fee refunded to the opener, and the admin can never withdraw a held fee."""
    env, c = escrow_env, escrow_env.client
    arb = c.arbitrator
    assert arb is not None
    cost = 10**16
    members = [m.address for m in env.panel]
    env.chain.transact(arb.functions.setPanel(members, 2, cost), env.admin)
    c.set_terms(dataclasses.replace(c.terms(), arbitrator_extra_data=panel_extra_data(2)),
                "ipfs://paid-panel", env.admin)
    t = c.terms()

    def refund(d: int) -> dict[str, Any]:
        return env.chain.transact(arb.functions.refundFee(d), env.stranger)

    # 1. The merchant never answers: the buyer wins by default and gets the fee back.
    silent, _ = delivered_order(env)
    c.open_dispute(silent, env.buyer)
    d1 = c.dispute_of(silent).dispute_id
    _reverts("PanelFeeNotRefundable", lambda: refund(d1), disputeID=d1, feeState=0)  # still open
    past(env, c.order(silent).deadline)
    c.claim_default(silent, env.buyer)
    before = c.balance(ETH, env.buyer.address)
    receipt = refund(d1)
    assert the(env, receipt, "FeeRefunded") == {"disputeID": d1, "to": env.buyer.address, "amount": cost}
    assert c.balance(ETH, env.buyer.address) == before + cost
    _reverts("PanelFeeNotRefundable", lambda: refund(d1), disputeID=d1, feeState=2)  # once
    # A late majority changes nothing: the dispute is closed to votes once refunded.
    _reverts("PanelDisputeNotWaiting", lambda: c.vote(d1, Ruling.RELEASE, env.panel[0]),
             disputeID=d1)

    # 2. Answered, but the panel never rules: after the arbitration window the fee goes back
    #    to the opener (the merchant here), who paid it.
    shipped, _ = fund_order(env)
    ship_order(env, shipped)
    c.open_dispute(shipped, env.merchant)
    d2 = c.dispute_of(shipped).dispute_id
    c.submit_evidence(shipped, env.buyer, "leaf:1:ab")
    past(env, c.order(shipped).clock + t.arbitration_window)
    c.timeout_dispute(shipped, env.stranger)
    before = c.balance(ETH, env.merchant.address)
    assert the(env, refund(d2), "FeeRefunded")["to"] == env.merchant.address
    assert c.balance(ETH, env.merchant.address) == before + cost

    # 3. A ruling delivered earns the fee: no refund; the admin withdraws only earned fees.
    ruled, _ = delivered_order(env)
    open_with_panel(env, ruled, env.buyer, Ruling.REFUND)
    d3 = c.dispute_of(ruled).dispute_id
    _reverts("PanelFeeNotRefundable", lambda: refund(d3), disputeID=d3, feeState=1)
    held, _ = delivered_order(env)
    c.open_dispute(held, env.buyer)  # its fee is held
    assert env.chain.call(arb.functions.earnedFees()) == cost
    assert c.balance(ETH, arb.address) == 2 * cost
    _reverts("PanelWithdrawalFailed", lambda: env.chain.transact(
        arb.functions.withdrawFees(env.treasury.address, cost + 1), env.admin),
        to=env.treasury.address, amount=cost + 1)
    env.chain.transact(arb.functions.withdrawFees(env.treasury.address, cost), env.admin)
    assert c.balance(ETH, arb.address) == cost and env.chain.call(arb.functions.earnedFees()) == 0


def test_evidence_and_panel_votes(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    arb = c.arbitrator
    assert arb is not None
    p1, p2, p3 = env.panel
    t = c.terms()
    oid, _ = delivered_order(env)
    opened = block_time(env, c.open_dispute(oid, env.buyer, EVIDENCE))
    d = c.dispute_of(oid).dispute_id
    group = int.from_bytes(oid, "big")

    receipt = c.submit_evidence(oid, env.buyer, "leaf:7:ab01")  # the opener's: no answer
    assert names(env, receipt) == ["Evidence"]
    # Unanswered, the order's deadline is the respondent's (for claimDefault) ...
    assert (c.order(oid).clock, c.order(oid).deadline) == (opened, opened + t.response_window)
    assert the(env, receipt, "Evidence") == {
        "arbitrator": arb.address, "evidenceGroupID": group, "party": env.buyer.address,
        "evidence": "leaf:7:ab01"}
    assert not c.dispute_of(oid).answered
    for caller in (env.stranger, env.panel[0], env.carrier):
        _reverts("EscrowUnauthorizedCaller", lambda caller=caller: c.submit_evidence(
            oid, caller, "x"), orderId=_hex(oid), caller=caller.address)
    receipt = c.submit_evidence(oid, env.merchant, "leaf:8:cd02")  # the respondent's answer
    assert names(env, receipt) == ["DisputeAnswered", "Evidence"]
    assert the(env, receipt, "DisputeAnswered") == {
        "orderId": oid, "respondent": env.merchant.address}
    assert c.dispute_of(oid).answered
    # ... answered, it is the arbitrator's (after it anyone may timeoutDispute).
    assert (c.order(oid).clock, c.order(oid).deadline) == (
        opened, opened + t.arbitration_window)
    assert names(env, c.submit_evidence(oid, env.merchant, "leaf:9:ef03")) == ["Evidence"]

    _reverts("PanelNotMember", lambda: c.vote(d, Ruling.REFUND, env.stranger),
             disputeID=d, caller=env.stranger.address)
    receipt = c.vote(d, Ruling.REFUND, p1)
    assert names(env, receipt) == ["VoteCast"]
    assert the(env, receipt, "VoteCast") == {
        "disputeID": d, "member": p1.address, "ruling": 1, "votes": 1}
    _reverts("PanelAlreadyVoted", lambda: c.vote(d, Ruling.RELEASE, p1), disputeID=d,
             member=p1.address)
    _reverts("PanelInvalidRuling", lambda: c.vote(d, RULING_OPTIONS + 1, p2), disputeID=d,
             ruling=RULING_OPTIONS + 1, choices=RULING_OPTIONS)
    c.vote(d, Ruling.RELEASE, p2)  # one vote each: nothing decided
    assert c.state(oid) == S.DISPUTED
    assert env.chain.call(arb.functions.votesFor(d, 1, p1.address)) == [1, True]
    receipt = c.vote(d, Ruling.REFUND, p3)
    assert names(env, receipt) == ["VoteCast", "DisputeRuled", "Ruling", "DisputeResolved"]
    assert the(env, receipt, "Ruling") == {"arbitrator": arb.address, "disputeID": d,
                                           "ruling": 1}
    assert the(env, receipt, "DisputeResolved") == {
        "orderId": oid, "ruling": 1, "how": Resolution.RULING, "toBuyer": PRICE,
        "payee": env.merchant.address, "payout": 0, "fee": 0, "reserve": 0, "compensation": 0}
    assert c.state(oid) == S.RESOLVED
    assert c.credit_of(env.token, env.buyer.address) == PRICE
    assert c.credit_of(env.token, env.merchant.address) == 0
    assert c.deposit_of(env.token, env.merchant.address) == (DEPOSIT, 0)
    assert env.chain.call(arb.functions.disputeStatus(d)) == 2  # Solved
    assert env.chain.call(arb.functions.currentRuling(d)) == 1
    _reverts("PanelDisputeNotWaiting", lambda: c.vote(d, Ruling.REFUND, p2), disputeID=d,
             status=2)
    _reverts("PanelUnknownDispute", lambda: c.vote(d + 1, Ruling.REFUND, p2), disputeID=d + 1)
    _reverts("EscrowUnexpectedState", lambda: c.submit_evidence(oid, env.buyer, "late"),
             current=S.RESOLVED, expectedStates=mask(S.DISPUTED))
    _reverts("PanelAppealsNotSupported", lambda: env.chain.transact(
        arb.functions.appeal(d, b""), env.merchant), disputeID=d)
    assert_books(env, env.token)


def test_release_and_split_rulings_and_panel_snapshot(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    arb = c.arbitrator
    assert arb is not None
    # Rulings are contiguous: 0..3 named, then 4 + the buyer's basis points, up to 10004.
    assert (env.chain.call(c.escrow.functions.RULING_SPLIT_BASE()),
            env.chain.call(c.escrow.functions.RULING_OPTIONS())) == (
        RULING_SPLIT_BASE, RULING_OPTIONS)
    assert (split_ruling(0), split_ruling(2_500), split_ruling(BPS)) == (4, 2_504, 10_004)
    release, _ = delivered_order(env)
    receipt = open_with_panel(env, release, env.buyer, Ruling.RELEASE)
    payout, fee, reserve = shares(env, PRICE)
    assert the(env, receipt, "DisputeResolved") == {
        "orderId": release, "ruling": 2, "how": Resolution.RULING, "toBuyer": 0,
        "payee": env.merchant.address, "payout": payout, "fee": fee, "reserve": reserve,
        "compensation": 0}

    split, _ = fund_order(env, merchant=env.merchant2)
    ship_order(env, split)
    receipt = open_with_panel(env, split, env.merchant2, split_ruling(2_500))
    to_buyer = PRICE * 2_500 // BPS
    s_payout, s_fee, s_reserve = shares(env, PRICE - to_buyer)
    event = the(env, receipt, "DisputeResolved")
    assert (event["ruling"], event["toBuyer"], event["payee"], event["payout"], event["fee"],
            event["reserve"]) == (2_504, to_buyer, env.merchant2.address, s_payout,
                                  s_fee, s_reserve)
    assert to_buyer + s_payout + s_fee + s_reserve == PRICE

    # Ruling 0 ("refused") splits 50/50; splits at the extremes are full refund / release.
    refused, _ = delivered_order(env)
    receipt = open_with_panel(env, refused, env.buyer, Ruling.REFUSED)
    assert the(env, receipt, "DisputeResolved")["toBuyer"] == PRICE // 2
    everything, _ = delivered_order(env)
    receipt = open_with_panel(env, everything, env.buyer, split_ruling(10_000))
    assert the(env, receipt, "DisputeResolved")["payout"] == 0
    assert c.credit_of(env.token, env.buyer.address) == to_buyer + PRICE // 2 + PRICE
    r_payout, r_fee, r_reserve = shares(env, PRICE - PRICE // 2)
    assert c.credit_of(env.token, env.merchant.address) == payout + r_payout
    assert c.credit_of(env.token, env.merchant2.address) == s_payout
    assert c.totals(env.token).fees == fee + s_fee + r_fee
    assert c.totals(env.token).reserve == reserve + s_reserve + r_reserve

    # The panel is fixed when the order is funded: seating a friendly panel and publishing terms
    # that name it (the attack) changes who decides only orders funded afterwards.
    open_, _ = delivered_order(env)
    new_panel = [env.stranger, env.lender, env.treasury]
    receipt = env.chain.transact(arb.functions.setPanel([m.address for m in new_panel], 2, 0),
                                 env.admin)
    assert the(env, receipt, "PanelSet")["epoch"] == 2
    c.set_terms(dataclasses.replace(c.terms(), arbitrator_extra_data=panel_extra_data(2)),
                "ipfs://friendly-panel", env.admin)
    c.open_dispute(open_, env.buyer)
    d = c.dispute_of(open_).dispute_id
    _reverts("PanelNotMember", lambda: c.vote(d, Ruling.RELEASE, env.stranger), disputeID=d,
             caller=env.stranger.address)
    c.vote(d, Ruling.REFUND, env.panel[1])
    c.vote(d, Ruling.REFUND, env.panel[2])
    assert c.state(open_) == S.RESOLVED
    assert_books(env, env.token)
    with pytest.raises(ValueError):
        split_ruling(10_001)


def test_fraud_slashes_the_deposit_then_the_reserve(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    t = c.terms()
    # The merchant's deposit covers the compensation (20% of the price) in full.
    oid, _ = delivered_order(env)
    receipt = open_with_panel(env, oid, env.buyer, Ruling.FRAUD)
    due = PRICE * t.compensation_bps // BPS
    assert "ReservePaid" not in names(env, receipt)
    assert the(env, receipt, "DepositSlashed") == {
        "merchant": env.merchant.address, "token": env.token, "orderId": oid, "amount": due}
    event = the(env, receipt, "DisputeResolved")
    assert (event["ruling"], event["toBuyer"], event["payout"], event["compensation"]) == (
        3, PRICE, 0, due)
    assert c.credit_of(env.token, env.buyer.address) == PRICE + due
    assert c.deposit_of(env.token, env.merchant.address) == (DEPOSIT - due, 0)
    assert c.totals(env.token).deposits == 2 * DEPOSIT - due

    # Terms v2 compensate 100% of the price; thin merchants hold just the required deposit.
    c.set_terms(dataclasses.replace(t, compensation_bps=BPS), "ipfs://terms-v2", env.admin)
    need = ceil_bps(PRICE, RATIO_BPS)
    thin = [fresh_party(env, "thin merchant 1"), fresh_party(env, "thin merchant 2")]
    for m in thin:
        c.deposit(m.address, env.token, need, m)
    receipt = c.fund_reserve(env.token, PRICE, env.stranger)
    assert the(env, receipt, "ReserveFunded") == {
        "token": env.token, "from": env.stranger.address, "amount": PRICE}
    orders = [delivered_order(env, merchant=m, by=env.buyer2)[0] for m in thin]
    assert c.order(orders[0]).terms_id == 2

    # The deposit is short: the reserve pays the rest.
    receipt = open_with_panel(env, orders[0], env.buyer2, Ruling.FRAUD)
    assert the(env, receipt, "DepositSlashed")["amount"] == need
    assert the(env, receipt, "ReservePaid") == {
        "token": env.token, "orderId": orders[0], "buyer": env.buyer2.address,
        "amount": PRICE - need}
    assert the(env, receipt, "DisputeResolved")["compensation"] == PRICE
    assert c.credit_of(env.token, env.buyer2.address) == 2 * PRICE
    assert c.deposit_of(env.token, thin[0].address) == (0, 0)
    assert c.totals(env.token).reserve == need
    # The reserve is short too: it pays as far as it goes.
    receipt = open_with_panel(env, orders[1], env.buyer2, Ruling.FRAUD)
    assert the(env, receipt, "DepositSlashed")["amount"] == need
    assert the(env, receipt, "ReservePaid")["amount"] == need
    assert the(env, receipt, "DisputeResolved")["compensation"] == 2 * need
    assert c.credit_of(env.token, env.buyer2.address) == 3 * PRICE + 2 * need
    assert c.totals(env.token).reserve == 0
    assert_books(env, env.token)


def test_default_judgement_and_arbitrator_timeout(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    t = c.terms()
    arb = c.arbitrator
    assert arb is not None
    silent_merchant, _ = delivered_order(env)
    receipt = c.open_dispute(silent_merchant, env.buyer)
    opened_a = block_time(env, receipt)
    answered, _ = fund_order(env)
    ship_order(env, answered)
    receipt = c.open_dispute(answered, env.merchant)
    opened_b = block_time(env, receipt)
    c.submit_evidence(answered, env.buyer, "leaf:11:aa")
    silent_buyer, _ = fund_order(env)
    ship_order(env, silent_buyer)
    opened_c = block_time(env, c.open_dispute(silent_buyer, env.merchant))

    # getOrder's deadline: the respondent's until it answers, then the arbitrator's.
    assert [c.order(o).deadline for o in (silent_merchant, answered, silent_buyer)] == [
        opened_a + t.response_window, opened_b + t.arbitration_window,
        opened_c + t.response_window]
    _reverts("EscrowUnauthorizedCaller", lambda: c.claim_default(silent_merchant, env.merchant),
             orderId=_hex(silent_merchant), caller=env.merchant.address)
    _reverts("EscrowTooEarly", lambda: c.claim_default(silent_merchant, env.buyer),
             orderId=_hex(silent_merchant), deadline=opened_a + t.response_window)
    _reverts("EscrowRespondentAnswered", lambda: c.claim_default(answered, env.merchant),
             orderId=_hex(answered))
    _reverts("EscrowTooEarly", lambda: c.timeout_dispute(answered, env.stranger),
             orderId=_hex(answered), deadline=opened_b + t.arbitration_window)

    past(env, opened_c + t.response_window)  # the last of the two silent respondents
    # A late answer cannot take back the default the opener may now claim.
    _reverts("EscrowWindowClosed", lambda: c.submit_evidence(silent_merchant, env.merchant, "leaf:1:aa"),
             orderId=_hex(silent_merchant), deadline=opened_a + t.response_window)
    receipt = c.claim_default(silent_merchant, env.buyer)
    assert the(env, receipt, "DisputeResolved") == {
        "orderId": silent_merchant, "ruling": 1, "how": Resolution.DEFAULT, "toBuyer": PRICE,
        "payee": env.merchant.address, "payout": 0, "fee": 0, "reserve": 0, "compensation": 0}
    # The merchant shipped (perhaps an empty parcel) and disputed at once: the buyer's silence
    # never stands in for a delivery, so there is no default; the panel or the timeout decides.
    _reverts("EscrowDefaultNeedsDelivery", lambda: c.claim_default(silent_buyer, env.merchant),
             orderId=_hex(silent_buyer), openedIn=S.SHIPPED)
    _reverts("EscrowRespondentAnswered", lambda: c.claim_default(answered, env.merchant))
    # The panel's late ruling cannot undo a default judgement: final there, rejected here.
    d = c.dispute_of(silent_merchant).dispute_id
    c.vote(d, Ruling.RELEASE, env.panel[0])
    receipt = c.vote(d, Ruling.RELEASE, env.panel[1])
    assert "DisputeResolved" not in names(env, receipt)
    failure = the(env, receipt, "RulingDeliveryFailed")
    inner = decode_revert(bytes(failure["reason"]))
    assert (inner.error_name, inner.error_args["current"]) == ("EscrowUnexpectedState",
                                                               S.RESOLVED)
    assert c.credit_of(env.token, env.buyer.address) == PRICE

    # The arbitrator never rules on `answered`: after its window anyone ends it 50/50.
    _reverts("EscrowTooEarly", lambda: c.timeout_dispute(answered, env.stranger),
             deadline=opened_b + t.arbitration_window)
    past(env, opened_b + t.arbitration_window)
    receipt = c.timeout_dispute(answered, env.stranger)
    half_payout, half_fee, half_reserve = shares(env, PRICE - PRICE // 2)
    assert the(env, receipt, "DisputeResolved") == {
        "orderId": answered, "ruling": 0, "how": Resolution.ARBITRATOR_TIMEOUT,
        "toBuyer": PRICE // 2, "payee": env.merchant.address, "payout": half_payout,
        "fee": half_fee, "reserve": half_reserve, "compensation": 0}
    _reverts("EscrowUnexpectedState", lambda: c.timeout_dispute(answered, env.stranger),
             current=S.RESOLVED, expectedStates=mask(S.DISPUTED))
    assert c.credit_of(env.token, env.buyer.address) == PRICE + PRICE // 2
    assert c.credit_of(env.token, env.merchant.address) == half_payout
    assert_books(env, env.token)


def test_the_merchant_wins_by_default_only_a_return_it_never_got(escrow_env: EscrowEnv) -> None:
    """A merchant default needs evidenced delivery and no return parcel: from Returning (the
    buyer asked for a return and sent nothing) the silent buyer loses; once the parcel is on its
    way or back with the merchant, a default would let the merchant keep goods and money."""
    env, c = escrow_env, escrow_env.client
    t = c.terms()
    disputes = {}
    for state in (S.RETURNING, S.RETURN_SHIPPED, S.RETURN_DELIVERED):
        oid, _ = delivered_order(env)
        c.request_return(oid, PRICE, env.buyer)
        if state != S.RETURNING:
            th, _ = ship_return(env, oid)
            if state == S.RETURN_DELIVERED:
                deliver_return(env, oid, th)
        c.open_dispute(oid, env.merchant)
        assert c.dispute_of(oid).opened_in == state
        disputes[state] = oid
    past(env, c.dispute_of(disputes[S.RETURN_DELIVERED]).opened_at + t.response_window)
    for state in (S.RETURN_SHIPPED, S.RETURN_DELIVERED):
        _reverts("EscrowDefaultNeedsDelivery", lambda o=disputes[state]: c.claim_default(o, env.merchant),
                 openedIn=state)
    receipt = c.claim_default(disputes[S.RETURNING], env.merchant)
    event = the(env, receipt, "DisputeResolved")
    assert (event["ruling"], event["how"], event["toBuyer"]) == (Ruling.RELEASE, Resolution.DEFAULT, 0)
    assert_books(env, env.token)


def test_only_the_disputes_arbitrator_can_rule(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    arb = c.arbitrator
    assert arb is not None
    oid, _ = delivered_order(env)
    c.open_dispute(oid, env.buyer)
    d = c.dispute_of(oid).dispute_id
    for sender in (env.stranger, env.buyer, env.admin, env.panel[0]):
        _reverts("EscrowUnknownDispute", lambda sender=sender: escrow_tx(
            env, "rule", d, Ruling.REFUND, sender=sender), arbitrator=sender.address,
            disputeId=d)
    # A contract is no better, nor is a dispute id the escrow never opened.
    impostor = env.chain.deploy("MaliciousReceiver", sender=env.stranger)
    err = _reverts("MaliciousReceiverCallFailed", lambda: env.chain.transact(
        impostor.functions.exec(c.address, calldata(env, "rule", d, Ruling.REFUND)),
        env.stranger))
    assert (_inner(err).error_name, _args(_inner(err))) == (
        "EscrowUnknownDispute", {"arbitrator": impostor.address, "disputeId": d})
    assert c.state(oid) == S.DISPUTED

    # Every ruling the panel may give (0..10004, the choices the escrow asked for) means
    # something: 4 + b gives the buyer b basis points, so ruling 4 releases everything to the
    # merchant and 5004 splits 50/50. Both are delivered and resolve the order.
    c.vote(d, 4, env.panel[0])
    receipt = c.vote(d, 4, env.panel[2])
    assert names(env, receipt) == ["VoteCast", "DisputeRuled", "Ruling", "DisputeResolved"]
    payout, fee, reserve = shares(env, PRICE)
    assert the(env, receipt, "DisputeResolved") == {
        "orderId": oid, "ruling": 4, "how": Resolution.RULING, "toBuyer": 0,
        "payee": env.merchant.address, "payout": payout, "fee": fee, "reserve": reserve,
        "compensation": 0}
    assert c.state(oid) == S.RESOLVED
    assert env.chain.call(arb.functions.disputeStatus(d)) == 2
    assert env.chain.call(arb.functions.currentRuling(d)) == 4
    halves, _ = delivered_order(env)
    receipt = open_with_panel(env, halves, env.buyer, 5_004)
    h_payout, h_fee, h_reserve = shares(env, PRICE - PRICE // 2)
    assert the(env, receipt, "DisputeResolved") == {
        "orderId": halves, "ruling": 5_004, "how": Resolution.RULING, "toBuyer": PRICE // 2,
        "payee": env.merchant.address, "payout": h_payout, "fee": h_fee, "reserve": h_reserve,
        "compensation": 0}

    # The escrow rejects a final ruling only when the dispute has already ended: here the
    # panel is too slow, anyone ends the dispute 50/50 after the arbitration window, and the
    # panel's late ruling is final there but not delivered (RulingDeliveryFailed).
    slow, _ = delivered_order(env)
    opened = block_time(env, c.open_dispute(slow, env.buyer))
    c.submit_evidence(slow, env.merchant, "leaf:3:answer")  # answered: no default judgement
    d_slow = c.dispute_of(slow).dispute_id
    _reverts("PanelInvalidRuling", lambda: c.vote(d_slow, RULING_OPTIONS + 1, env.panel[0]),
             disputeID=d_slow, ruling=RULING_OPTIONS + 1, choices=RULING_OPTIONS)
    c.vote(d_slow, Ruling.RELEASE, env.panel[0])
    deadline = c.order(slow).deadline
    assert deadline == opened + c.terms().arbitration_window
    past(env, deadline)
    receipt = c.timeout_dispute(slow, env.stranger)
    event = the(env, receipt, "DisputeResolved")
    assert (event["ruling"], event["how"], event["toBuyer"]) == (
        0, Resolution.ARBITRATOR_TIMEOUT, PRICE // 2)
    receipt = c.vote(d_slow, Ruling.RELEASE, env.panel[1])
    assert names(env, receipt) == ["VoteCast", "DisputeRuled", "RulingDeliveryFailed"]
    inner = decode_revert(bytes(the(env, receipt, "RulingDeliveryFailed")["reason"]))
    assert (inner.error_name, _args(inner)) == ("EscrowUnexpectedState", {
        "orderId": _hex(slow), "current": S.RESOLVED, "expectedStates": mask(S.DISPUTED)})
    assert env.chain.call(arb.functions.disputeStatus(d_slow)) == 2
    assert env.chain.call(arb.functions.currentRuling(d_slow)) == Ruling.RELEASE
    assert c.state(slow) == S.RESOLVED
    assert c.credit_of(env.token, env.buyer.address) == 2 * (PRICE // 2)
    assert c.credit_of(env.token, env.merchant.address) == payout + 2 * h_payout
    assert_books(env, env.token)


# =========================================================================================
# Deposits, reserve, pledges
# =========================================================================================


def test_deposits_and_reserve(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    m = env.merchant
    oid, _ = fund_order(env)
    need = ceil_bps(PRICE, RATIO_BPS)
    assert c.deposit_of(env.token, m.address) == (DEPOSIT, need)
    free = DEPOSIT - need
    before = c.balance(env.token, m.address)
    receipt = c.withdraw_deposit(env.token, free - 5, m)
    assert the(env, receipt, "DepositWithdrawn") == {
        "merchant": m.address, "token": env.token, "amount": free - 5}
    assert c.balance(env.token, m.address) == before + free - 5
    _reverts("EscrowDepositLocked", lambda: c.withdraw_deposit(env.token, 6, m),
             merchant=m.address, requested=6, free=5)
    c.withdraw_deposit(env.token, 5, m)
    assert c.deposit_of(env.token, m.address) == (need, need)
    _reverts("EscrowDepositLocked", lambda: c.withdraw_deposit(env.token, 1, m),
             merchant=m.address, requested=1, free=0)
    _reverts("EscrowZeroAmount", lambda: c.withdraw_deposit(env.token, 0, m))
    _reverts("EscrowDepositLocked", lambda: c.withdraw_deposit(env.token, 1, env.stranger),
             merchant=env.stranger.address, requested=1, free=0)
    # The ratio is part of the terms each order keeps. An admin who publishes terms with no
    # deposit at all frees nothing an open order locks (the attack: unlock every deposit at once,
    # then let merchants walk away with them) ...
    t = c.terms()
    offer, sig = signed(env)  # signed under version 1
    c.set_terms(dataclasses.replace(t, deposit_ratio_bps=0), "ipfs://no-deposit", env.admin)
    assert c.deposit_of(env.token, m.address) == (need, need)
    _reverts("EscrowDepositLocked", lambda: c.withdraw_deposit(env.token, 1, m), free=0)
    # ... an offer the merchant signed under version 1 is not funded under version 2 ...
    _reverts("EscrowTermsNotCurrent", lambda: c.fund(offer, sig, env.buyer),
             orderId=_hex(offer.order_id), offered=1, current=2)
    # ... and a higher ratio does not lock more of what open orders hold: only new orders pay it.
    c.set_terms(dataclasses.replace(t, deposit_ratio_bps=BPS), "ipfs://full-deposit", env.admin)
    assert c.deposit_of(env.token, m.address) == (need, need)
    offer, sig = signed(env)
    assert offer.terms_id == 3
    _reverts("EscrowDepositTooLow", lambda: c.fund(offer, sig, env.buyer), merchant=m.address,
             have=need, need=need + PRICE)
    c.deposit(m.address, env.token, PRICE, m)
    later, _ = fund_order(env)
    assert c.deposit_of(env.token, m.address) == (need + PRICE, need + PRICE)
    c.cancel(later, m)  # settling it frees exactly what it locked, at its own ratio
    assert c.deposit_of(env.token, m.address) == (need + PRICE, need)
    c.withdraw_deposit(env.token, PRICE, m)
    c.set_terms(t, "ipfs://terms-v1-again", env.admin)

    # Bad deposits and donations.
    _reverts("EscrowZeroAddress", lambda: c.deposit(NATIVE, env.token, 1, env.stranger))
    _reverts("EscrowZeroAmount", lambda: c.deposit(m.address, env.token, 0, env.stranger))
    unlisted = env.chain.deploy("TestStablecoin", sender=env.admin).address
    _reverts("EscrowTokenNotAllowed", lambda: c.deposit(m.address, unlisted, 1, m),
             token=unlisted)
    _reverts("EscrowTokenNotAllowed", lambda: c.fund_reserve(unlisted, 1, m), token=unlisted)
    _reverts("EscrowZeroAmount", lambda: c.fund_reserve(env.token, 0, env.stranger))
    _reverts("EscrowWrongValue", lambda: escrow_tx(
        env, "depositFor", m.address, ETH, 100, sender=m, value=99), expected=100, received=99)
    _reverts("EscrowWrongValue", lambda: escrow_tx(
        env, "fundReserve", ETH, 100, sender=m, value=101), expected=100, received=101)
    _reverts("EscrowWrongValue", lambda: escrow_tx(
        env, "fundReserve", env.token, 100, sender=m, value=1), expected=0, received=1)

    # Donations to the reserve, in both tokens.
    receipt = c.fund_reserve(env.token, 777, env.stranger)
    assert the(env, receipt, "ReserveFunded") == {
        "token": env.token, "from": env.stranger.address, "amount": 777}
    receipt = c.fund_reserve(ETH, 10**15, env.buyer)
    assert the(env, receipt, "ReserveFunded") == {
        "token": ETH, "from": env.buyer.address, "amount": 10**15}
    assert (c.totals(env.token).reserve, c.totals(ETH).reserve) == (777, 10**15)

    # Once the order settles, the whole deposit is free again.
    c.cancel(oid, m)
    assert c.deposit_of(env.token, m.address) == (need, 0)
    c.withdraw_deposit(env.token, need, m)
    eth_before = c.balance(ETH, m.address)
    receipt = c.withdraw_deposit(ETH, 10**20, m)
    assert c.balance(ETH, m.address) == eth_before + 10**20 - gas_cost(receipt)
    assert c.deposit_of(ETH, m.address) == (0, 0)
    assert c.totals(env.token).deposits == DEPOSIT  # merchant2's
    assert_books(env, env.token, ETH)


def test_pledged_payouts_go_to_the_lender(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    lender = env.lender.address
    oid, _ = delivered_order(env)
    for caller in (env.buyer, env.stranger, env.lender):
        _reverts("EscrowUnauthorizedCaller", lambda caller=caller: c.pledge(
            oid, lender, caller), orderId=_hex(oid), caller=caller.address)
    for bad in (NATIVE, env.merchant.address):
        _reverts("EscrowInvalidLender", lambda bad=bad: c.pledge(oid, bad, env.merchant),
                 orderId=_hex(oid), lender=bad)
    receipt = c.pledge(oid, lender, env.merchant)
    assert the(env, receipt, "OrderPledged") == {
        "orderId": oid, "merchant": env.merchant.address, "lender": lender}
    assert c.lender_of(oid) == lender
    assert c.order(oid).lender == lender and c.order(oid).pledged
    for again in (lender, env.stranger.address):
        _reverts("EscrowAlreadyPledged", lambda again=again: c.pledge(oid, again, env.merchant),
                 orderId=_hex(oid), lender=lender)
    past_deadline(env, oid)
    receipt = c.release(oid, env.stranger)
    payout, fee, reserve = shares(env, PRICE)
    event = the(env, receipt, "OrderReleased")
    assert (event["payee"], event["payout"], event["fee"], event["reserve"]) == (
        lender, payout, fee, reserve)
    assert c.credit_of(env.token, lender) == payout
    assert c.credit_of(env.token, env.merchant.address) == 0
    _reverts("EscrowNothingToWithdraw", lambda: c.withdraw(env.token, env.merchant))
    before = c.balance(env.token, lender)
    c.withdraw(env.token, env.lender)
    assert c.balance(env.token, lender) == before + payout
    _reverts("EscrowUnexpectedState", lambda: c.pledge(oid, lender, env.merchant),
             current=S.RELEASED, expectedStates=UNDISPUTED_OPEN)

    # Once pledged, giving money back by consent is the lender's call, no longer the merchant's.
    refunded, _ = fund_order(env)
    c.pledge(refunded, lender, env.merchant)
    _reverts("EscrowUnauthorizedCaller", lambda: c.cancel(refunded, env.merchant),
             orderId=_hex(refunded), caller=env.merchant.address)
    receipt = c.cancel(refunded, env.lender)  # the lender agrees: the buyer is refunded in full
    assert the(env, receipt, "OrderRefunded")["buyer"] == env.buyer.address
    assert c.credit_of(env.token, env.buyer.address) == PRICE
    assert c.credit_of(env.token, lender) == 0
    # A partial return and a split ruling: the buyer's share first, the rest to the lender.
    returned, _ = delivered_order(env)
    c.pledge(returned, lender, env.merchant)
    c.request_return(returned, PRICE // 4, env.buyer)
    _reverts("EscrowUnauthorizedCaller", lambda: c.confirm_return(returned, env.merchant),
             orderId=_hex(returned), caller=env.merchant.address)
    receipt = c.confirm_return(returned, env.lender)
    r_payout = shares(env, PRICE - PRICE // 4)[0]
    event = the(env, receipt, "ReturnSettled")
    assert (event["refund"], event["payee"], event["payout"]) == (PRICE // 4, lender, r_payout)
    disputed, _ = delivered_order(env)
    c.pledge(disputed, lender, env.merchant)
    c.open_dispute(disputed, env.buyer)
    _reverts("EscrowUnexpectedState", lambda: c.pledge(disputed, env.stranger.address, env.merchant),
             current=S.DISPUTED, expectedStates=UNDISPUTED_OPEN)  # no pledge while disputed
    d = c.dispute_of(disputed).dispute_id
    c.vote(d, split_ruling(4_000), env.panel[0])
    receipt = c.vote(d, split_ruling(4_000), env.panel[1])
    d_payout = shares(env, PRICE - PRICE * 4_000 // BPS)[0]
    assert the(env, receipt, "DisputeResolved")["payee"] == lender
    assert c.credit_of(env.token, lender) == r_payout + d_payout
    assert c.credit_of(env.token, env.buyer.address) == PRICE + PRICE // 4 + PRICE * 4_000 // BPS
    assert c.credit_of(env.token, env.merchant.address) == 0
    assert_books(env, env.token)


def test_a_merchant_and_its_own_buyer_address_cannot_void_a_pledge(escrow_env: EscrowEnv) -> None:
    """The attack: a merchant funds its order from a second address of its own, gets a loan
    against the pledged payout, then tries every way for the pair to take the money back. Each
    fails, and the lender is paid what an independent buyer's rights leave it: in full here."""
    env, c = escrow_env, escrow_env.client
    accomplice = fresh_party(env, "the merchant's own buyer address")
    lender = env.lender.address

    def pledged_order() -> bytes:
        oid, _ = fund_order(env, by=accomplice)
        th, _ = ship_order(env, oid)
        deliver_order(env, oid, th)
        c.pledge(oid, lender, env.merchant)
        return oid

    # 1. Cancel: the merchant alone can no longer refund the buyer.
    cancelled = pledged_order()
    _reverts("EscrowUnauthorizedCaller", lambda: c.cancel(cancelled, env.merchant),
             orderId=_hex(cancelled), caller=env.merchant.address)
    # 2. A 100 % "return" that no parcel backs, confirmed by the merchant: refused; with no parcel
    #    sent back in time the order is released, to the lender.
    returned = pledged_order()
    c.request_return(returned, PRICE, accomplice)
    _reverts("EscrowUnauthorizedCaller", lambda: c.confirm_return(returned, env.merchant),
             orderId=_hex(returned), caller=env.merchant.address)
    past_deadline(env, returned)
    assert the(env, c.release(returned, env.stranger), "OrderReleased")["payee"] == lender
    # 3. A dispute the merchant leaves unanswered, for a default refund: the lender answers it.
    disputed = pledged_order()
    c.open_dispute(disputed, accomplice)
    receipt = c.submit_evidence(disputed, env.lender, "leaf:7:" + "ab" * 32)
    assert the(env, receipt, "DisputeAnswered")["respondent"] == lender
    past(env, c.dispute_of(disputed).opened_at + c.terms().response_window)
    _reverts("EscrowRespondentAnswered", lambda: c.claim_default(disputed, accomplice),
             orderId=_hex(disputed))
    ruled = open_with_panel_vote(env, disputed, Ruling.RELEASE)
    assert the(env, ruled, "DisputeResolved")["payee"] == lender
    payout = shares(env, PRICE)[0]
    assert c.credit_of(env.token, lender) == 2 * payout
    assert c.credit_of(env.token, accomplice.address) == 0
    # The lender also acts for the merchant's side: it may open a dispute of a return itself.
    contested = pledged_order()
    c.request_return(contested, PRICE, accomplice)
    c.open_dispute(contested, env.lender)
    assert c.dispute_of(contested).opener == Party.MERCHANT
    assert_books(env, env.token)


def open_with_panel_vote(env: EscrowEnv, oid: bytes, ruling: int) -> dict[str, Any]:
    """Two of the three panel members rule on an open dispute; the deciding receipt."""
    d = env.client.dispute_of(oid).dispute_id
    env.client.vote(d, ruling, env.panel[0])
    return env.client.vote(d, ruling, env.panel[1])


# =========================================================================================
# Administration
# =========================================================================================


def test_admin_parameters_have_hard_bounds(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    t = c.terms()
    cases = [
        ("feeBps", "fee_bps", 0, 1_000), ("reserveBps", "reserve_bps", 0, 500),
        ("compensationBps", "compensation_bps", 0, BPS),
        ("deliveryWindow", "delivery_window", DAY, 90 * DAY),
        ("returnShipWindow", "return_ship_window", DAY, 30 * DAY),
        ("returnDeliveryWindow", "return_delivery_window", DAY, 60 * DAY),
        ("returnInspectionWindow", "return_inspection_window", HOUR, 30 * DAY),
        ("responseWindow", "response_window", DAY, 30 * DAY),
        ("arbitrationWindow", "arbitration_window", 7 * DAY, 365 * DAY),
        ("depositRatioBps", "deposit_ratio_bps", 0, BPS),
    ]
    for name, field, low, high in cases:
        for value in ([low - 1] if low else []) + [high + 1]:
            _reverts("EscrowParameterOutOfBounds", lambda field=field, value=value: c.set_terms(
                dataclasses.replace(t, **{field: value}), "x", env.admin),
                parameter=_b32(name), value=value, min=low, max=high)
    # The arbitrator's window must not end before the respondent's.
    _reverts("EscrowParameterOutOfBounds", lambda: c.set_terms(dataclasses.replace(
        t, response_window=20 * DAY, arbitration_window=10 * DAY), "x", env.admin),
        parameter=_b32("arbitrationWindow"), value=10 * DAY, min=20 * DAY, max=365 * DAY)
    _reverts("EscrowZeroAddress", lambda: c.set_terms(
        dataclasses.replace(t, arbitrator=env.stranger.address), "x", env.admin))
    assert c.terms() == t and env.chain.call(c.escrow.functions.currentTermsId()) == 1

    # Both extremes are accepted and published as new versions with their meta-evidence.
    lows = dataclasses.replace(t, **{field: low for _, field, low, _ in cases})
    highs = dataclasses.replace(t, **{field: high for _, field, _, high in cases})
    for terms_id, terms in ((2, lows), (3, highs)):
        receipt = c.set_terms(terms, f"ipfs://terms-{terms_id}", env.admin)
        assert names(env, receipt) == ["TermsSet", "MetaEvidence"]
        assert the(env, receipt, "TermsSet") == {"termsId": terms_id, "arbitrator": t.arbitrator}
        assert the(env, receipt, "MetaEvidence") == {
            "metaEvidenceID": terms_id, "evidence": f"ipfs://terms-{terms_id}"}
        assert c.terms(terms_id) == terms
    assert env.chain.call(c.escrow.functions.currentTermsId()) == 3

    # Other admin calls: events, and zero or code-less addresses refused.
    receipt = c.set_carrier(env.stranger.address, True, env.admin)
    assert the(env, receipt, "CarrierSet") == {"carrier": env.stranger.address,
                                               "registered": True}
    assert c.is_carrier(env.stranger.address)
    c.set_carrier(env.stranger.address, False, env.admin)
    assert not c.is_carrier(env.stranger.address)
    _reverts("EscrowZeroAddress", lambda: c.set_carrier(NATIVE, True, env.admin))
    _reverts("EscrowZeroAddress", lambda: c.set_treasury(NATIVE, env.admin))
    receipt = c.set_treasury(env.lender.address, env.admin)
    assert the(env, receipt, "TreasurySet") == {"treasury": env.lender.address}
    _reverts("EscrowTokenNotAllowed", lambda: c.set_token_allowed(
        env.stranger.address, True, env.admin), token=env.stranger.address)
    fresh = env.chain.deploy("TestStablecoin", sender=env.admin).address
    _reverts("EscrowTokenNotAllowed", lambda: c.set_token_allowed(fresh, False, env.admin))
    receipt = c.set_token_allowed(fresh, True, env.admin)
    assert the(env, receipt, "TokenAllowed") == {"token": fresh, "tokenId": 3, "allowed": True}

    # Nobody else may call any admin function, on the escrow or on the panel.
    arb = c.arbitrator
    assert arb is not None
    attempts: list[Callable[[LocalAccount], Any]] = [
        lambda who: c.set_terms(t, "x", who),
        lambda who: c.set_carrier(who.address, True, who),
        lambda who: c.set_token_allowed(fresh, False, who),
        lambda who: c.set_treasury(who.address, who),
        lambda who: c.withdraw_fees(env.token, 1, who),
        lambda who: env.chain.transact(c.escrow.functions.grantRole(
            bytes(32), who.address), who),
        lambda who: env.chain.transact(arb.functions.setPanel([who.address], 1, 0), who),
        lambda who: env.chain.transact(arb.functions.withdrawFees(who.address, 0), who),
    ]
    for attempt in attempts:
        for who in (env.merchant, env.treasury):
            _reverts("AccessControlUnauthorizedAccount", lambda a=attempt, w=who: a(w),
                     account=who.address, neededRole=ADMIN_ROLE)
    # The panel's fees never go to the zero address, and a panel always has an admin.
    _reverts("PanelZeroAddress",
             lambda: env.chain.transact(arb.functions.withdrawFees(NATIVE, 0), env.admin))
    _reverts("PanelZeroAddress",
             lambda: env.chain.deploy("PanelArbitrator", NATIVE, [env.stranger.address], 1, 0))
    # The panel: a strict majority of distinct, non-zero members.
    for members, threshold in (([env.stranger.address] * 2, 2), ([env.stranger.address], 0),
                               ([env.stranger.address, env.lender.address], 1),
                               ([env.stranger.address, NATIVE, env.lender.address], 2)):
        _reverts("PanelInvalid", lambda m=members, k=threshold: env.chain.transact(
            arb.functions.setPanel(m, k, 0), env.admin), size=len(members), threshold=threshold)


def test_admin_cannot_move_escrowed_funds(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    # The complete list of state-changing functions: none moves escrow, deposits or reserve
    # on the admin's word; withdrawFees is the only admin function that sends money (sweep sends
    # only what no book counts, and anyone may call it).
    mutating = sorted(item["name"] for item in c.escrow.abi if item["type"] == "function"
                      and item["stateMutability"] not in ("view", "pure"))
    assert mutating == sorted([
        "fund", "ship", "deliver", "confirmDelivery", "release", "refund", "cancel",
        "requestReturn", "shipReturn", "deliverReturn", "confirmReturn", "settleReturn",
        "pledge", "openDispute", "submitEvidence", "claimDefault", "timeoutDispute", "rule",
        "depositFor", "withdrawDeposit", "fundReserve", "withdraw", "withdrawTo",
        "setTerms", "setCarrier", "setTokenAllowed", "setTreasury",
        "withdrawFees", "sweep", "grantRole", "revokeRole", "renounceRole"])

    released, _ = delivered_order(env)
    open_, _ = fund_order(env)
    c.fund_reserve(env.token, 1_000, env.stranger)
    past_deadline(env, released)
    c.release(released, env.stranger)
    _, fees, reserve = shares(env, PRICE)
    books = c.totals(env.token)
    assert (books.escrowed, books.fees, books.reserve) == (PRICE, fees, reserve + 1_000)

    _reverts("EscrowFeesExceeded", lambda: c.withdraw_fees(env.token, fees + 1, env.admin),
             token=env.token, requested=fees + 1, accrued=fees)
    _reverts("EscrowFeesExceeded", lambda: c.withdraw_fees(env.token, 0, env.admin),
             token=env.token, requested=0, accrued=fees)
    _reverts("EscrowFeesExceeded", lambda: c.withdraw_fees(ETH, 1, env.admin), token=ETH,
             requested=1, accrued=0)
    unlisted = env.chain.deploy("TestStablecoin", sender=env.admin).address
    _reverts("EscrowTokenNotAllowed", lambda: c.withdraw_fees(unlisted, 1, env.admin))
    # The admin holds no credit and no deposit to pull out either.
    _reverts("EscrowNothingToWithdraw", lambda: c.withdraw(env.token, env.admin))
    _reverts("EscrowDepositLocked", lambda: c.withdraw_deposit(env.token, 1, env.admin))

    admin_before = c.balance(env.token, env.admin.address)
    treasury_before = c.balance(env.token, env.treasury.address)
    receipt = c.withdraw_fees(env.token, fees - 10, env.admin)
    assert the(env, receipt, "FeesWithdrawn") == {
        "token": env.token, "treasury": env.treasury.address, "amount": fees - 10}
    assert c.balance(env.token, env.treasury.address) == treasury_before + fees - 10
    assert c.balance(env.token, env.admin.address) == admin_before
    c.set_treasury(env.lender.address, env.admin)
    lender_before = c.balance(env.token, env.lender.address)
    c.withdraw_fees(env.token, 10, env.admin)
    assert c.balance(env.token, env.lender.address) == lender_before + 10
    after = c.totals(env.token)
    assert after == dataclasses.replace(books, fees=0)
    assert c.state(open_) == S.FUNDED
    assert_books(env, env.token)


def test_what_the_books_do_not_count_is_swept_to_the_treasury(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    fund_order(env)
    books = c.totals(env.token)
    _reverts("EscrowNothingToSweep", lambda: c.send(c.calls.sweep(env.token), env.stranger),
             token=env.token)
    # A transfer made straight to the escrow is in no book: anyone may send it to the treasury.
    env.chain.transact(token_contract(env).functions.transfer(c.address, 777), env.buyer)
    treasury_before = c.balance(env.token, env.treasury.address)
    receipt = c.send(c.calls.sweep(env.token), env.stranger)
    assert the(env, receipt, "Swept") == {"token": env.token, "treasury": env.treasury.address,
                                          "amount": 777}
    assert c.balance(env.token, env.treasury.address) == treasury_before + 777
    assert c.totals(env.token) == books  # the books did not move
    assert_books(env, env.token)
    _reverts("EscrowNothingToSweep", lambda: c.send(c.calls.sweep(env.token), env.stranger))
    # A token never registered has no books: all of it is sweepable.
    stray = env.chain.deploy("TestStablecoin", sender=env.admin)
    env.chain.transact(stray.functions.mint(c.address, 5), env.admin)
    c.send(c.calls.sweep(stray.address), env.stranger)
    assert c.balance(stray.address, env.treasury.address) == 5


def test_terms_changes_do_not_alter_open_orders(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    v1 = c.terms()
    old, _ = fund_order(env)
    old_th, old_ship = ship_order(env, old)
    v2 = dataclasses.replace(v1, fee_bps=1_000, reserve_bps=500, delivery_window=DAY)
    receipt = c.set_terms(v2, "ipfs://terms-v2", env.admin)
    assert the(env, receipt, "TermsSet")["termsId"] == 2
    new, _ = fund_order(env)
    new_th, new_ship = ship_order(env, new)
    assert (c.order(old).terms_id, c.order(new).terms_id) == (1, 2)
    assert c.order(old).deadline == block_time(env, old_ship) + v1.delivery_window
    assert c.order(new).deadline == block_time(env, new_ship) + DAY
    assert c.terms(1) == v1
    past_deadline(env, new)
    c.refund(new, env.buyer)  # the new terms' 1-day delivery window has passed ...
    _reverts("EscrowTooEarly", lambda: c.refund(old, env.buyer), orderId=_hex(old),
             deadline=c.order(old).deadline)  # ... the old order's 15 days have not
    deliver_order(env, old, old_th)
    newer, _ = delivered_order(env)
    past_deadline(env, newer)
    old_event = the(env, c.release(old, env.stranger), "OrderReleased")
    new_event = the(env, c.release(newer, env.stranger), "OrderReleased")
    assert (old_event["fee"], old_event["reserve"]) == shares(env, PRICE, 1)[1:] == (
        PRICE * 200 // BPS, PRICE * 100 // BPS)
    assert (new_event["fee"], new_event["reserve"]) == shares(env, PRICE, 2)[1:] == (
        PRICE * 1_000 // BPS, PRICE * 500 // BPS)
    assert new_th != old_th
    assert_books(env, env.token)


def test_disallowed_token_keeps_existing_orders_and_withdrawals(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    oid, _ = delivered_order(env)
    receipt = c.set_token_allowed(env.token, False, env.admin)
    assert the(env, receipt, "TokenAllowed") == {"token": env.token, "tokenId": 2,
                                                 "allowed": False}
    assert c.token_info(env.token) == (2, False)
    offer, sig = signed(env)
    _reverts("EscrowTokenNotAllowed", lambda: c.fund(offer, sig, env.buyer), token=env.token)
    _reverts("EscrowTokenNotAllowed", lambda: c.deposit(env.merchant.address, env.token, 1,
                                                        env.merchant))
    _reverts("EscrowTokenNotAllowed", lambda: c.fund_reserve(env.token, 1, env.stranger))
    past_deadline(env, oid)
    c.release(oid, env.stranger)
    c.withdraw(env.token, env.merchant)
    c.withdraw_deposit(env.token, DEPOSIT, env.merchant)
    c.withdraw_fees(env.token, shares(env, PRICE)[1], env.admin)
    assert c.deposit_of(env.token, env.merchant.address) == (0, 0)
    receipt = c.set_token_allowed(env.token, True, env.admin)  # the same registry id again
    assert the(env, receipt, "TokenAllowed")["tokenId"] == 2
    c.deposit(env.merchant.address, env.token, DEPOSIT, env.merchant)
    again, _ = fund_order(env, by=env.buyer2)
    assert c.state(again) == S.FUNDED
    assert_books(env, env.token)


# =========================================================================================
# Awkward tokens
# =========================================================================================


def test_fee_on_transfer_token_is_rejected(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    fot = env.chain.deploy("FeeOnTransferToken", sender=env.admin)
    token = fot.address
    c.set_token_allowed(token, True, env.admin)  # the admin's mistake
    for party in (env.merchant, env.buyer, env.stranger):
        env.chain.transact(fot.functions.mint(party.address, 10**12), env.admin)
    amount = 1_000_000
    _reverts("EscrowFeeOnTransfer", lambda: c.deposit(env.merchant.address, token, amount,
                                                      env.merchant),
             token=token, expected=amount, received=amount - amount // 100)
    _reverts("EscrowFeeOnTransfer", lambda: c.fund_reserve(token, amount, env.stranger),
             token=token, expected=amount, received=amount - amount // 100)
    # No deposit, so that funding gets as far as the transfer.
    c.set_terms(dataclasses.replace(c.terms(), deposit_ratio_bps=0), "x", env.admin)
    offer, sig = signed(env, token=token, price=PRICE)
    _reverts("EscrowFeeOnTransfer", lambda: c.fund(offer, sig, env.buyer), token=token,
             expected=PRICE, received=PRICE - PRICE // 100)
    assert c.state(offer.order_id) == S.NONE
    assert c.totals(token).total == 0 == c.balance(token)


def test_no_return_token_full_lifecycle(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    usdt = env.chain.deploy("NoReturnToken", sender=env.admin)
    token = usdt.address
    c.set_token_allowed(token, True, env.admin)
    for party in (env.merchant, env.buyer, env.buyer2):
        env.chain.transact(usdt.functions.mint(party.address, 10**12), env.admin)
        env.chain.transact(usdt.functions.approve(c.address, 10**12), party)
    escrow_tx(env, "depositFor", env.merchant.address, token, 10**9, sender=env.merchant)
    # The token's own revert (no allowance) surfaces through SafeERC20.
    env.chain.transact(usdt.functions.approve(c.address, 0), env.buyer2)
    offer, sig = signed(env, token=token)
    _reverts("NoReturnInsufficient", lambda: c.fund(offer, sig, env.buyer2, approve=False),
             have=0, need=PRICE)
    c.fund(offer, sig, env.buyer, approve=False)
    refunded, rsig = signed(env, token=token)
    c.fund(refunded, rsig, env.buyer, approve=False)
    th, _ = ship_order(env, offer.order_id)
    deliver_order(env, offer.order_id, th)
    c.cancel(refunded.order_id, env.merchant)
    past_deadline(env, offer.order_id)
    c.release(offer.order_id, env.stranger)
    payout, fee, reserve = shares(env, PRICE)
    merchant_before = c.balance(token, env.merchant.address)
    buyer_before = c.balance(token, env.buyer.address)
    c.withdraw(token, env.merchant)
    c.withdraw(token, env.buyer)
    c.withdraw_deposit(token, 10**9, env.merchant)
    c.withdraw_fees(token, fee, env.admin)
    assert c.balance(token, env.merchant.address) == merchant_before + payout + 10**9
    assert c.balance(token, env.buyer.address) == buyer_before + PRICE
    assert c.balance(token, env.treasury.address) == fee
    assert c.balance(token) == reserve == c.totals(token).total


def test_client_deposits_and_funds_with_a_no_return_token(escrow_env: EscrowEnv) -> None:
    """EscrowClient.approve declares no return value, so a USDT-like approve (which returns
    nothing) works through the client on both chains."""
    env, c = escrow_env, escrow_env.client
    usdt = env.chain.deploy("NoReturnToken", sender=env.admin)
    c.set_token_allowed(usdt.address, True, env.admin)
    for party in (env.merchant, env.buyer):
        env.chain.transact(usdt.functions.mint(party.address, 10**12), env.admin)
    c.deposit(env.merchant.address, usdt.address, 10**9, env.merchant)  # approves first
    assert c.deposit_of(usdt.address, env.merchant.address) == (10**9, 0)
    buyer_before = c.balance(usdt.address, env.buyer.address)
    oid, _ = fund_order(env, token=usdt.address)
    assert c.state(oid) == S.FUNDED
    assert c.balance(usdt.address, env.buyer.address) == buyer_before - PRICE
    assert c.balance(usdt.address) == 10**9 + PRICE
    assert_books(env, usdt.address)


# =========================================================================================
# Re-entrancy and hostile receivers
# =========================================================================================


def test_malicious_token_cannot_reenter(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    evil = env.chain.deploy("MaliciousToken", sender=env.admin)
    token = evil.address
    c.set_token_allowed(token, True, env.admin)
    for party in (env.merchant, env.buyer):
        env.chain.transact(evil.functions.mint(party.address, 10**12), env.admin)
    c.deposit(env.merchant.address, token, 10**9, env.merchant)
    ripe, _ = delivered_order(env, token=token)  # releasable by anyone after the window
    past_deadline(env, ripe)

    def guarded() -> None:
        assert env.chain.call(evil.functions.attempts()) >= 1
        assert env.chain.call(evil.functions.lastSucceeded()) is False
        error = decode_revert(bytes(env.chain.call(evil.functions.lastReturnData())))
        assert error.error_name == "ReentrancyGuardReentrantCall", str(error)

    # Inbound: re-entering `release` from inside the transfer that funds another order.
    env.chain.transact(evil.functions.arm(c.address, calldata(env, "release", ripe, ZERO32)),
                       env.admin)
    oid, _ = fund_order(env, token=token)
    guarded()
    assert c.state(oid) == S.FUNDED and c.state(ripe) == S.DELIVERED
    c.release(ripe, env.stranger)  # the real call works
    payout = shares(env, PRICE)[0]
    # Outbound: re-entering `withdraw` from inside the transfer that pays the merchant.
    env.chain.transact(evil.functions.arm(c.address, calldata(env, "withdraw", token)),
                       env.admin)
    before = c.balance(token, env.merchant.address)
    c.withdraw(token, env.merchant)
    guarded()
    assert env.chain.call(evil.functions.attempts()) == 2
    assert c.balance(token, env.merchant.address) == before + payout
    assert c.credit_of(token, env.merchant.address) == 0
    assert_books(env, token)


def test_malicious_eth_receivers_cannot_reenter(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    chain = env.chain

    def receiver() -> Any:
        return chain.deploy("MaliciousReceiver", sender=env.stranger)

    def arm(r: Any, payload: bytes) -> None:
        chain.transact(r.functions.configure(RECEIVER_REENTERS, c.address, payload, False),
                       env.stranger)

    def act(r: Any, data: bytes, value: int = 0) -> dict[str, Any]:
        return chain.transact(r.functions.exec(c.address, data), env.stranger, value=value)

    def guarded(r: Any, attempts: int = 1) -> None:
        assert chain.call(r.functions.attempts()) == attempts
        assert chain.call(r.functions.lastSucceeded()) is False
        error = decode_revert(bytes(chain.call(r.functions.lastReturnData())))
        assert error.error_name == "ReentrancyGuardReentrantCall", str(error)

    # As the buyer: a cancelled order's refund, re-entering withdraw on receipt.
    buyer = receiver()
    offer, sig = signed(env, token=ETH, price=ETH_PRICE, buyer=buyer.address)
    act(buyer, calldata(env, "fund", offer.as_tuple(), sig), value=ETH_PRICE)
    assert c.order(offer.order_id).buyer == buyer.address
    c.cancel(offer.order_id, env.merchant)
    arm(buyer, calldata(env, "withdraw", ETH))
    escrow_before = c.balance(ETH)
    act(buyer, calldata(env, "withdraw", ETH))
    guarded(buyer)
    assert c.balance(ETH, buyer.address) == ETH_PRICE
    assert c.balance(ETH) == escrow_before - ETH_PRICE
    assert c.credit_of(ETH, buyer.address) == 0

    # As a merchant: withdrawing its deposit, re-entering withdrawDeposit.
    merchant = receiver()
    c.deposit(merchant.address, ETH, 10**18, env.stranger)  # anyone may pay a deposit
    arm(merchant, calldata(env, "withdrawDeposit", ETH, 10**18))
    act(merchant, calldata(env, "withdrawDeposit", ETH, 10**18))
    guarded(merchant)
    assert c.balance(ETH, merchant.address) == 10**18
    assert c.deposit_of(ETH, merchant.address) == (0, 0)

    # As a lender: a pledged payout, re-entering release of another ripe order.
    lender = receiver()
    pledged, _ = delivered_order(env, token=ETH, price=ETH_PRICE)
    ripe, _ = delivered_order(env, token=ETH, price=ETH_PRICE)
    c.pledge(pledged, lender.address, env.merchant)
    past_deadline(env, ripe)
    c.release(pledged, env.stranger)
    arm(lender, calldata(env, "release", ripe, ZERO32))
    act(lender, calldata(env, "withdraw", ETH))
    guarded(lender)
    assert c.balance(ETH, lender.address) == shares(env, ETH_PRICE)[0]
    assert c.state(ripe) == S.DELIVERED
    assert_books(env, ETH)


def test_a_receiver_that_rejects_eth_only_blocks_itself(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    chain = env.chain
    buyer = chain.deploy("MaliciousReceiver", sender=env.stranger)
    chain.transact(buyer.functions.configure(RECEIVER_REJECTS, NATIVE, b"", False), env.stranger)
    offer, sig = signed(env, token=ETH, price=ETH_PRICE)
    chain.transact(buyer.functions.exec(c.address, calldata(env, "fund", offer.as_tuple(), sig)),
                   env.stranger, value=ETH_PRICE)
    oid = offer.order_id
    th, _ = ship_order(env, oid)
    deliver_order(env, oid, th)
    amount = ETH_PRICE * 4 // 10
    chain.transact(buyer.functions.exec(c.address, calldata(
        env, "requestReturn", oid, amount, ZERO32)), env.stranger)
    c.confirm_return(oid, env.merchant)
    payout = shares(env, ETH_PRICE - amount)[0]
    assert c.credit_of(ETH, buyer.address) == amount

    err = _reverts("MaliciousReceiverCallFailed", lambda: chain.transact(
        buyer.functions.exec(c.address, calldata(env, "withdraw", ETH)), env.stranger))
    assert (_inner(err).error_name, _args(_inner(err))) == (
        "EscrowNativeTransferFailed", {"to": buyer.address, "amount": amount})
    assert c.credit_of(ETH, buyer.address) == amount  # nothing lost
    # Everyone else is paid as usual.
    merchant_before = c.balance(ETH, env.merchant.address)
    receipt = c.withdraw(ETH, env.merchant)
    assert c.balance(ETH, env.merchant.address) == merchant_before + payout - gas_cost(receipt)
    c.withdraw_fees(ETH, shares(env, ETH_PRICE - amount)[1], env.admin)
    # And the rejecting party can still pull its credit to another address.
    wallet = Account.from_key(keccak(text="receiver's other wallet")).address
    chain.transact(buyer.functions.exec(c.address, calldata(
        env, "withdrawTo", ETH, wallet)), env.stranger)
    assert c.balance(ETH, wallet) == amount
    assert c.totals(ETH).credits == 0
    assert_books(env, ETH)


# =========================================================================================
# Batching (EscrowBatcher)
# =========================================================================================


def test_relayer_batches_attestations_and_releases(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    relayer = env.stranger
    orders = [fund_order(env, merchant=m)[0]
              for m in (env.merchant, env.merchant2, env.merchant)]
    waybills = [waybill(f"BATCH-{n}") for n in range(len(orders))]

    def attested(kind: str, oid: bytes, th: bytes, carrier: LocalAccount | None = None) -> Any:
        return c.calls.attested(*attest(env, kind, oid, th, carrier=carrier))

    receipt = c.batch([attested("Shipment", o, th) for o, th in zip(orders, waybills, strict=True)],
                      relayer)
    assert names(env, receipt) == ["OrderShipped"] * 3
    assert [args["orderId"] for _, args in c.events(receipt)] == orders
    deliveries = [attested("Delivery", o, th, env.carrier2)
                  for o, th in zip(orders, waybills, strict=True)]
    # Griefing a relayer: someone copies one attestation from the pending batch and sends it
    # first. The batch still goes through; the copied step is not applied twice.
    c.send(deliveries[1], env.buyer2)
    receipt = c.batch(deliveries, relayer)
    assert names(env, receipt) == ["OrderDelivered"] * 2
    assert {c.state(o) for o in orders} == {S.DELIVERED}

    # One bad item reverts the whole batch with that item's error and index.
    spare, _ = fund_order(env)
    spare2, _ = fund_order(env)
    bad = [attested("Shipment", spare, waybill("BATCH-spare")),
           attested("Shipment", spare2, waybill("BATCH-x"), env.stranger)]
    _reverts("EscrowNotCarrier", lambda: c.batch(bad, relayer), orderId=_hex(spare2),
             signer=env.stranger.address, batchIndex=1)
    assert c.state(spare) == S.FUNDED and c.order_of_tracking(waybill("BATCH-spare")) is None
    # A party's own step cannot be batched on its behalf: the batcher is the sender.
    _reverts("EscrowUnauthorizedCaller", lambda: c.batch([c.calls.cancel(spare)], env.merchant),
             caller=c.batcher.address, batchIndex=0)
    with pytest.raises(ValueError, match="cannot be batched"):
        c.batch([c.calls.fund_reserve(NATIVE, 5)], relayer)
    releases = [c.calls.release(o, EVIDENCE) for o in orders]
    _reverts("EscrowTooEarly", lambda: c.batch(releases, relayer), orderId=_hex(orders[0]),
             batchIndex=0)

    past(env, max(c.order(o).deadline for o in orders))
    receipt = c.batch(releases, relayer)
    assert names(env, receipt) == ["OrderReleased"] * 3
    payout = shares(env, PRICE)[0]
    assert c.credit_of(env.token, env.merchant.address) == 2 * payout
    assert c.credit_of(env.token, env.merchant2.address) == payout
    assert names(env, c.batch(releases, relayer)) == []  # the same batch again does nothing
    assert c.credit_of(env.token, env.merchant2.address) == payout
    assert_books(env, env.token)


def test_a_replayed_step_does_nothing_and_a_different_one_is_refused(escrow_env: EscrowEnv) -> None:
    """Permissionless steps are idempotent for the step already taken, and only for it: the
    same attestation again is a no-op, another waybill or another order's parcel reverts."""
    env, c = escrow_env, escrow_env.client
    oid, _ = fund_order(env)
    th, _ = ship_order(env, oid)
    info = c.order(oid)
    shipped = attest(env, "Shipment", oid, th)
    assert names(env, c.ship(*shipped, env.buyer2)) == [] and c.order(oid) == info
    att, sig = attest(env, "Shipment", oid, waybill("JD-second-parcel"))
    _reverts("EscrowUnexpectedState", lambda: c.ship(att, sig, env.stranger), orderId=_hex(oid),
             current=S.SHIPPED, expectedStates=mask(S.FUNDED))
    other, _ = fund_order(env)
    other_th, _ = ship_order(env, other)
    att, sig = attest(env, "Shipment", oid, other_th)  # another order's parcel: not a replay
    _reverts("EscrowUnexpectedState", lambda: c.ship(att, sig, env.stranger), orderId=_hex(oid))
    # A replay still needs a registered carrier's signature.
    att, sig = attest(env, "Shipment", oid, th, carrier=env.stranger)
    _reverts("EscrowNotCarrier", lambda: c.ship(att, sig, env.stranger), orderId=_hex(oid))

    deliver_order(env, oid, th)
    c.request_return(oid, PRICE // 2, env.buyer)
    rth, _ = ship_return(env, oid)
    returned = attest(env, "ReturnShipment", oid, rth, carrier=env.carrier2)
    info = c.order(oid)
    assert names(env, c.ship_return(*returned, env.stranger)) == [] and c.order(oid) == info
    att, sig = attest(env, "ReturnShipment", oid, waybill("RET-other"), carrier=env.carrier2)
    _reverts("EscrowUnexpectedState", lambda: c.ship_return(att, sig, env.stranger),
             current=S.RETURN_SHIPPED)
    # The outbound parcel's delivery replayed while the return is under way: a no-op.
    assert names(env, c.deliver(*attest(env, "Delivery", oid, th), env.stranger)) == []
    # The return parcel attested as an outbound delivery is not this order's outbound parcel.
    att, sig = attest(env, "Delivery", oid, rth)
    _reverts("EscrowUnexpectedState", lambda: c.deliver(att, sig, env.stranger),
             current=S.RETURN_SHIPPED)
    deliver_return(env, oid, rth)
    info = c.order(oid)
    delivered = attest(env, "ReturnDelivery", oid, rth, carrier=env.carrier2)
    assert names(env, c.deliver_return(*delivered, env.stranger)) == [] and c.order(oid) == info
    past_deadline(env, oid)
    receipt = c.settle_return(oid, env.stranger)
    assert names(env, receipt) == ["ReturnSettled"]
    credits = c.totals(env.token).credits
    assert names(env, c.settle_return(oid, env.stranger)) == []
    assert c.totals(env.token).credits == credits and c.state(oid) == S.RETURNED
    # Once settled, no step of the closed order does anything.
    for step in (lambda: c.ship(*shipped, env.stranger),
                 lambda: c.ship_return(*returned, env.stranger),
                 lambda: c.deliver_return(*delivered, env.stranger)):
        assert names(env, step()) == [] and c.state(oid) == S.RETURNED
    assert_books(env, env.token)


def test_nothing_can_be_paid_or_credited_to_the_escrow_itself(escrow_env: EscrowEnv) -> None:
    """Value sent or credited to the escrow's own address could never leave it: refused."""
    env, c = escrow_env, escrow_env.client
    oid, _ = fund_order(env, token=env.token)
    c.cancel(oid, env.merchant)  # the buyer is credited the price
    books = c.totals(env.token)
    for token in (env.token, NATIVE):
        _reverts("EscrowSelfTransfer", lambda t=token: c.withdraw(t, env.buyer, c.address))
    _reverts("EscrowSelfTransfer", lambda: c.deposit(c.address, env.token, 5, env.merchant))
    _reverts("EscrowSelfTransfer", lambda: c.set_treasury(c.address, env.admin))
    oid2, _ = fund_order(env, token=env.token)
    _reverts("EscrowInvalidLender", lambda: c.pledge(oid2, c.address, env.merchant),
             orderId="0x" + oid2.hex(), lender=c.address)
    assert c.totals(env.token).credits == books.credits
    assert c.balance(env.token) == c.totals(env.token).total
    c.withdraw(env.token, env.buyer)  # the credit is still the buyer's to take
