"""The fulfillment escrow from Python: EIP-712 signing helpers and a typed client.

`EscrowClient` wraps one deployed ``FulfillmentEscrow`` (and its ``PanelArbitrator``) with a
method for every action and view. Every transaction is signed locally by the acting party's
key and a revert comes back as `ContractRevert` naming the contract's custom error and its
values (see ``ledger.chain``). Amounts are integers in the token's base units; the token
``NATIVE`` (the zero address) is ETH.

Signing helpers build the exact EIP-712 messages the contract checks: the merchant's
``Offer``, and a carrier's ``Shipment``, ``Delivery``, ``ReturnShipment`` and
``ReturnDelivery`` attestations. The domain is ``("FulfillmentEscrow", "1", chainId,
escrow address)``, so a signature is bound to one order, one contract and one chain.
docs/escrow.md describes the messages, the state machine and the money rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract

from ledger.chain import ERROR_DISPLAY, Chain, decode_log
from ledger.errors import ConfigError

__all__ = [
    "ATTESTATION_KINDS",
    "NATIVE",
    "Attestation",
    "DisputeInfo",
    "EscrowClient",
    "Offer",
    "OrderInfo",
    "OrderState",
    "Party",
    "Resolution",
    "Ruling",
    "Terms",
    "Totals",
    "order_key",
    "sign_attestation",
    "sign_offer",
    "split_ruling",
    "tracking_hash",
]

NATIVE = "0x0000000000000000000000000000000000000000"
ZERO32 = b"\x00" * 32
BPS = 10_000

HOUR = 3600
DAY = 24 * HOUR


class OrderState(IntEnum):
    """Mirror of ``IFulfillmentEscrow.OrderState``; the last four are terminal."""

    NONE = 0
    FUNDED = 1
    SHIPPED = 2
    DELIVERED = 3
    RETURNING = 4
    RETURN_SHIPPED = 5
    RETURN_DELIVERED = 6
    DISPUTED = 7
    RELEASED = 8
    REFUNDED = 9
    RETURNED = 10
    RESOLVED = 11

    @property
    def terminal(self) -> bool:
        return self >= OrderState.RELEASED

    @classmethod
    def from_mask(cls, mask: int) -> list[OrderState]:
        """The states set in an ``EscrowUnexpectedState`` bit mask."""
        return [s for s in cls if mask >> int(s) & 1]


class Party(IntEnum):
    NONE = 0
    BUYER = 1
    MERCHANT = 2


class Resolution(IntEnum):
    RULING = 0
    DEFAULT = 1
    ARBITRATOR_TIMEOUT = 2


class Ruling(IntEnum):
    """The escrow's ERC-792 rulings; `split_ruling` gives the rest (4 + buyer's bps)."""

    REFUSED = 0  # split 50/50 (also what an arbitrator timeout gives)
    REFUND = 1  # buyer refunded in full
    RELEASE = 2  # merchant (or its lender) paid in full
    FRAUD = 3  # refund in full plus compensation from the deposit, then the reserve


RULING_SPLIT_BASE = 4  # contiguous: every ruling 0..4 + 10000 means something


def buyer_bps_of(ruling: int) -> int:
    """The buyer's share of the price, in basis points, that a ruling gives (the inverse of
    `split_ruling` for splits): refused 50/50, refund and fraud all, release none."""
    if ruling == Ruling.REFUSED:
        return BPS // 2
    if ruling in (Ruling.REFUND, Ruling.FRAUD):
        return BPS
    if ruling == Ruling.RELEASE:
        return 0
    if not RULING_SPLIT_BASE <= ruling <= RULING_SPLIT_BASE + BPS:
        raise ValueError(f"ruling {ruling} is not one of the escrow's rulings (0..{RULING_SPLIT_BASE + BPS})")
    return ruling - RULING_SPLIT_BASE


def _show_unexpected_state(args: dict[str, Any]) -> dict[str, Any]:
    shown = dict(args)
    if "current" in args:
        shown["current"] = OrderState(int(args["current"])).name
    if "expectedStates" in args:
        shown["expectedStates"] = "|".join(s.name for s in OrderState.from_mask(int(args["expectedStates"])))
    return shown


ERROR_DISPLAY["EscrowUnexpectedState"] = _show_unexpected_state


def split_ruling(buyer_bps: int) -> int:
    """The ruling that gives the buyer `buyer_bps` basis points of the price (0..10000)."""
    if not 0 <= buyer_bps <= BPS:
        raise ValueError(f"buyer share must be 0..{BPS} basis points, got {buyer_bps}")
    return RULING_SPLIT_BASE + buyer_bps


def order_key(order_id: str) -> bytes:
    """The escrow's bytes32 order id for an evidence-log order id: keccak256(UTF-8 id)."""
    if not order_id:
        raise ValueError("order id must not be empty")
    return bytes(keccak(text=order_id))


