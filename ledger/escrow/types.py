"""The escrow's types as Python sees them: states, parties, rulings, terms and views.

Mirrors of ``IFulfillmentEscrow``'s enums and structs, and the money constants. Importing
this module teaches `ledger.chain.abi` to show ``EscrowUnexpectedState`` with state names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_utils import to_checksum_address

from ledger.chain.abi import ERROR_DISPLAY

__all__ = [
    "BPS", "DAY", "HOUR", "MIN_PRICE", "NATIVE", "RULING_SPLIT_BASE", "ZERO32", "DisputeInfo", "OrderInfo",
    "OrderState", "Party", "Resolution", "Ruling", "Terms", "Totals", "buyer_bps_of", "split_ruling",
]

NATIVE = "0x0000000000000000000000000000000000000000"


ZERO32 = b"\x00" * 32


BPS = 10_000
MIN_PRICE = BPS  # the escrow's lowest price in base units: fee and reserve never round to 0


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


@dataclass(frozen=True)
class Terms:
    """A terms version (see ``IFulfillmentEscrow.Terms``); windows in seconds.

    `deposit_ratio_bps`: each order funded under this version locks ceil(price x ratio / 10000)
    of its merchant's deposit until it settles. `arbitrator_extra_data` is passed to the
    arbitrator; for PanelArbitrator it is ``abi.encode(uint32 epoch)``, the immutable panel and
    cost that decide the version's disputes (`panel_extra_data`).
    """

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
    deposit_ratio_bps: int = 2_000
    arbitrator_extra_data: bytes = b""

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.fee_bps, self.reserve_bps, self.compensation_bps, self.delivery_window,
            self.return_ship_window, self.return_delivery_window, self.return_inspection_window,
            self.response_window, self.arbitration_window, self.deposit_ratio_bps,
            to_checksum_address(self.arbitrator), self.arbitrator_extra_data,
        )  # fmt: skip

    @classmethod
    def from_tuple(cls, t: Any) -> Terms:
        return cls(
            fee_bps=int(t[0]), reserve_bps=int(t[1]), compensation_bps=int(t[2]),
            delivery_window=int(t[3]), return_ship_window=int(t[4]),
            return_delivery_window=int(t[5]), return_inspection_window=int(t[6]),
            response_window=int(t[7]), arbitration_window=int(t[8]), deposit_ratio_bps=int(t[9]),
            arbitrator=str(t[10]), arbitrator_extra_data=bytes(t[11]),
        )  # fmt: skip


def panel_extra_data(epoch: int) -> bytes:
    """PanelArbitrator's `extraData` naming a panel epoch: ``abi.encode(uint32 epoch)``."""
    if not 0 < epoch < 2**32:
        raise ValueError(f"panel epoch {epoch} is not 1..2^32-1")
    return epoch.to_bytes(32, "big")


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
    opened_in: OrderState  # the state the order was in when the dispute was opened


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