_WAYBILL_NOISE = re.compile(r"[\s\-]+")


def tracking_hash(carrier: str, tracking_number: str) -> bytes:
    """keccak256 of ``CARRIER:TRACKING``, normalised: upper case, with whitespace and hyphens
    removed everywhere (they are formatting, not part of a waybill number).

    Normalising means a reused waybill cannot slip past the escrow's reuse check by being
    written differently ("sf 1234-5678" is "SF12345678").
    """
    carrier_n = _WAYBILL_NOISE.sub("", carrier).upper()
    number_n = _WAYBILL_NOISE.sub("", tracking_number).upper()
    if not carrier_n or not number_n:
        raise ValueError("carrier and tracking number must not be empty")
    return bytes(keccak(text=f"{carrier_n}:{number_n}"))


# --- EIP-712 --------------------------------------------------------------------------

_OFFER_FIELDS = [
    {"name": "orderId", "type": "bytes32"},
    {"name": "merchant", "type": "address"},
    {"name": "buyer", "type": "address"},
    {"name": "token", "type": "address"},
    {"name": "price", "type": "uint256"},
    {"name": "shipBy", "type": "uint64"},
    {"name": "inspectionWindow", "type": "uint32"},
    {"name": "orderRecord", "type": "bytes32"},
    {"name": "expiresAt", "type": "uint64"},
]
_SHIPMENT_FIELDS = [
    {"name": "orderId", "type": "bytes32"},
    {"name": "trackingHash", "type": "bytes32"},
    {"name": "shippedAt", "type": "uint64"},
]
_DELIVERY_FIELDS = [
    {"name": "orderId", "type": "bytes32"},
    {"name": "trackingHash", "type": "bytes32"},
    {"name": "deliveredAt", "type": "uint64"},
]
#: attestation kind -> (EIP-712 field list, name of its time field)
ATTESTATION_KINDS: dict[str, list[dict[str, str]]] = {
    "Shipment": _SHIPMENT_FIELDS,
    "Delivery": _DELIVERY_FIELDS,
    "ReturnShipment": _SHIPMENT_FIELDS,
    "ReturnDelivery": _DELIVERY_FIELDS,
}
_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
DOMAIN_NAME = "FulfillmentEscrow"
DOMAIN_VERSION = "1"


def _typed_data(kind: str, message: dict[str, Any], chain_id: int, escrow: str) -> dict[str, Any]:
    """The EIP-712 typed data the escrow hashes for a message of type `kind`."""
    return {
        "types": {"EIP712Domain": _DOMAIN_FIELDS,
                  kind: _OFFER_FIELDS if kind == "Offer" else ATTESTATION_KINDS[kind]},
        "primaryType": kind,
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": to_checksum_address(escrow)},
        "message": message,
    }


def _b32(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else bytes.fromhex(value.removeprefix("0x"))


@dataclass(frozen=True)
class Offer:
    """The merchant's signed terms for one order (EIP-712 type ``Offer``)."""

    order_id: bytes  # bytes32, see `order_key`
    merchant: str
    buyer: str  # NATIVE (zero address): any buyer may fund it
    token: str  # NATIVE for ETH
    price: int
    ship_by: int  # unix seconds
    inspection_window: int  # seconds
    order_record: bytes  # leaf hash of the order record in the evidence log
    expires_at: int  # unix seconds

    def message(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "merchant": to_checksum_address(self.merchant),
            "buyer": to_checksum_address(self.buyer),
            "token": to_checksum_address(self.token),
            "price": self.price,
            "shipBy": self.ship_by,
            "inspectionWindow": self.inspection_window,
            "orderRecord": self.order_record,
            "expiresAt": self.expires_at,
        }

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(self.message().values())

    def typed_data(self, chain_id: int, escrow: str) -> dict[str, Any]:
        return _typed_data("Offer", self.message(), chain_id, escrow)

    @classmethod
    def from_message(cls, m: dict[str, Any]) -> Offer:
        """From the EIP-712 message form (bytes32 as bytes or 0x hex), as a case file holds it."""
        return cls(
            order_id=_b32(m["orderId"]), merchant=m["merchant"], buyer=m["buyer"], token=m["token"],
            price=int(m["price"]), ship_by=int(m["shipBy"]), inspection_window=int(m["inspectionWindow"]),
            order_record=_b32(m["orderRecord"]), expires_at=int(m["expiresAt"]),
        )  # fmt: skip


@dataclass(frozen=True)
class Attestation:
    """A carrier's signed statement about a parcel: shipped or delivered at `at`.

    `kind` is the EIP-712 type: ``Shipment`` or ``Delivery`` for the outbound parcel,
    ``ReturnShipment`` or ``ReturnDelivery`` for the parcel sent back.
    """

    kind: str
    order_id: bytes
    tracking_hash: bytes
    at: int  # unix seconds: shippedAt or deliveredAt

    def __post_init__(self) -> None:
        if self.kind not in ATTESTATION_KINDS:
            raise ValueError(f"unknown attestation kind {self.kind!r}; one of {sorted(ATTESTATION_KINDS)}")

    def message(self) -> dict[str, Any]:
        time_field = ATTESTATION_KINDS[self.kind][2]["name"]
        return {"orderId": self.order_id, "trackingHash": self.tracking_hash, time_field: self.at}

    def as_tuple(self) -> tuple[bytes, bytes, int]:
        return (self.order_id, self.tracking_hash, self.at)

    def typed_data(self, chain_id: int, escrow: str) -> dict[str, Any]:
        return _typed_data(self.kind, self.message(), chain_id, escrow)

    @classmethod
    def from_message(cls, kind: str, m: dict[str, Any]) -> Attestation:
        """From the EIP-712 message form of `kind` (bytes32 as bytes or 0x hex)."""
        time_field = ATTESTATION_KINDS[kind][2]["name"]
        return cls(kind, _b32(m["orderId"]), _b32(m["trackingHash"]), int(m[time_field]))


def _sign(signer: LocalAccount, typed: dict[str, Any]) -> bytes:
    return bytes(signer.sign_message(encode_typed_data(full_message=typed)).signature)


def sign_offer(merchant: LocalAccount, offer: Offer, chain_id: int, escrow: str) -> bytes:
    """The merchant's 65-byte EIP-712 signature of `offer` for this escrow and chain."""
    if merchant.address.lower() != offer.merchant.lower():
        raise ConfigError(f"offer names merchant {offer.merchant}, but {merchant.address} is signing")
    return _sign(merchant, offer.typed_data(chain_id, escrow))


def sign_attestation(carrier: LocalAccount, att: Attestation, chain_id: int, escrow: str) -> bytes:
    """The carrier's 65-byte EIP-712 signature of an attestation for this escrow and chain."""
    return _sign(carrier, att.typed_data(chain_id, escrow))


def recover_signer(typed: dict[str, Any], signature: bytes) -> str:
    """The address that signed an EIP-712 message (for auditors checking attestations)."""
    return str(Account.recover_message(encode_typed_data(full_message=typed), signature=signature))


def signed_message(kind: str, struct: dict[str, Any]) -> Offer | Attestation:
    """The Offer or Attestation of EIP-712 type `kind` in a decoded call argument."""
    return Offer.from_message(struct) if kind == "Offer" else Attestation.from_message(kind, struct)


# --- terms and views ------------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    """A terms version (see ``IFulfillmentEscrow.Terms``); windows in seconds."""

    arbitrator: str
    fee_bps: int = 200
    reserve_bps: int = 100
    compensation_bps: int = 2_000
    delivery_window: int = 15 * DAY
    return_ship_window: int = 7 * DAY
    return_delivery_window: int = 15 * DAY
    return_inspection_window: int = 3 * DAY
    response_window: int = 3 * DAY
    arbitration_window: int = 30 * DAY
    arbitrator_extra_data: bytes = b""

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.fee_bps, self.reserve_bps, self.compensation_bps, self.delivery_window,
            self.return_ship_window, self.return_delivery_window, self.return_inspection_window,
            self.response_window, self.arbitration_window, to_checksum_address(self.arbitrator),
            self.arbitrator_extra_data,
        )  # fmt: skip

    @classmethod
    def from_tuple(cls, t: Any) -> Terms:
        return cls(
            fee_bps=int(t[0]), reserve_bps=int(t[1]), compensation_bps=int(t[2]),
            delivery_window=int(t[3]), return_ship_window=int(t[4]),
            return_delivery_window=int(t[5]), return_inspection_window=int(t[6]),
            response_window=int(t[7]), arbitration_window=int(t[8]),
            arbitrator=str(t[9]), arbitrator_extra_data=bytes(t[10]),
        )  # fmt: skip


@dataclass(frozen=True)
class OrderInfo:
    merchant: str
    buyer: str
    token: str
    price: int
    state: OrderState
    clock: int
    inspection_window: int
    terms_id: int
    lender: str
    deadline: int

    @property
    def pledged(self) -> bool:
        return int(self.lender, 16) != 0


@dataclass(frozen=True)
class DisputeInfo:
    arbitrator: str
    dispute_id: int
    opened_at: int
    opener: Party
    answered: bool


@dataclass(frozen=True)
class Totals:
    """What the escrow holds in one token, by purpose; the sum is its balance."""

    escrowed: int
    deposits: int
    reserve: int
    fees: int
    credits: int

    @property
    def total(self) -> int:
        return self.escrowed + self.deposits + self.reserve + self.fees + self.credits


# --- the client ---------------------------------------------------------------------------

_APPROVE_ABI = [{
    "type": "function", "name": "approve", "stateMutability": "nonpayable", "outputs": [],
    "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
}]  # fmt: skip


@dataclass
class EscrowClient:
    """Typed access to one deployed FulfillmentEscrow (and its arbitrator, if given).

    Every action takes the acting party's key (`sender`) and returns the mined receipt;
    reverts raise `ContractRevert` with the decoded custom error.
    """

    chain: Chain
    escrow: Contract
    arbitrator: Contract | None = None
    _terms_cache: dict[int, Terms] = field(default_factory=dict, repr=False)

    @classmethod
    def at(cls, chain: Chain, escrow: str, arbitrator: str | None = None) -> EscrowClient:
        return cls(
            chain,
            chain.contract("FulfillmentEscrow", escrow),
            chain.contract("PanelArbitrator", arbitrator) if arbitrator else None,
        )

    @property
    def address(self) -> str:
        return str(self.escrow.address)

    # signing ------------------------------------------------------------------------
    def sign_offer(self, merchant: LocalAccount, offer: Offer) -> bytes:
        return sign_offer(merchant, offer, self.chain.chain_id, self.address)

    def sign_attestation(self, carrier: LocalAccount, att: Attestation) -> bytes:
        return sign_attestation(carrier, att, self.chain.chain_id, self.address)

    # plumbing -----------------------------------------------------------------------
    def _tx(self, fn: Any, sender: LocalAccount, value: int = 0) -> dict[str, Any]:
        return self.chain.transact(fn, sender, value=value)

    def _value(self, token: str, amount: int) -> int:
        return amount if int(token, 16) == 0 else 0

    def approve(self, token: str, owner: LocalAccount, amount: int) -> dict[str, Any] | None:
        """Let the escrow pull `amount` of an ERC-20 from `owner` (no-op for ETH)."""
        if int(token, 16) == 0:
            return None
        # The approve fragment declares no return value, so tokens that return nothing
        # (USDT-like) and tokens that return a bool both work.
        erc20 = self.chain.w3.eth.contract(address=to_checksum_address(token), abi=_APPROVE_ABI)
        return self._tx(erc20.functions.approve(self.address, amount), owner)

    # order lifecycle ------------------------------------------------------------------
    def fund(self, offer: Offer, signature: bytes, buyer: LocalAccount, *,
             approve: bool = True) -> dict[str, Any]:
        """The buyer pays the price into escrow (approving an ERC-20 first unless told not to)."""
        if approve:
            self.approve(offer.token, buyer, offer.price)
        fn = self.escrow.functions.fund(offer.as_tuple(), signature)
        return self._tx(fn, buyer, self._value(offer.token, offer.price))

    def ship(self, att: Attestation, signature: bytes, sender: LocalAccount,
             evidence: bytes = ZERO32) -> dict[str, Any]:
        return self._tx(self.escrow.functions.ship(att.as_tuple(), signature, evidence), sender)

    def deliver(self, att: Attestation, signature: bytes, sender: LocalAccount,
                evidence: bytes = ZERO32) -> dict[str, Any]:
        return self._tx(self.escrow.functions.deliver(att.as_tuple(), signature, evidence), sender)

    def confirm_delivery(self, order_id: bytes, buyer: LocalAccount,
                         evidence: bytes = ZERO32) -> dict[str, Any]:
        return self._tx(self.escrow.functions.confirmDelivery(order_id, evidence), buyer)

    def release(self, order_id: bytes, sender: LocalAccount, evidence: bytes = ZERO32) -> dict[str, Any]:
        return self._tx(self.escrow.functions.release(order_id, evidence), sender)

    def refund(self, order_id: bytes, sender: LocalAccount, evidence: bytes = ZERO32) -> dict[str, Any]:
        return self._tx(self.escrow.functions.refund(order_id, evidence), sender)

    def cancel(self, order_id: bytes, merchant: LocalAccount, evidence: bytes = ZERO32) -> dict[str, Any]:
        return self._tx(self.escrow.functions.cancel(order_id, evidence), merchant)

    def request_return(self, order_id: bytes, amount: int, buyer: LocalAccount,
                       evidence: bytes = ZERO32) -> dict[str, Any]:
        return self._tx(self.escrow.functions.requestReturn(order_id, amount, evidence), buyer)

    def ship_return(self, att: Attestation, signature: bytes, sender: LocalAccount,
                    evidence: bytes = ZERO32) -> dict[str, Any]:
        return self._tx(self.escrow.functions.shipReturn(att.as_tuple(), signature, evidence), sender)

    def deliver_return(self, att: Attestation, signature: bytes, sender: LocalAccount,
                       evidence: bytes = ZERO32) -> dict[str, Any]:
        return self._tx(self.escrow.functions.deliverReturn(att.as_tuple(), signature, evidence), sender)

    def confirm_return(self, order_id: bytes, merchant: LocalAccount,
                       evidence: bytes = ZERO32) -> dict[str, Any]:
        return self._tx(self.escrow.functions.confirmReturn(order_id, evidence), merchant)

    def settle_return(self, order_id: bytes, sender: LocalAccount,
                      evidence: bytes = ZERO32) -> dict[str, Any]:
        return self._tx(self.escrow.functions.settleReturn(order_id, evidence), sender)

    def pledge(self, order_id: bytes, lender: str, merchant: LocalAccount) -> dict[str, Any]:
        return self._tx(self.escrow.functions.pledge(order_id, to_checksum_address(lender)), merchant)

    # disputes ---------------------------------------------------------------------------
    def arbitration_cost(self, order_id: bytes) -> int:
        info = self.order(order_id)
        terms = self.terms(info.terms_id)
        arb = self.chain.contract("IArbitrator", terms.arbitrator)
        return int(self.chain.call(arb.functions.arbitrationCost(terms.arbitrator_extra_data)))

    def open_dispute(self, order_id: bytes, party: LocalAccount, evidence: bytes = ZERO32) -> dict[str, Any]:
        """Open a dispute, paying the arbitration cost of the order's arbitrator."""
        cost = self.arbitration_cost(order_id)
        return self._tx(self.escrow.functions.openDispute(order_id, evidence), party, cost)

    def submit_evidence(self, order_id: bytes, party: LocalAccount, evidence: str) -> dict[str, Any]:
        return self._tx(self.escrow.functions.submitEvidence(order_id, evidence), party)

    def claim_default(self, order_id: bytes, opener: LocalAccount) -> dict[str, Any]:
        return self._tx(self.escrow.functions.claimDefault(order_id), opener)

    def timeout_dispute(self, order_id: bytes, sender: LocalAccount) -> dict[str, Any]:
        return self._tx(self.escrow.functions.timeoutDispute(order_id), sender)

    def vote(self, dispute_id: int, ruling: int, member: LocalAccount) -> dict[str, Any]:
        """A panel member's vote on the bundled PanelArbitrator."""
        if self.arbitrator is None:
            raise ConfigError("this client has no PanelArbitrator")
        return self._tx(self.arbitrator.functions.vote(dispute_id, ruling), member)

    # money -----------------------------------------------------------------------------
    def deposit(self, merchant: str, token: str, amount: int, sender: LocalAccount) -> dict[str, Any]:
        """Add to `merchant`'s deposit (approving an ERC-20 first)."""
        self.approve(token, sender, amount)
        fn = self.escrow.functions.depositFor(to_checksum_address(merchant), to_checksum_address(token),
                                              amount)
        return self._tx(fn, sender, self._value(token, amount))

    def withdraw_deposit(self, token: str, amount: int, merchant: LocalAccount) -> dict[str, Any]:
        return self._tx(self.escrow.functions.withdrawDeposit(to_checksum_address(token), amount), merchant)

    def fund_reserve(self, token: str, amount: int, sender: LocalAccount) -> dict[str, Any]:
        self.approve(token, sender, amount)
        fn = self.escrow.functions.fundReserve(to_checksum_address(token), amount)
        return self._tx(fn, sender, self._value(token, amount))

    def withdraw(self, token: str, account: LocalAccount, to: str | None = None) -> dict[str, Any]:
        token = to_checksum_address(token)
        if to is None:
            return self._tx(self.escrow.functions.withdraw(token), account)
        return self._tx(self.escrow.functions.withdrawTo(token, to_checksum_address(to)), account)

    # administration ------------------------------------------------------------------------
    def set_terms(self, terms: Terms, meta_evidence: str, admin: LocalAccount) -> dict[str, Any]:
        return self._tx(self.escrow.functions.setTerms(terms.as_tuple(), meta_evidence), admin)

    def set_deposit_ratio(self, bps: int, admin: LocalAccount) -> dict[str, Any]:
        return self._tx(self.escrow.functions.setDepositRatio(bps), admin)

    def set_carrier(self, carrier: str, registered: bool, admin: LocalAccount) -> dict[str, Any]:
        return self._tx(self.escrow.functions.setCarrier(to_checksum_address(carrier), registered), admin)

    def set_token_allowed(self, token: str, allowed: bool, admin: LocalAccount) -> dict[str, Any]:
        return self._tx(self.escrow.functions.setTokenAllowed(to_checksum_address(token), allowed), admin)

    def set_treasury(self, treasury: str, admin: LocalAccount) -> dict[str, Any]:
        return self._tx(self.escrow.functions.setTreasury(to_checksum_address(treasury)), admin)

    def withdraw_fees(self, token: str, amount: int, admin: LocalAccount) -> dict[str, Any]:
        return self._tx(self.escrow.functions.withdrawFees(to_checksum_address(token), amount), admin)

    # views ----------------------------------------------------------------------------------
    def order(self, order_id: bytes) -> OrderInfo:
        t = self.chain.call(self.escrow.functions.getOrder(order_id))
        return OrderInfo(
            merchant=str(t[0]), buyer=str(t[1]), token=str(t[2]), price=int(t[3]),
            state=OrderState(int(t[4])), clock=int(t[5]), inspection_window=int(t[6]),
            terms_id=int(t[7]), lender=str(t[8]), deadline=int(t[9]),
        )  # fmt: skip

    def state(self, order_id: bytes) -> OrderState:
        return OrderState(int(self.chain.call(self.escrow.functions.orderState(order_id))))

    def lender_of(self, order_id: bytes) -> str | None:
        lender = str(self.chain.call(self.escrow.functions.lenderOf(order_id)))
        return None if int(lender, 16) == 0 else lender

    def return_of(self, order_id: bytes) -> tuple[int, bytes]:
        amount, th = self.chain.call(self.escrow.functions.returnOf(order_id))
        return int(amount), bytes(th)

    def dispute_of(self, order_id: bytes) -> DisputeInfo:
        t = self.chain.call(self.escrow.functions.disputeOf(order_id))
        return DisputeInfo(str(t[0]), int(t[1]), int(t[2]), Party(int(t[3])), bool(t[4]))

    def order_of_tracking(self, th: bytes) -> bytes | None:
        oid = bytes(self.chain.call(self.escrow.functions.orderOfTracking(th)))
        return None if oid == ZERO32 else oid

    def totals(self, token: str) -> Totals:
        t = self.chain.call(self.escrow.functions.totals(to_checksum_address(token)))
        return Totals(*(int(x) for x in t))

    def credit_of(self, token: str, account: str) -> int:
        fn = self.escrow.functions.creditOf(to_checksum_address(token), to_checksum_address(account))
        return int(self.chain.call(fn))

    def deposit_of(self, token: str, merchant: str) -> tuple[int, int, int]:
        """(deposit, open exposure, required deposit) of a merchant in a token."""
        fn = self.escrow.functions.depositOf(to_checksum_address(token), to_checksum_address(merchant))
        d, e, r = self.chain.call(fn)
        return int(d), int(e), int(r)

    def terms(self, terms_id: int | None = None) -> Terms:
        if terms_id is None:
            terms_id = int(self.chain.call(self.escrow.functions.currentTermsId()))
        if terms_id not in self._terms_cache:  # versions are immutable once published
            self._terms_cache[terms_id] = Terms.from_tuple(
                self.chain.call(self.escrow.functions.terms(terms_id)))
        return self._terms_cache[terms_id]

    def is_carrier(self, address: str) -> bool:
        return bool(self.chain.call(self.escrow.functions.isCarrier(to_checksum_address(address))))

    def token_info(self, token: str) -> tuple[int, bool]:
        tid, allowed = self.chain.call(self.escrow.functions.tokenInfo(to_checksum_address(token)))
        return int(tid), bool(allowed)

    def balance(self, token: str, account: str | None = None) -> int:
        """`account`'s balance of `token` (the escrow's own by default)."""
        who = to_checksum_address(account or self.address)
        if int(token, 16) == 0:
            return int(self.chain.w3.eth.get_balance(who))
        erc20 = self.chain.contract("TestStablecoin", token)
        return int(self.chain.call(erc20.functions.balanceOf(who)))

    # events ---------------------------------------------------------------------------------
    def events(self, receipt: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The escrow's (and arbitrator's) events in a receipt, decoded, in log order."""
        out: list[tuple[str, dict[str, Any]]] = []
        contracts = [self.escrow] + ([self.arbitrator] if self.arbitrator is not None else [])
        by_address = {c.address.lower(): c for c in contracts}
        for log in receipt["logs"]:
            contract = by_address.get(str(log["address"]).lower())
            if contract is None:
                continue
            decoded = decode_log(contract, log)
            if decoded is not None:
                out.append(decoded)
        return out
