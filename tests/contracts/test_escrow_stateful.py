"""Stateful property test of FulfillmentEscrow: random sequences of every action against a model.

A hypothesis `RuleBasedStateMachine` drives one deployed escrow (``make_escrow_env``) with every
public action: funding ETH and ERC-20 offers (with broken variants: expired, replayed, wrong
signer, bad price, ship-by or window out of bounds, token not allowed, wrong value), carrier
shipment and delivery attestations (wrong carriers, parties as signers, reused or mismatched
waybills, impossible times), buyer confirmation, release, refund, cancel, returns (random
amounts), pledges, disputes opened by either party, evidence, panel votes on two arbitrators
(random rulings including splits, fraud, out-of-range rulings, rulings on disputes already
ended by default or timeout), default judgements,
arbitrator timeouts, deposits and withdrawals, reserve donations, credit withdrawals, fee
withdrawals and admin changes (terms, deposit ratio, carriers, token allowlist), plus time jumps
from minutes to weeks and random (often wrong) callers.

A Python model predicts every outcome: success, or the exact custom error of the first check that
fails (evaluated at the two ends of a small time window, since the block timestamp of a call is
only known within seconds). After every step the whole observable state (books, each party's
credit and deposit, every order, dispute and return) must equal the model, a reverted action must
have changed nothing, and the invariants below hold.

1. Per token, the escrow's real balance equals ``totals().total`` and the model's running balance;
   ``escrowed`` is the sum of the prices of the open orders.
2. A terminal order never changes again, and its settlement events credit exactly its price once
   (fraud compensation comes on top, bounded by the order's ``compensationBps``).
3. Paid out (credit, deposit and fee withdrawals) never exceeds paid in (prices, deposits,
   reserve donations).
4. Every open order reaches a terminal state by permissionless timeouts alone (checked on a
   snapshot every few steps and at the end of each run, where everything is also drained: after
   all timeouts, every credit, fee and deposit is withdrawn and only the reserve remains).
5. A lender gets its floor: once an order is pledged, whatever the merchant and any buyer address
   do together (the machine's parties act in every role), every payout reaches the lender and
   money goes back to the buyer only by its own rights (timeouts, an attested return, a ruling,
   a default the merchant side let pass) or by the lender's consent.
6. Admin changes made mid-order (terms, deposit ratio, the arbitrator and panel epoch a version
   names), at once or scheduled in an AdminTimelock and executed after its delay (refused
   before), never alter an open order: its version and that version's terms stay as funded.

Also: deposits never go below zero, and a merchant under its deposit requirement cannot fund.

Environment: ``LEDGER_STATEFUL_EXAMPLES`` (default 15 on the embedded chain, which gives the
breadth, and 5 on anvil, which shows the same model holds on a real node; set, it applies to
both: long fuzz runs are opt-in), ``LEDGER_STATEFUL_STEPS`` (default 40),
``LEDGER_STATEFUL_LIVENESS_EVERY`` (default 8 steps). Run with ``-s`` to see per-action counts.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from web3.contract import Contract

from ledger.chain.rpc import Chain
from ledger.config import settings as ledger_settings
from ledger.dev.sandbox import EscrowEnv, make_escrow_env
from ledger.errors import ContractRevert
from ledger.escrow.client import EscrowClient
from ledger.escrow.eip712 import Attestation, Offer, escrow_order_id
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
    Terms,
    split_ruling,
)
from ledger.escrow.types import OrderState as S

TIMELOCK_DELAY = DAY  # of the machine's AdminTimelock
EXAMPLES = ledger_settings().int_value("stateful_examples", 15)
ANVIL_EXAMPLES = ledger_settings().int_value("stateful_examples", 5)
STEPS = ledger_settings().int_value("stateful_steps", 40)
LIVENESS_EVERY = ledger_settings().int_value("stateful_liveness_every", 8)
SHRINK = ledger_settings().int_value("stateful_shrink", 1) != 0  # 0: report the first failure as is

ZERO_ADDR = to_checksum_address(NATIVE)
SLACK = 20  # seconds: a call's block timestamp is within [latest, latest + SLACK]
UINT88 = 2**88
RULING_OPTIONS = RULING_SPLIT_BASE + BPS  # rulings are contiguous: 0..3 named, 4 + buyer's bps
ARB2_COST = 10**15  # the second arbitrator charges for disputes (paid through the escrow)
MAX_TIMEOUT_STEPS = 3

# Merchant deposits are small (20% of 1e8 / 1e18 covers 5e8 / 5e18 of exposure), so the deposit
# requirement really bites; prices are drawn in the token's scale (ETH prices x 1e10).
DEPOSIT_USD = 10**8
DEPOSIT_ETH = 10**18
ETH_SCALE = 10**10

TERMINAL = {S.RELEASED, S.REFUNDED, S.RETURNED, S.RESOLVED}
SETTLEMENTS = ("OrderReleased", "OrderRefunded", "ReturnSettled", "DisputeResolved")
IN_RETURN = {S.RETURNING, S.RETURN_SHIPPED, S.RETURN_DELIVERED}
UNDISPUTED_OPEN = {S.FUNDED, S.SHIPPED, S.DELIVERED} | IN_RETURN
#: States only a recorded delivery leads to (a replayed delivery there is a no-op).
DELIVERED_SINCE = {S.DELIVERED, S.RELEASED, S.RETURNED} | IN_RETURN
#: What `predict` returns for a replayed step: the contract accepts it and nothing changes.
NOOP = "no-op"
_CANONICAL_WAYBILL = re.compile(r"[A-Z0-9]+:[A-Z0-9]+")


def _canonical(spelling: str) -> bool:
    """The escrow's rule for a waybill spelling, written again from docs/escrow.md."""
    return 3 <= len(spelling) <= 64 and _CANONICAL_WAYBILL.fullmatch(spelling) is not None


def _th(spelling: str) -> bytes:
    return bytes(keccak(text=spelling))
OPEN = UNDISPUTED_OPEN | {S.DISPUTED}

#: (field of `Terms`, ABI name, min, max); arbitrationWindow's min is max(responseWindow, 7 days)
TERM_BOUNDS = [
    ("fee_bps", "feeBps", 0, 1_000),
    ("reserve_bps", "reserveBps", 0, 500),
    ("compensation_bps", "compensationBps", 0, 10_000),
    ("delivery_window", "deliveryWindow", DAY, 90 * DAY),
    ("return_ship_window", "returnShipWindow", DAY, 30 * DAY),
    ("return_delivery_window", "returnDeliveryWindow", DAY, 60 * DAY),
    ("return_inspection_window", "returnInspectionWindow", HOUR, 30 * DAY),
    ("response_window", "responseWindow", DAY, 30 * DAY),
    ("arbitration_window", "arbitrationWindow", 7 * DAY, 365 * DAY),
    ("deposit_ratio_bps", "depositRatioBps", 0, 10_000),
]

PARTIES = [
    "admin", "merchant", "merchant2", "buyer", "buyer2", "carrier", "carrier2",
    "panel0", "panel1", "panel2", "lender", "treasury", "stranger",
]  # fmt: skip


# --- the model -------------------------------------------------------------------------------


@dataclass
class MOrder:
    """The model of one order (mirrors the contract's storage and the views)."""

    oid: bytes
    merchant: str
    buyer: str
    token: str
    price: int
    terms_id: int
    inspection: int
    state: S = S.FUNDED
    clock: int = 0
    funded_at: int = 0
    lender: str | None = None
    opened_in: S = S.NONE  # the state a dispute was opened in
    ret_amount: int = 0
    ret_tracking: bytes = ZERO32
    tracking: bytes = ZERO32
    opener: Party = Party.NONE
    answered: bool = False
    arbitrator: str = ZERO_ADDR
    dispute_id: int = 0
    opened_at: int = 0
    # from the settlement events (invariant 2), independent of the model's own arithmetic
    settlements: int = 0
    settled: int = 0
    compensation: int = 0
    # for the lender's floor (invariant 5): payouts of a pledged order to anyone but its lender,
    # and each way money went back to the buyer after the pledge, with who made it happen
    misdirected: int = 0
    to_buyer_paths: list[tuple[str, str]] = field(default_factory=list)


def _merchant_side(o: MOrder, address: str) -> bool:
    """Whether `address` acts for the merchant: the merchant, or the lender once pledged."""
    return address == o.merchant or (o.lender is not None and address == o.lender)


def _consenter(o: MOrder) -> str:
    """Who may give the buyer money back by consent: the merchant, or once pledged the lender."""
    return o.lender or o.merchant


@dataclass
class PanelDispute:
    order: bytes
    votes: Counter[int] = field(default_factory=Counter)
    voted: set[str] = field(default_factory=set)
    solved: bool = False
    ruling: int = 0


@dataclass
class PanelModel:
    address: str
    contract: Contract
    client: EscrowClient  # decodes the escrow's and this arbitrator's events
    members: tuple[str, ...]
    threshold: int
    cost: int
    disputes: list[PanelDispute] = field(default_factory=list)


class Ledger(Counter[tuple[str, str]]):
    """Per (token, account) amounts that remember which accounts were written since `clear`."""

    def __init__(self, *args: Any) -> None:
        self.touched: set[str] = set()
        super().__init__(*args)

    def __setitem__(self, key: tuple[str, str], value: int) -> None:
        self.touched.add(key[1])
        super().__setitem__(key, value)


@dataclass
class Book:
    escrowed: int = 0
    deposits: int = 0
    reserve: int = 0
    fees: int = 0
    credits: int = 0
    base_balance: int = 0  # what the escrow held when the run started (the env's deposits)
    paid_in: int = 0  # model: prices + deposits + reserve donations
    paid_out: int = 0  # model: credit, deposit and fee withdrawals
    ev_in: int = 0  # the same from the events
    ev_out: int = 0

    def totals(self) -> tuple[int, int, int, int, int]:
        return (self.escrowed, self.deposits, self.reserve, self.fees, self.credits)


@dataclass
class Harness:
    """What the machine runs against: one deployed env, reset to `snap` before every example."""

    chain: Chain
    env: EscrowEnv
    arb2: Contract
    timelock: Contract  # an AdminTimelock that shares the escrow's admin role (scheduled changes)
    snap: Any
    base: dict[str, Any] | None = None
    stats: Counter[tuple[str, str]] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    timing: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    sources: Counter[tuple[str, str]] = field(default_factory=Counter)

    def reset(self) -> None:
        self.chain.revert_to(self.snap)
        self.snap = self.chain.snapshot()  # anvil consumes a snapshot when reverting to it


def _norm(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return tuple(_norm(v) for v in value)
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    return value


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


class Unexpected(AssertionError):
    """The contract and the model disagree."""


# --- strategies ------------------------------------------------------------------------------

actor = st.one_of(st.none(), st.none(), st.sampled_from(PARTIES))  # None: who the action needs
picks = st.integers(0, 2**16)
focus = st.integers(0, 4)  # 0: any order or a never-funded id; else an order in a fitting state
tokens = st.sampled_from(["usd", "eth"])
signers = st.sampled_from(
    ["carrier", "carrier2", "carrier", "carrier2", "stranger", "@merchant", "@buyer", "merchant2"]
)
backs = st.integers(0, 3 * DAY)
waits = st.sampled_from([0, 0, 1, 1, 2])  # jump to just past (1) or just before (2) the deadline
rulings = st.one_of(
    st.sampled_from([0, 1, 2, 3]),
    st.just(3),  # fraud: compensation from the deposit, then the reserve
    st.integers(0, BPS).map(split_ruling),
    st.sampled_from([RULING_SPLIT_BASE, RULING_OPTIONS, RULING_OPTIONS + 1]),  # last: out of range
)
# Mostly valid prices (the minimum, just above, large), some just below the minimum.
prices = st.one_of(st.integers(MIN_PRICE, MIN_PRICE + 1_000), st.integers(10**5, 2 * 10**8),
                   st.integers(1, MIN_PRICE - 1))
amounts = st.one_of(st.just(0), st.integers(1, 1_000), st.integers(10**5, 10**8))
time_jumps = st.one_of(
    st.integers(60, HOUR), st.integers(HOUR, 2 * DAY), st.integers(DAY, 21 * DAY)
)
FUND_VARIANTS = ("ok",) * 12 + (
    "expired", "zero_id", "squat", "stale_terms", "replay", "bad_sig", "price0", "price_big", "ship_by_past",
    "ship_by_far", "insp_short", "insp_long", "bad_token", "bad_value",
)  # fmt: skip
term_values = {  # valid values (responseWindow 10 days needs arbitrationWindow >= 10 days)
    "fee_bps": st.integers(0, 1_000),
    "reserve_bps": st.integers(0, 500),
    "compensation_bps": st.sampled_from([0, 2_000, 5_000, 10_000]),
    "delivery_window": st.sampled_from([DAY, 2 * DAY, 15 * DAY]),
    "return_ship_window": st.sampled_from([DAY, 7 * DAY]),
    "return_delivery_window": st.sampled_from([DAY, 15 * DAY]),
    "return_inspection_window": st.sampled_from([HOUR, 3 * DAY]),
    "response_window": st.sampled_from([DAY, 3 * DAY, 10 * DAY]),
    "arbitration_window": st.sampled_from([7 * DAY, 10 * DAY, 30 * DAY]),
    "deposit_ratio_bps": st.sampled_from([0, 1_000, 2_000, 2_000, 5_000, BPS]),
}
bad_terms = st.sampled_from([None] * 18 + [attr for attr, *_ in TERM_BOUNDS])
SEED_TARGETS = [
    "funded", "shipped", "delivered", "confirmed", "returning", "return_shipped",
    "return_delivered", "disputed_by_buyer", "disputed_by_merchant", "disputed_in_return",
    "voted_once",
]  # fmt: skip


# --- the machine -----------------------------------------------------------------------------


class EscrowMachine(RuleBasedStateMachine):
    harness: ClassVar[Harness]

    def __init__(self) -> None:
        super().__init__()
        h = self.harness
        h.reset()
        self.h = h
        self.chain = h.chain
        self.env = h.env
        self.client = h.env.client
        self.escrow = self.client.escrow
        assert self.client.batcher is not None
        self.batcher = self.client.batcher.address
        env = h.env
        self.p: dict[str, LocalAccount] = {
            "admin": env.admin, "merchant": env.merchant, "merchant2": env.merchant2,
            "buyer": env.buyer, "buyer2": env.buyer2, "carrier": env.carrier,
            "carrier2": env.carrier2, "panel0": env.panel[0], "panel1": env.panel[1],
            "panel2": env.panel[2], "lender": env.lender, "treasury": env.treasury,
            "stranger": env.stranger,
        }  # fmt: skip
        self.by_addr: dict[str, LocalAccount] = {a.address: a for a in self.p.values()}
        self.tok: dict[str, str] = {"eth": ZERO_ADDR, "usd": to_checksum_address(env.token)}
        self.orders: dict[bytes, MOrder] = {}
        # admin changes scheduled in the timelock: (salt, terms, executable from)
        self.scheduled: list[tuple[bytes, Terms, int]] = []
        self.n = 0
        self.steps = 0
        self.tracking: dict[bytes, bytes] = {}  # tracking hash -> the order that claimed it
        self.spelling: dict[bytes, str] = {}  # tracking hash -> its canonical spelling
        if h.base is None:  # every example starts from the same snapshot: read it once
            h.base = self._read_base()
        base = h.base
        self.terms: dict[int, Terms] = {1: base["terms"]}
        self.terms_id = 1
        self.carriers: set[str] = set(base["carriers"])
        self.allowed: dict[str, bool] = {t: True for t in self.tok.values()}
        self.token_id: dict[str, int] = dict(base["token_id"])
        arb1 = self.client.arbitrator
        assert arb1 is not None
        self.panels: dict[str, PanelModel] = {
            arb1.address: PanelModel(
                arb1.address, arb1, self.client,
                tuple(a.address for a in env.panel), 2, 0,
            ),
            h.arb2.address: PanelModel(
                h.arb2.address, h.arb2, EscrowClient(self.chain, self.escrow, h.arb2),
                (env.panel[1].address, env.panel[2].address, env.stranger.address), 2, ARB2_COST,
            ),
        }  # fmt: skip
        self.books: dict[str, Book] = {t: Book(*base["books"][t]) for t in self.tok.values()}
        self.credits = Ledger(base["credit"])
        self.deposits = Ledger(base["deposit"])
        self.locked = Ledger(base["locked"])  # deposit locked by open orders, per (token, merchant)
        self._abi = {  # name -> (selector, input types, output types)
            i["name"]: (
                bytes(keccak(text=f"{i['name']}({','.join(_abi_type(x) for x in i['inputs'])})"))[
                    :4
                ],
                [_abi_type(x) for x in i["inputs"]],
                [_abi_type(x) for x in i["outputs"]],
            )
            for i in cast(list[dict[str, Any]], self.escrow.abi)
            if i.get("type") == "function"
        }
        self.last_views: dict[Any, Any] | None = None
        self.expect_unchanged = False  # an action of this step reverted ...
        self.step_changed = False  # ... and none succeeded: then no view may have changed
        self._wall = time.monotonic()
        self._source = "rule"  # or "seed", "drive": who took the action (for the report)

    def _read_base(self) -> dict[str, Any]:
        """The deployed env's state (terms, carriers, books, every party's credit and deposit)."""
        c = self.client
        base: dict[str, Any] = {
            "terms": c.terms(1),
            "carriers": {a for a in self.by_addr if c.is_carrier(a)},
            "token_id": {t: c.token_info(t)[0] for t in self.tok.values()},
            "books": {}, "credit": {}, "deposit": {}, "locked": {},
        }  # fmt: skip
        for t in self.tok.values():
            tt = c.totals(t)
            balance = c.balance(t)
            assert balance == tt.total, "the env's books do not add up"
            base["books"][t] = (tt.escrowed, tt.deposits, tt.reserve, tt.fees, tt.credits, balance)
            for addr in self.by_addr:
                d, locked = c.deposit_of(t, addr)
                base["deposit"][t, addr] = d
                base["locked"][t, addr] = locked
                base["credit"][t, addr] = c.credit_of(t, addr)
        return base

    # -- plumbing --------------------------------------------------------------------------

    def _count(self, action: str, outcome: str) -> None:
        self.h.stats[action, outcome] += 1
        if outcome == "ok" and self._source != "rule":
            self.h.sources[action, self._source] += 1

    def _window(self) -> tuple[int, int]:
        """Bounds of the block timestamp the next call or transaction runs at."""
        if time.monotonic() - self._wall > 2:
            self.chain.mine()  # keep `latest` close to the pending block's time
            self._wall = time.monotonic()
        lo = self.chain.timestamp()
        return lo, lo + SLACK

    def _travel(self, seconds: int) -> None:
        self.chain.time_travel(seconds)
        self._wall = time.monotonic()

    def _act(
        self,
        name: str,
        predict: Callable[[int], str | None],
        send: Callable[[], dict[str, Any]],
        apply: Callable[[int, list[tuple[str, dict[str, Any]]]], None],
        events_client: EscrowClient | None = None,
    ) -> bool:
        """Run one action; check the outcome against the model's prediction; update the model."""
        lo, hi = self._window()
        exp_lo, exp_hi = predict(lo), predict(hi)
        started = time.monotonic()
        try:
            receipt = send()
        except ContractRevert as exc:
            allowed = {e for e in (exp_lo, exp_hi) if e not in (None, NOOP)}
            if exp_lo != exp_hi:
                allowed.add("Unknown")  # mined at the other side of a deadline than the call
            if exc.error_name not in allowed:
                raise Unexpected(
                    f"{name}: the contract reverted with {exc} but the model expected "
                    f"{exp_lo or 'success'} (at t={lo}) / {exp_hi or 'success'} (at t={hi})"
                ) from None
            self._count(name, exc.error_name)
            self.expect_unchanged = True
            return False
        finally:
            self._wall = time.monotonic()
            self.h.timing["transactions"] += self._wall - started
        ts = int(self.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
        expected = predict(ts)
        if expected == NOOP:  # a replayed step: accepted, and nothing may change
            emitted = (events_client or self.client).events(receipt)
            if emitted:
                raise Unexpected(f"{name}: a replay the model expected to change nothing emitted {emitted}")
            self.expect_unchanged = True
            self._count(name, "no-op")
            return False
        if expected is not None:
            raise Unexpected(
                f"{name}: the contract accepted it at t={ts}; the model expected {expected}"
            )
        self.step_changed = True  # the unchanged-state check is for steps of reverts only
        events = (events_client or self.client).events(receipt)
        self._ingest(events)
        apply(ts, events)
        self._count(name, "ok")
        return True

    def _ingest(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Event-side accounting, independent of the model's arithmetic (invariants 2 and 3)."""
        for name, a in events:
            if name == "OrderFunded":
                self.books[to_checksum_address(a["token"])].ev_in += a["price"]
            elif name in ("DepositAdded", "ReserveFunded"):
                self.books[to_checksum_address(a["token"])].ev_in += a["amount"]
            elif name in ("Withdrawn", "FeesWithdrawn", "DepositWithdrawn"):
                self.books[to_checksum_address(a["token"])].ev_out += a["amount"]
            elif name in SETTLEMENTS:
                o = self.orders[bytes(a["orderId"])]
                o.settlements += 1
                if o.lender and a.get("payout") and to_checksum_address(a["payee"]) != o.lender:
                    o.misdirected += a["payout"]
                if name == "OrderReleased":
                    o.settled += a["payout"] + a["fee"] + a["reserve"]
                elif name == "OrderRefunded":
                    o.settled += a["amount"]
                elif name == "ReturnSettled":
                    o.settled += a["refund"] + a["payout"] + a["fee"] + a["reserve"]
                else:
                    o.settled += a["toBuyer"] + a["payout"] + a["fee"] + a["reserve"]
                    o.compensation += a["compensation"]

    @staticmethod
    def _event(events: list[tuple[str, dict[str, Any]]], name: str) -> dict[str, Any]:
        found = [a for n, a in events if n == name]
        if len(found) != 1:
            raise Unexpected(f"expected one {name} event, got {[n for n, _ in events]}")
        return found[0]

    def _check_event(
        self, events: list[tuple[str, dict[str, Any]]], name: str, **want: Any
    ) -> None:
        got = self._event(events, name)
        for key, value in want.items():
            if _norm(got[key]) != _norm(value):
                raise Unexpected(f"{name}.{key} = {got[key]!r}, model says {value!r} ({got})")

    def _who(self, choice: str | None, right: str) -> LocalAccount:
        """The caller: `choice` if drawn, else `right` (an address or a party name)."""
        if choice is not None:
            return self.p[choice]
        if right in self.p:
            return self.p[right]
        return self.by_addr.get(right, self.p["stranger"])

    def _role(self, name: str, o: MOrder) -> str:
        """An address for a party name or an order-relative role (@merchant, @buyer, @lender:
        the lender, or the merchant while the order is not pledged)."""
        if name == "@lender":
            return o.lender or o.merchant
        if name == "@merchant":
            return o.merchant
        if name == "@buyer":
            return o.buyer
        if name == "zero":
            return ZERO_ADDR
        return self.p[name].address

    def _signer(self, name: str, o: MOrder) -> LocalAccount:
        addr = self._role(name, o)
        return self.by_addr.get(addr, self.p["stranger"])

    def _ghost(self, pick: int) -> MOrder:
        return MOrder(
            keccak(text=f"ghost-{pick}"), ZERO_ADDR, ZERO_ADDR, ZERO_ADDR, 0, 0, 0, state=S.NONE
        )

    def _order(self, pick: int, focus_: int, states: set[S]) -> MOrder:
        every = list(self.orders.values())
        if focus_ == 0:
            if not every or pick % 8 == 7:
                return self._ghost(pick)
            return every[pick % len(every)]
        pool = [o for o in every if o.state in states] or every
        return pool[pick % len(pool)] if pool else self._ghost(pick)

    def _deadline(self, o: MOrder, state: S | None = None) -> int:
        state = o.state if state is None else state
        t = self.terms.get(o.terms_id)
        if state == S.FUNDED:
            return o.clock
        if state == S.DELIVERED:
            return o.clock + o.inspection
        if t is None:
            return 0
        return {
            S.SHIPPED: o.clock + t.delivery_window,
            S.RETURNING: o.clock + t.return_ship_window,
            S.RETURN_SHIPPED: o.clock + t.return_delivery_window,
            S.RETURN_DELIVERED: o.clock + t.return_inspection_window,
            S.DISPUTED: o.clock + t.response_window,
        }.get(state, 0)

    @property
    def ratio(self) -> int:
        """The deposit ratio of the current terms: what a new order locks, in bps of its price."""
        return self.terms[self.terms_id].deposit_ratio_bps

    def _lock(self, o: MOrder) -> int:
        """What an order locks of its merchant's deposit: at the ratio of its own terms."""
        return (o.price * self.terms[o.terms_id].deposit_ratio_bps + BPS - 1) // BPS

    def _fresh_tracking(self) -> str:
        """A new waybill in its canonical spelling (its hash is the escrow's key)."""
        self.n += 1
        spelling = f"SF:WB{self.n}"
        self.spelling[_th(spelling)] = spelling
        return spelling

    def _spelling_of(self, th: bytes) -> str:
        """The spelling of a waybill the model has seen, or a fresh one for none (ZERO32)."""
        return self.spelling.get(th) or self._fresh_tracking()

    def _evidence(self) -> bytes:
        self.n += 1
        return keccak(text=f"evidence-{self.n}")

    # -- settlement model --------------------------------------------------------------------

    def _settle(self, o: MOrder, to_buyer: int) -> tuple[str, int, int, int]:
        t = self.terms[o.terms_id]
        gross = o.price - to_buyer
        fee = gross * t.fee_bps // BPS
        reserve = gross * t.reserve_bps // BPS
        payout = gross - fee - reserve
        b = self.books[o.token]
        b.escrowed -= o.price
        b.credits += to_buyer + payout
        b.fees += fee
        b.reserve += reserve
        self.locked[o.token, o.merchant] -= self._lock(o)
        payee = o.merchant
        if payout:
            payee = o.lender or o.merchant
            self.credits[o.token, payee] += payout
        if to_buyer:
            self.credits[o.token, o.buyer] += to_buyer
        return payee, payout, fee, reserve

    def _compensate(self, o: MOrder) -> int:
        due = o.price * self.terms[o.terms_id].compensation_bps // BPS
        b = self.books[o.token]
        slashed = min(self.deposits[o.token, o.merchant], due)
        self.deposits[o.token, o.merchant] -= slashed
        b.deposits -= slashed
        from_reserve = min(b.reserve, due - slashed)
        b.reserve -= from_reserve
        b.credits += slashed + from_reserve
        self.credits[o.token, o.buyer] += slashed + from_reserve
        return slashed + from_reserve

    def _apply_release(self, o: MOrder, events: list[Any], tag: str) -> None:
        o.state = S.RELEASED
        payee, payout, fee, reserve = self._settle(o, 0)
        self._check_event(
            events, "OrderReleased", orderId=o.oid, payee=payee, payout=payout, fee=fee,
            reserve=reserve,
        )  # fmt: skip
        self.h.paths[f"released{' pledged' if o.lender else ''} ({tag})"] += 1

    def _apply_refund(self, o: MOrder, events: list[Any], tag: str) -> None:
        o.state = S.REFUNDED
        self._settle(o, o.price)
        self._check_event(events, "OrderRefunded", orderId=o.oid, buyer=o.buyer, amount=o.price)
        self.h.paths[f"refunded ({tag})"] += 1

    def _apply_return(self, o: MOrder, events: list[Any], tag: str) -> None:
        o.state = S.RETURNED
        payee, payout, fee, reserve = self._settle(o, o.ret_amount)
        self._check_event(
            events, "ReturnSettled", orderId=o.oid, refund=o.ret_amount, payee=payee,
            payout=payout, fee=fee, reserve=reserve,
        )  # fmt: skip
        kind = "full" if o.ret_amount == o.price else "partial"
        self.h.paths[f"returned {kind}{' pledged' if o.lender else ''} ({tag})"] += 1

    def _apply_resolve(self, o: MOrder, events: list[Any], ruling: int, how: Resolution) -> None:
        o.state = S.RESOLVED
        if ruling == 0:
            bps = BPS // 2
        elif ruling in (1, 3):
            bps = BPS
        elif ruling == 2:
            bps = 0
        else:
            bps = ruling - RULING_SPLIT_BASE
        to_buyer = o.price * bps // BPS
        payee, payout, fee, reserve = self._settle(o, to_buyer)
        compensation = self._compensate(o) if ruling == 3 else 0
        self._check_event(
            events, "DisputeResolved", orderId=o.oid, ruling=ruling, how=int(how),
            toBuyer=to_buyer, payee=payee, payout=payout, fee=fee, reserve=reserve,
            compensation=compensation,
        )  # fmt: skip
        kind = {0: "refused/50-50", 1: "refund", 2: "release", 3: "fraud"}.get(ruling, "split")
        self.h.paths[f"resolved {how.name.lower()} {kind}{' pledged' if o.lender else ''}"] += 1

    # -- actions: order lifecycle -------------------------------------------------------------

    def do_fund(
        self, token: str, merchant: LocalAccount, buyer_field: str, caller: LocalAccount,
        price: int, ship_in: int, inspection: int, variant: str = "ok",
    ) -> MOrder | None:  # fmt: skip
        now = self.chain.timestamp()
        self.n += 1
        oid = escrow_order_id(f"order-{self.n}", merchant.address)
        if variant == "zero_id":
            oid = ZERO32
        elif variant == "squat":  # another merchant's namespace
            other = self.p["merchant2" if merchant is self.p["merchant"] else "merchant"]
            oid = escrow_order_id(f"order-{self.n}", other.address)
        elif variant == "replay" and self.orders:
            oid = next(iter(self.orders))
        if variant == "bad_token":
            token = self.p["stranger"].address
        if variant == "price0":
            price = 0
        elif variant == "price_big":
            price = UINT88
        ship_by = {"ship_by_past": now - 1, "ship_by_far": now + 181 * DAY}.get(
            variant, now + ship_in
        )
        inspection = {"insp_short": HOUR - 1, "insp_long": 30 * DAY + 1}.get(variant, inspection)
        expires = now - 1 if variant == "expired" else now + DAY
        offered_terms = self.terms_id - 1 if variant == "stale_terms" else self.terms_id
        offer = Offer(
            oid, merchant.address, buyer_field, token, price, ship_by, inspection,
            keccak(text=f"record-{self.n}"), expires, offered_terms,
        )  # fmt: skip
        signer = merchant
        if variant == "bad_sig":
            signer = self.p["merchant2" if merchant is self.p["merchant"] else "merchant"]
        typed = offer.typed_data(self.chain.chain_id, self.client.address)
        sig = bytes(signer.sign_message(encode_typed_data(full_message=typed)).signature)
        is_eth = token == ZERO_ADDR
        value = price if is_eth else 0
        if variant == "bad_value":
            value = price + 1 if is_eth else 1
        elif variant == "price_big":
            value = 0
        usd = self.tok["usd"]
        balance = self._funds(usd, caller) if token == usd else 0
        if token == usd:
            self.client.approve(usd, caller, price)

        def predict(t: int) -> str | None:
            if oid[:20] != bytes.fromhex(merchant.address[2:]):
                return "EscrowInvalidOrderId"
            if oid in self.orders:
                return "EscrowOrderExists"
            if t > expires:
                return "EscrowOfferExpired"
            buyer = caller.address if buyer_field == ZERO_ADDR else buyer_field
            if buyer != caller.address:
                return "EscrowUnauthorizedCaller"
            if merchant.address == buyer:
                return "EscrowInvalidParties"
            if price < MIN_PRICE or price >= UINT88:
                return "EscrowInvalidPrice"
            if not t + 1 <= ship_by <= t + 180 * DAY or not HOUR <= inspection <= 30 * DAY:
                return "EscrowParameterOutOfBounds"
            if not self.allowed.get(token, False):
                return "EscrowTokenNotAllowed"
            if signer is not merchant:
                return "EscrowInvalidSignature"
            if offered_terms != self.terms_id:
                return "EscrowTermsNotCurrent"
            need = self.locked[token, merchant.address] + (price * self.ratio + BPS - 1) // BPS
            if need and self.deposits[token, merchant.address] < need:
                return "EscrowDepositTooLow"
            if value != (price if is_eth else 0):
                return "EscrowWrongValue"
            if not is_eth and balance < price:
                return "ERC20InsufficientBalance"
            return None

        def send() -> dict[str, Any]:
            fn = self.escrow.functions.fund(offer.as_tuple(), sig)
            return self.chain.transact(fn, caller, value=value)

        made: list[MOrder] = []

        def apply(ts: int, events: list[Any]) -> None:
            buyer = caller.address if buyer_field == ZERO_ADDR else buyer_field
            key = (token, merchant.address)
            # a merchant under its requirement cannot fund (the model already predicted it)
            o = MOrder(
                oid, merchant.address, buyer, token, price, self.terms_id, inspection,
                clock=ship_by, funded_at=ts,
            )  # fmt: skip
            assert self.deposits[key] >= self.locked[key] + self._lock(o)
            self.orders[oid] = o
            self.locked[key] += self._lock(o)
            b = self.books[token]
            b.escrowed += price
            b.paid_in += price
            self._check_event(events, "OrderFunded", orderId=oid, buyer=buyer, price=price,
                              termsId=self.terms_id)
            made.append(o)

        self._act(f"fund[{'eth' if is_eth else 'usd'}]", predict, send, apply)
        return made[0] if made else None

    def do_ship(
        self, o: MOrder, signer: LocalAccount, spelling: str, shipped_at: int, sender: LocalAccount
    ) -> bool:
        att = Attestation("Shipment", o.oid, spelling, shipped_at, self._evidence())
        sig = self.client.sign_attestation(signer, att)
        th = _th(spelling)

        def predict(t: int) -> str | None:
            if not _canonical(spelling):
                return "EscrowNonCanonicalTracking"
            if signer.address not in self.carriers:
                return "EscrowNotCarrier"
            if o.state != S.FUNDED:
                if self.tracking.get(th) == o.oid and o.ret_tracking != th:
                    return NOOP  # this order's outbound parcel: the step was taken
                return "EscrowUnexpectedState"
            if signer.address == o.merchant:
                return "EscrowSignerIsParty"
            if shipped_at > t:
                return "EscrowInvalidTimestamp"
            if shipped_at > o.clock or t > o.clock:
                return "EscrowLateShipment"
            if th in self.tracking:
                return "EscrowTrackingReused"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            self.tracking[th] = o.oid
            o.tracking = th
            o.state = S.SHIPPED
            o.clock = ts  # the delivery window runs from when the shipment is recorded

        send = lambda: self.client.ship(att, sig, sender)  # noqa: E731
        return self._act("ship", predict, send, apply)

    def do_deliver(
        self, o: MOrder, signer: LocalAccount, spelling: str, delivered_at: int, sender: LocalAccount
    ) -> bool:
        att = Attestation("Delivery", o.oid, spelling, delivered_at, self._evidence())
        sig = self.client.sign_attestation(signer, att)
        th = _th(spelling)

        def predict(t: int) -> str | None:
            if not _canonical(spelling):
                return "EscrowNonCanonicalTracking"
            if signer.address not in self.carriers:
                return "EscrowNotCarrier"
            if o.state != S.SHIPPED:
                if (o.state in DELIVERED_SINCE and self.tracking.get(th) == o.oid
                        and o.ret_tracking != th):
                    return NOOP  # the outbound parcel, and only a delivery leads to this state
                return "EscrowUnexpectedState"
            if t > self._deadline(o):
                return "EscrowWindowClosed"
            if signer.address == o.merchant:
                return "EscrowSignerIsParty"
            if self.tracking.get(th) != o.oid:
                return "EscrowTrackingMismatch"
            if delivered_at > t:
                return "EscrowInvalidTimestamp"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            o.state = S.DELIVERED
            o.clock = ts  # the inspection window runs from when the delivery is recorded

        return self._act("deliver", predict, lambda: self.client.deliver(att, sig, sender), apply)

    def do_confirm_delivery(self, o: MOrder, caller: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if o.state != S.SHIPPED:
                return "EscrowUnexpectedState"
            if caller.address != o.buyer:
                return "EscrowUnauthorizedCaller"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            o.state = S.DELIVERED
            o.clock = ts

        send = lambda: self.client.confirm_delivery(o.oid, caller)  # noqa: E731
        return self._act("confirmDelivery", predict, send, apply)

    def do_release(self, o: MOrder, caller: LocalAccount, tag: str = "rule") -> bool:
        def predict(t: int) -> str | None:
            if o.state == S.RELEASED:
                return NOOP
            if o.state not in (S.DELIVERED, S.RETURNING):
                return "EscrowUnexpectedState"
            if t <= self._deadline(o):
                return "EscrowTooEarly"
            return None

        apply = lambda ts, ev: self._apply_release(o, ev, tag)  # noqa: E731
        return self._act("release", predict, lambda: self.client.release(o.oid, caller), apply)

    def do_refund(self, o: MOrder, caller: LocalAccount, tag: str = "timeout") -> bool:
        def predict(t: int) -> str | None:
            if o.state == S.REFUNDED:
                return NOOP
            if o.state not in (S.FUNDED, S.SHIPPED):
                return "EscrowUnexpectedState"
            if t <= self._deadline(o):
                return "EscrowTooEarly"
            return None

        apply = lambda ts, ev: self._apply_refund(o, ev, tag)  # noqa: E731
        return self._act("refund", predict, lambda: self.client.refund(o.oid, caller), apply)

    def do_cancel(self, o: MOrder, caller: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if o.state not in UNDISPUTED_OPEN:
                return "EscrowUnexpectedState"
            if caller.address != _consenter(o):
                return "EscrowUnauthorizedCaller"
            return None

        def apply(ts: int, ev: list[Any]) -> None:
            o.to_buyer_paths.append(("consent", caller.address))
            self._apply_refund(o, ev, f"cancel from {o.state.name}")

        return self._act("cancel", predict, lambda: self.client.cancel(o.oid, caller), apply)

    def do_request_return(self, o: MOrder, amount: int, caller: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if o.state != S.DELIVERED:
                return "EscrowUnexpectedState"
            if caller.address != o.buyer:
                return "EscrowUnauthorizedCaller"
            if t > self._deadline(o):
                return "EscrowWindowClosed"
            if amount == 0 or amount > o.price:
                return "EscrowInvalidReturnAmount"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            o.state = S.RETURNING
            o.clock = ts
            o.ret_amount = amount
            self._check_event(events, "ReturnRequested", orderId=o.oid, amount=amount)

        send = lambda: self.client.request_return(o.oid, amount, caller)  # noqa: E731
        return self._act("requestReturn", predict, send, apply)

    def do_ship_return(
        self, o: MOrder, signer: LocalAccount, spelling: str, shipped_at: int, sender: LocalAccount
    ) -> bool:
        att = Attestation("ReturnShipment", o.oid, spelling, shipped_at, self._evidence())
        sig = self.client.sign_attestation(signer, att)
        th = _th(spelling)

        def predict(t: int) -> str | None:
            if not _canonical(spelling):
                return "EscrowNonCanonicalTracking"
            if signer.address not in self.carriers:
                return "EscrowNotCarrier"
            if o.state != S.RETURNING:
                if o.ret_tracking == th:
                    return NOOP
                return "EscrowUnexpectedState"
            if t > self._deadline(o):
                return "EscrowWindowClosed"
            if signer.address in (o.merchant, o.buyer):
                return "EscrowSignerIsParty"
            if shipped_at > t:
                return "EscrowInvalidTimestamp"
            if th in self.tracking:
                return "EscrowTrackingReused"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            self.tracking[th] = o.oid
            o.ret_tracking = th
            o.state = S.RETURN_SHIPPED
            o.clock = ts  # the return-delivery window runs from recording

        send = lambda: self.client.ship_return(att, sig, sender)  # noqa: E731
        return self._act("shipReturn", predict, send, apply)

    def do_deliver_return(
        self, o: MOrder, signer: LocalAccount, spelling: str, delivered_at: int, sender: LocalAccount
    ) -> bool:
        att = Attestation("ReturnDelivery", o.oid, spelling, delivered_at, self._evidence())
        sig = self.client.sign_attestation(signer, att)
        th = _th(spelling)

        def predict(t: int) -> str | None:
            if not _canonical(spelling):
                return "EscrowNonCanonicalTracking"
            if signer.address not in self.carriers:
                return "EscrowNotCarrier"
            if o.state != S.RETURN_SHIPPED:
                if o.ret_tracking == th and o.state in (S.RETURN_DELIVERED, S.RETURNED):
                    return NOOP
                return "EscrowUnexpectedState"
            if t > self._deadline(o):
                return "EscrowWindowClosed"
            if signer.address in (o.merchant, o.buyer):
                return "EscrowSignerIsParty"
            if th != o.ret_tracking:
                return "EscrowTrackingMismatch"
            if delivered_at > t:
                return "EscrowInvalidTimestamp"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            o.state = S.RETURN_DELIVERED
            o.clock = ts

        send = lambda: self.client.deliver_return(att, sig, sender)  # noqa: E731
        return self._act("deliverReturn", predict, send, apply)

    def do_confirm_return(self, o: MOrder, caller: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if o.state not in IN_RETURN:
                return "EscrowUnexpectedState"
            if caller.address != _consenter(o):
                return "EscrowUnauthorizedCaller"
            return None

        def apply(ts: int, ev: list[Any]) -> None:
            o.to_buyer_paths.append(("consent", caller.address))
            self._apply_return(o, ev, f"confirmed in {o.state.name}")

        send = lambda: self.client.confirm_return(o.oid, caller)  # noqa: E731
        return self._act("confirmReturn", predict, send, apply)

    def do_settle_return(self, o: MOrder, caller: LocalAccount, tag: str = "timeout") -> bool:
        def predict(t: int) -> str | None:
            if o.state == S.RETURNED:
                return NOOP
            if o.state not in (S.RETURN_SHIPPED, S.RETURN_DELIVERED):
                return "EscrowUnexpectedState"
            if t <= self._deadline(o):
                return "EscrowTooEarly"
            return None

        def apply(ts: int, ev: list[Any]) -> None:
            # by timeout: the buyer's right only with a return parcel a carrier attested
            o.to_buyer_paths.append(("evidenced return" if o.ret_tracking != ZERO32 else "no parcel",
                                     caller.address))
            self._apply_return(o, ev, f"{tag} from {o.state.name}")

        send = lambda: self.client.settle_return(o.oid, caller)  # noqa: E731
        return self._act("settleReturn", predict, send, apply)

    def do_pledge(self, o: MOrder, lender: str, caller: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if o.state not in UNDISPUTED_OPEN:
                return "EscrowUnexpectedState"
            if caller.address != o.merchant:
                return "EscrowUnauthorizedCaller"
            if lender in (ZERO_ADDR, o.merchant, self.escrow.address):
                return "EscrowInvalidLender"
            if o.lender is not None:
                return "EscrowAlreadyPledged"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            o.lender = lender
            self._check_event(events, "OrderPledged", orderId=o.oid, lender=lender)

        send = lambda: self.client.pledge(o.oid, lender, caller)  # noqa: E731
        return self._act("pledge", predict, send, apply)

    # -- actions: disputes --------------------------------------------------------------------

    def do_open_dispute(self, o: MOrder, caller: LocalAccount, wrong_value: bool = False) -> bool:
        arb = self.panels.get(self.terms[o.terms_id].arbitrator) if o.terms_id else None
        cost = arb.cost if arb else 0
        value = cost + 1 if wrong_value else cost

        def predict(t: int) -> str | None:
            if o.state not in {S.SHIPPED, S.DELIVERED} | IN_RETURN:
                return "EscrowUnexpectedState"
            if caller.address == o.buyer:
                if o.state not in (S.DELIVERED, S.RETURNING):
                    return "EscrowUnexpectedState"
            elif _merchant_side(o, caller.address):
                if o.state not in {S.SHIPPED} | IN_RETURN:
                    return "EscrowUnexpectedState"
            else:
                return "EscrowUnauthorizedCaller"
            if t > self._deadline(o):
                return "EscrowWindowClosed"
            if value != cost:
                return "EscrowWrongValue"
            return None

        def send() -> dict[str, Any]:
            fn = self.escrow.functions.openDispute(o.oid, self._evidence())
            return self.chain.transact(fn, caller, value=value)

        def apply(ts: int, events: list[Any]) -> None:
            assert arb is not None
            o.opener = Party.BUYER if caller.address == o.buyer else Party.MERCHANT
            o.opened_in = o.state
            o.state = S.DISPUTED
            o.clock = ts
            o.opened_at = ts
            o.arbitrator = arb.address
            o.dispute_id = len(arb.disputes)
            arb.disputes.append(PanelDispute(o.oid))
            self._check_event(
                events, "DisputeOpened", orderId=o.oid, arbitrator=arb.address,
                disputeId=o.dispute_id, opener=caller.address,
            )  # fmt: skip

        return self._act("openDispute", predict, send, apply)

    def do_submit_evidence(self, o: MOrder, caller: LocalAccount, text: str) -> bool:
        def predict(t: int) -> str | None:
            if o.state != S.DISPUTED:
                return "EscrowUnexpectedState"
            if caller.address != o.buyer and not _merchant_side(o, caller.address):
                return "EscrowUnauthorizedCaller"
            party = Party.BUYER if caller.address == o.buyer else Party.MERCHANT
            if party != o.opener and not o.answered and t > self._deadline(o):
                return "EscrowWindowClosed"  # the answer is due within the response window
            return None

        def apply(ts: int, events: list[Any]) -> None:
            party = Party.BUYER if caller.address == o.buyer else Party.MERCHANT
            answers = party != o.opener and not o.answered
            if answers:
                o.answered = True
            assert any(n == "DisputeAnswered" for n, _ in events) == answers

        send = lambda: self.client.submit_evidence(o.oid, caller, text)  # noqa: E731
        return self._act("submitEvidence", predict, send, apply)

    def do_vote(self, arb: PanelModel, dispute_id: int, ruling: int, member: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if dispute_id >= len(arb.disputes):
                return "PanelUnknownDispute"
            d = arb.disputes[dispute_id]
            if d.solved:
                return "PanelDisputeNotWaiting"
            if member.address not in arb.members:
                return "PanelNotMember"
            if member.address in d.voted:
                return "PanelAlreadyVoted"
            if ruling > RULING_OPTIONS:
                return "PanelInvalidRuling"
            return None

        def send() -> dict[str, Any]:
            return self.chain.transact(arb.contract.functions.vote(dispute_id, ruling), member)

        def apply(ts: int, events: list[Any]) -> None:
            d = arb.disputes[dispute_id]
            d.voted.add(member.address)
            d.votes[ruling] += 1
            names = [n for n, _ in events]
            if d.votes[ruling] < arb.threshold:
                assert "DisputeRuled" not in names, names
                return
            d.solved = True
            d.ruling = ruling
            o = self.orders[d.order]
            if o.state != S.DISPUTED:
                assert "RulingDeliveryFailed" in names and "DisputeResolved" not in names, names
                self.h.paths["panel ruling rejected by the escrow"] += 1
                return
            assert "RulingDeliveryFailed" not in names, names
            self._apply_resolve(o, events, ruling, Resolution.RULING)

        return self._act("vote", predict, send, apply, events_client=arb.client)

    def do_claim_default(self, o: MOrder, caller: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if o.state != S.DISPUTED:
                return "EscrowUnexpectedState"
            may_claim = (caller.address == o.buyer if o.opener == Party.BUYER
                         else _merchant_side(o, caller.address))
            if not may_claim:
                return "EscrowUnauthorizedCaller"
            if o.answered:
                return "EscrowRespondentAnswered"
            if o.opener == Party.MERCHANT and o.opened_in != S.RETURNING:
                return "EscrowDefaultNeedsDelivery"  # buyer silence never stands in for delivery
            if t <= self._deadline(o):
                return "EscrowTooEarly"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            ruling = 1 if o.opener == Party.BUYER else 2
            self._apply_resolve(o, events, ruling, Resolution.DEFAULT)

        send = lambda: self.client.claim_default(o.oid, caller)  # noqa: E731
        return self._act("claimDefault", predict, send, apply)

    def do_timeout_dispute(self, o: MOrder, caller: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if o.state != S.DISPUTED:
                return "EscrowUnexpectedState"
            if t <= o.clock + self.terms[o.terms_id].arbitration_window:
                return "EscrowTooEarly"
            return None

        apply = lambda ts, ev: self._apply_resolve(o, ev, 0, Resolution.ARBITRATOR_TIMEOUT)  # noqa: E731
        send = lambda: self.client.timeout_dispute(o.oid, caller)  # noqa: E731
        return self._act("timeoutDispute", predict, send, apply)

    # -- actions: money -------------------------------------------------------------------------

    def _funds(self, token: str, who: LocalAccount) -> int:
        """What `who` can pay in `token` (test-stablecoin balance; ETH: plenty)."""
        return self.client.balance(token, who.address) if token != ZERO_ADDR else 10**30

    def do_deposit(self, token: str, merchant: str, amount: int, sender: LocalAccount) -> bool:
        funds = self._funds(token, sender)

        def predict(t: int) -> str | None:
            if merchant == ZERO_ADDR:
                return "EscrowZeroAddress"
            if merchant == self.escrow.address:
                return "EscrowSelfTransfer"
            if amount == 0:
                return "EscrowZeroAmount"
            if not self.allowed[token]:
                return "EscrowTokenNotAllowed"
            if funds < amount:
                return "ERC20InsufficientBalance"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            self.deposits[token, merchant] += amount
            self.books[token].deposits += amount
            self.books[token].paid_in += amount

        send = lambda: self.client.deposit(merchant, token, amount, sender)  # noqa: E731
        return self._act("depositFor", predict, send, apply)

    def do_withdraw_deposit(self, token: str, amount: int, caller: LocalAccount) -> bool:
        key = (token, caller.address)

        def predict(t: int) -> str | None:
            if amount == 0:
                return "EscrowZeroAmount"
            free = max(0, self.deposits[key] - self.locked[key])
            if amount > free:
                return "EscrowDepositLocked"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            self.deposits[key] -= amount
            self.books[token].deposits -= amount
            self.books[token].paid_out += amount

        send = lambda: self.client.withdraw_deposit(token, amount, caller)  # noqa: E731
        return self._act("withdrawDeposit", predict, send, apply)

    def do_fund_reserve(self, token: str, amount: int, sender: LocalAccount) -> bool:
        funds = self._funds(token, sender)

        def predict(t: int) -> str | None:
            if amount == 0:
                return "EscrowZeroAmount"
            if not self.allowed[token]:
                return "EscrowTokenNotAllowed"
            if funds < amount:
                return "ERC20InsufficientBalance"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            self.books[token].reserve += amount
            self.books[token].paid_in += amount

        send = lambda: self.client.fund_reserve(token, amount, sender)  # noqa: E731
        return self._act("fundReserve", predict, send, apply)

    def do_withdraw(self, token: str, caller: LocalAccount, to: str | None) -> bool:
        key = (token, caller.address)

        def predict(t: int) -> str | None:
            if to == ZERO_ADDR:
                return "EscrowZeroAddress"
            if to == self.escrow.address:
                return "EscrowSelfTransfer"  # nobody could withdraw it from there
            if self.credits[key] == 0:
                return "EscrowNothingToWithdraw"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            self._check_event(events, "Withdrawn", account=caller.address, amount=self.credits[key],
                              to=to or caller.address)
            self.books[token].credits -= self.credits[key]
            self.books[token].paid_out += self.credits[key]
            self.credits[key] = 0

        send = lambda: self.client.withdraw(token, caller, to)  # noqa: E731
        return self._act("withdraw" if to is None else "withdrawTo", predict, send, apply)

    def do_withdraw_fees(self, token: str, amount: int, caller: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if caller is not self.p["admin"]:
                return "AccessControlUnauthorizedAccount"
            if amount == 0 or amount > self.books[token].fees:
                return "EscrowFeesExceeded"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            self._check_event(events, "FeesWithdrawn", treasury=self.p["treasury"].address,
                              amount=amount)
            self.books[token].fees -= amount
            self.books[token].paid_out += amount

        send = lambda: self.client.withdraw_fees(token, amount, caller)  # noqa: E731
        return self._act("withdrawFees", predict, send, apply)

    # -- actions: administration ------------------------------------------------------------------

    def terms_problem(self, terms: Terms) -> str | None:
        """The error setting `terms` reverts with, by the contract's rules, or None."""
        for attr, _, lo, hi in TERM_BOUNDS:
            if attr == "arbitration_window":
                lo = max(terms.response_window, lo)
            if not lo <= getattr(terms, attr) <= hi:
                return "EscrowParameterOutOfBounds"
        if terms.arbitrator not in self.panels:
            return "EscrowZeroAddress"  # no code at the arbitrator's address
        return None

    def do_set_terms(self, terms: Terms, caller: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if caller is not self.p["admin"]:
                return "AccessControlUnauthorizedAccount"
            return self.terms_problem(terms)

        def apply(ts: int, events: list[Any]) -> None:
            self.terms_id += 1
            self.terms[self.terms_id] = terms
            self._check_event(
                events, "TermsSet", termsId=self.terms_id, arbitrator=terms.arbitrator
            )

        send = lambda: self.client.set_terms(terms, "data:,stateful", caller)  # noqa: E731
        return self._act("setTerms", predict, send, apply)

    def do_set_deposit_ratio(self, ratio: int, caller: LocalAccount) -> bool:
        """The admin publishes the current terms with another deposit ratio: what open orders
        locked stays locked at their own ratio; only new orders lock at this one."""
        return self.do_set_terms(dataclasses.replace(self.terms[self.terms_id], deposit_ratio_bps=ratio),
                                 caller)

    def do_set_carrier(self, who: str, registered: bool, caller: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if caller is not self.p["admin"]:
                return "AccessControlUnauthorizedAccount"
            if who == ZERO_ADDR:
                return "EscrowZeroAddress"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            (self.carriers.add if registered else self.carriers.discard)(who)

        send = lambda: self.client.set_carrier(who, registered, caller)  # noqa: E731
        return self._act("setCarrier", predict, send, apply)

    def do_set_token_allowed(self, token: str, allowed: bool, caller: LocalAccount) -> bool:
        def predict(t: int) -> str | None:
            if caller is not self.p["admin"]:
                return "AccessControlUnauthorizedAccount"
            return None

        def apply(ts: int, events: list[Any]) -> None:
            self.allowed[token] = allowed

        send = lambda: self.client.set_token_allowed(token, allowed, caller)  # noqa: E731
        return self._act("setTokenAllowed", predict, send, apply)

    # -- seeding: orders in deep states from the start ------------------------------------------

    @initialize(
        plan=st.lists(
            st.tuples(tokens, st.sampled_from(SEED_TARGETS), st.booleans(), st.integers(0, 3)),
            max_size=6,
        )
    )
    def seed(self, plan: list[tuple[str, str, bool, int]]) -> None:
        """Fund orders and drive them along the happy path to a target state (counted as usual)."""
        self._source = "seed"
        try:
            self._seed(plan)
        finally:
            self._source = "rule"

    def _seed(self, plan: list[tuple[str, str, bool, int]]) -> None:
        for token_key, target, pledged, who in plan:
            merchant = self.p["merchant" if who & 1 else "merchant2"]
            buyer = self.p["buyer" if who & 2 else "buyer2"]
            scale = ETH_SCALE if token_key == "eth" else 1
            o = self.do_fund(self.tok[token_key], merchant, buyer.address, buyer,
                             10**6 * scale, 10 * DAY, 3 * DAY)
            if o is None:
                continue
            if pledged:
                self.do_pledge(o, self.p["lender"].address, merchant)
            if target == "funded":
                continue
            now = self.chain.timestamp()
            self.do_ship(o, self.p["carrier"], self._fresh_tracking(), now, self.p["stranger"])
            if target == "disputed_by_merchant":
                self.do_open_dispute(o, merchant)
            if target in ("shipped", "disputed_by_merchant"):
                continue
            if target == "confirmed":
                self.do_confirm_delivery(o, buyer)
                continue
            self.do_deliver(o, self.p["carrier2"], self._spelling_of(o.tracking), self.chain.timestamp(),
                            buyer)
            if target in ("disputed_by_buyer", "voted_once"):
                self.do_open_dispute(o, buyer)
            if target == "voted_once" and o.state == S.DISPUTED:
                arb = self.panels[o.arbitrator]
                ruling = [3, split_ruling(2_500), 2, 0][who]
                self.do_vote(arb, o.dispute_id, ruling, self.by_addr[arb.members[0]])
            if target in ("delivered", "disputed_by_buyer", "voted_once"):
                continue
            self.do_request_return(o, o.price // (1 + who), buyer)
            if target == "returning":
                continue
            self.do_ship_return(o, self.p["carrier"], self._fresh_tracking(),
                                self.chain.timestamp(), buyer)
            if target == "return_shipped":
                continue
            self.do_deliver_return(o, self.p["carrier2"], self._spelling_of(o.ret_tracking),
                                   self.chain.timestamp(), merchant)
            if target == "disputed_in_return":
                self.do_open_dispute(o, merchant)

    # -- rules ------------------------------------------------------------------------------------

    @rule(
        token=tokens, merchant=st.sampled_from(["merchant", "merchant2"]),
        buyer=st.sampled_from(["buyer", "buyer2"]), open_offer=st.booleans(), caller=actor,
        price=prices, ship_in=st.integers(HOUR, 20 * DAY),
        inspection=st.sampled_from([HOUR, 6 * HOUR, DAY, 3 * DAY, 7 * DAY]),
        variant=st.sampled_from(FUND_VARIANTS),
    )  # fmt: skip
    def fund(
        self, token: str, merchant: str, buyer: str, open_offer: bool, caller: str | None,
        price: int, ship_in: int, inspection: int, variant: str,
    ) -> None:  # fmt: skip
        scale = ETH_SCALE if token == "eth" else 1
        buyer_field = ZERO_ADDR if open_offer else self.p[buyer].address
        self.do_fund(self.tok[token], self.p[merchant], buyer_field, self._who(caller, buyer),
                     price * scale, ship_in, inspection, variant)

    @rule(pick=st.integers(0, 1_000))
    def collude(self, pick: int) -> None:
        """The merchant and its buyer address try to void a pledge: a full "return" no parcel
        backs, confirmed by the merchant, or a cancel (the model expects refusals; invariant 5)."""
        pledged = [o for o in self.orders.values() if o.lender and o.state not in TERMINAL]
        if not pledged:
            return
        o = pledged[pick % len(pledged)]
        merchant, buyer = self.by_addr.get(o.merchant), self.by_addr.get(o.buyer)
        if merchant is None:
            return
        self.h.paths["collusion attempted"] += 1
        if o.state == S.DELIVERED and buyer is not None:
            self.do_request_return(o, o.price, buyer)
        if o.state in IN_RETURN:
            self.do_confirm_return(o, merchant)
        self.do_cancel(o, merchant)

    @rule(pick=picks, focus_=focus, signer=signers,
          tracking=st.sampled_from(["fresh"] * 4 + ["noncanonical", "reuse", "replay"]),
          when=st.sampled_from(["ok"] * 4 + ["future", "late", "before_funding"]), back=backs,
          sender=st.sampled_from(PARTIES))  # fmt: skip
    def ship(self, pick: int, focus_: int, signer: str, tracking: str, when: str, back: int,
             sender: str) -> None:  # fmt: skip
        o = self._order(pick, focus_, {S.FUNDED})
        now = self.chain.timestamp()
        th = {"noncanonical": f"sf:wb-{self.n}", "replay": self._spelling_of(o.tracking),
              "reuse": self._spelling_of(next(iter(self.tracking), ZERO32))}.get(tracking) \
            or self._fresh_tracking()
        at = {
            "future": now + HOUR,
            "late": o.clock + 1,
            "before_funding": max(0, o.funded_at - back - 1),
        }.get(when, max(0, min(now - back, o.clock)))
        self.do_ship(o, self._signer(signer, o), th, at, self.p[sender])

    @rule(pick=picks, focus_=focus, signer=signers,
          tracking=st.sampled_from(["own"] * 4 + ["other", "noncanonical"]),
          when=st.sampled_from(["ok"] * 4 + ["early", "future"]), back=backs,
          sender=st.sampled_from(PARTIES))  # fmt: skip
    def deliver(self, pick: int, focus_: int, signer: str, tracking: str, when: str, back: int,
                sender: str) -> None:  # fmt: skip
        o = self._order(pick, focus_, {S.SHIPPED})
        now = self.chain.timestamp()
        th = {"noncanonical": "SF WB1", "other": self._fresh_tracking()}.get(tracking) \
            or self._spelling_of(o.tracking)
        at = {"early": max(0, o.clock - 1), "future": now + HOUR}.get(
            when, min(now, max(o.clock, now - back))
        )
        self.do_deliver(o, self._signer(signer, o), th, at, self.p[sender])

    @rule(pick=picks, focus_=focus, caller=actor)
    def confirm_delivery(self, pick: int, focus_: int, caller: str | None) -> None:
        o = self._order(pick, focus_, {S.SHIPPED})
        self.do_confirm_delivery(o, self._who(caller, o.buyer))

    def _wait_for(self, deadline: int, wait: int) -> None:
        """With `wait` 1: jump to just past `deadline`; 2: to just before it (0: no jump)."""
        now = self.chain.timestamp()
        target = deadline + 2 if wait == 1 else deadline - SLACK - 60
        if wait and deadline and now < target < now + 120 * DAY:
            self._travel(target - now)
            self._count("advanceTime", "ok")

    @rule(pick=picks, focus_=focus, caller=actor, wait=waits)
    def release(self, pick: int, focus_: int, caller: str | None, wait: int) -> None:
        o = self._order(pick, focus_, {S.DELIVERED, S.RETURNING})
        self._wait_for(self._deadline(o), wait)
        self.do_release(o, self._who(caller, "stranger"))

    @rule(pick=picks, focus_=focus, caller=actor, wait=waits)
    def refund(self, pick: int, focus_: int, caller: str | None, wait: int) -> None:
        o = self._order(pick, focus_, {S.FUNDED, S.SHIPPED})
        self._wait_for(self._deadline(o), wait)
        self.do_refund(o, self._who(caller, o.buyer))

    @rule(pick=picks, focus_=focus, caller=actor)
    def cancel(self, pick: int, focus_: int, caller: str | None) -> None:
        o = self._order(pick, focus_, UNDISPUTED_OPEN)
        self.do_cancel(o, self._who(caller, self._role("@lender", o)))

    @rule(pick=picks, focus_=focus, caller=actor, wait=waits,
          amount=st.one_of(st.sampled_from(["full", "zero", "over"]), st.integers(1, BPS)))
    def request_return(self, pick: int, focus_: int, caller: str | None, wait: int,
                       amount: str | int) -> None:  # fmt: skip
        o = self._order(pick, focus_, {S.DELIVERED})
        self._wait_for(self._deadline(o), wait)
        value = {"full": o.price, "zero": 0, "over": o.price + 1}.get(str(amount))
        if value is None:
            value = max(1, o.price * int(amount) // BPS)
        self.do_request_return(o, value, self._who(caller, o.buyer))

    @rule(pick=picks, focus_=focus, signer=signers,
          tracking=st.sampled_from(["fresh"] * 4 + ["noncanonical", "outbound", "replay"]),
          when=st.sampled_from(["ok"] * 4 + ["early", "future"]), back=backs,
          sender=st.sampled_from(PARTIES))  # fmt: skip
    def ship_return(self, pick: int, focus_: int, signer: str, tracking: str, when: str,
                    back: int, sender: str) -> None:  # fmt: skip
        o = self._order(pick, focus_, {S.RETURNING})
        now = self.chain.timestamp()
        th = {"noncanonical": "SF:", "outbound": self._spelling_of(o.tracking),
              "replay": self._spelling_of(o.ret_tracking)}.get(tracking) or self._fresh_tracking()
        at = {"early": max(0, o.clock - 1), "future": now + HOUR}.get(
            when, min(now, max(o.clock, now - back))
        )
        self.do_ship_return(o, self._signer(signer, o), th, at, self.p[sender])

    @rule(pick=picks, focus_=focus, signer=signers,
          tracking=st.sampled_from(["own"] * 4 + ["outbound", "other"]),
          when=st.sampled_from(["ok"] * 4 + ["early", "future"]), back=backs,
          sender=st.sampled_from(PARTIES))  # fmt: skip
    def deliver_return(self, pick: int, focus_: int, signer: str, tracking: str, when: str,
                       back: int, sender: str) -> None:  # fmt: skip
        o = self._order(pick, focus_, {S.RETURN_SHIPPED})
        now = self.chain.timestamp()
        th = {"outbound": self._spelling_of(o.tracking), "other": self._fresh_tracking()}.get(
            tracking) or self._spelling_of(o.ret_tracking)
        at = {"early": max(0, o.clock - 1), "future": now + HOUR}.get(
            when, min(now, max(o.clock, now - back))
        )
        self.do_deliver_return(o, self._signer(signer, o), th, at, self.p[sender])

    @rule(pick=picks, focus_=focus, caller=actor)
    def confirm_return(self, pick: int, focus_: int, caller: str | None) -> None:
        o = self._order(pick, focus_, IN_RETURN)
        self.do_confirm_return(o, self._who(caller, self._role("@lender", o)))

    @rule(pick=picks, focus_=focus, caller=actor, wait=waits)
    def settle_return(self, pick: int, focus_: int, caller: str | None, wait: int) -> None:
        o = self._order(pick, focus_, {S.RETURN_SHIPPED, S.RETURN_DELIVERED})
        self._wait_for(self._deadline(o), wait)
        self.do_settle_return(o, self._who(caller, "stranger"))

    @rule(pick=picks, focus_=focus, caller=actor,
          lender=st.sampled_from(
              ["lender", "lender", "stranger", "buyer2", "@buyer", "@merchant", "zero"]
          ))
    def pledge(self, pick: int, focus_: int, caller: str | None, lender: str) -> None:
        o = self._order(pick, focus_, UNDISPUTED_OPEN)
        self.do_pledge(o, self._role(lender, o), self._who(caller, o.merchant))

    @rule(pick=picks, focus_=focus, side=st.sampled_from(["@buyer", "@merchant", "@lender"]), caller=actor,
          wrong_value=st.sampled_from([False] * 7 + [True]), wait=waits)
    def open_dispute(self, pick: int, focus_: int, side: str, caller: str | None,
                     wrong_value: bool, wait: int) -> None:  # fmt: skip
        o = self._order(pick, focus_, {S.SHIPPED, S.DELIVERED} | IN_RETURN)
        self._wait_for(self._deadline(o), wait)
        self.do_open_dispute(o, self._who(caller, self._role(side, o)), wrong_value)

    @rule(pick=picks, focus_=focus, side=st.sampled_from(["@buyer", "@merchant", "@lender"]), caller=actor,
          text=st.text(max_size=8))
    def submit_evidence(self, pick: int, focus_: int, side: str, caller: str | None,
                        text: str) -> None:  # fmt: skip
        o = self._order(pick, focus_, {S.DISPUTED})
        self.do_submit_evidence(o, self._who(caller, self._role(side, o)), "leaf:" + text)

    @rule(pick=picks, focus_=focus, member=st.integers(0, 3), wrong=actor, ruling=rulings,
          agree=st.booleans(),
          aim=st.sampled_from(["own"] * 5 + ["other_arbitrator", "unknown_id"]))
    def vote(self, pick: int, focus_: int, member: int, wrong: str | None, ruling: int,
             agree: bool, aim: str) -> None:  # fmt: skip
        o = self._order(pick, focus_, {S.DISPUTED})
        arbs = list(self.panels.values())
        arb = self.panels.get(o.arbitrator, arbs[0])
        dispute_id = o.dispute_id if o.arbitrator in self.panels else len(arb.disputes)
        if aim == "other_arbitrator":
            arb = arbs[1] if arb is arbs[0] else arbs[0]
        elif aim == "unknown_id":
            dispute_id = len(arb.disputes) + pick % 3
        if wrong is not None and member == 3:
            voter = self.p[wrong]
        else:
            voter = self.by_addr[arb.members[member % len(arb.members)]]
        self.do_vote(arb, dispute_id, self._agreeing(arb, dispute_id, ruling, agree), voter)

    @staticmethod
    def _agreeing(arb: PanelModel, dispute_id: int, ruling: int, agree: bool) -> int:
        """`ruling`, or (if `agree`) the ruling another member already voted for."""
        if agree and dispute_id < len(arb.disputes) and arb.disputes[dispute_id].votes:
            return arb.disputes[dispute_id].votes.most_common(1)[0][0]
        return ruling

    @rule(pick=picks, focus_=focus, caller=actor, wait=waits)
    def claim_default(self, pick: int, focus_: int, caller: str | None, wait: int) -> None:
        o = self._order(pick, focus_, {S.DISPUTED})
        self._wait_for(self._deadline(o), wait)
        opener = o.buyer if o.opener == Party.BUYER else self._role("@lender", o)
        self.do_claim_default(o, self._who(caller, opener))

    @rule(pick=picks, focus_=focus, caller=actor, wait=waits)
    def timeout_dispute(self, pick: int, focus_: int, caller: str | None, wait: int) -> None:
        o = self._order(pick, focus_, {S.DISPUTED})
        if o.state == S.DISPUTED:
            self._wait_for(o.clock + self.terms[o.terms_id].arbitration_window, wait)
        self.do_timeout_dispute(o, self._who(caller, "stranger"))

    @rule(token=tokens,
          merchant=st.sampled_from(["merchant", "merchant2", "merchant", "buyer", "zero"]),
          sender=actor, amount=amounts)
    def deposit(self, token: str, merchant: str, sender: str | None, amount: int) -> None:
        target = ZERO_ADDR if merchant == "zero" else self.p[merchant].address
        scale = ETH_SCALE if token == "eth" else 1
        payer = self._who(sender, merchant if merchant != "zero" else "merchant")
        self.do_deposit(self.tok[token], target, amount * scale, payer)

    @rule(token=tokens,
          caller=st.sampled_from(["merchant", "merchant2", "merchant", "buyer", "stranger"]),
          amount=st.one_of(st.sampled_from(["free", "free+1", "all", "half", "zero"]), amounts))
    def withdraw_deposit(self, token: str, caller: str, amount: str | int) -> None:
        tok = self.tok[token]
        who = self.p[caller]
        have = self.deposits[tok, who.address]
        free = max(0, have - self.locked[tok, who.address])
        value = {"free": free, "free+1": free + 1, "all": have, "half": free // 2, "zero": 0}.get(
            str(amount)
        )
        if value is None:
            value = int(amount) * (ETH_SCALE if token == "eth" else 1)
        self.do_withdraw_deposit(tok, value, who)

    @rule(token=tokens, sender=st.sampled_from(PARTIES), amount=amounts)
    def fund_reserve(self, token: str, sender: str, amount: int) -> None:
        scale = ETH_SCALE if token == "eth" else 1
        self.do_fund_reserve(self.tok[token], amount * scale, self.p[sender])

    @rule(token=tokens, caller=actor, pick=picks,
          to=st.sampled_from([None] * 4 + ["stranger", "treasury", "zero", "escrow"]))
    def withdraw(self, token: str, caller: str | None, pick: int, to: str | None) -> None:
        tok = self.tok[token]
        who = self.p[caller or "stranger"]
        owed = sorted((t, a) for (t, a), c in self.credits.items() if c)
        if caller is None and owed:  # someone with a credit (in whichever token)
            tok, addr = owed[pick % len(owed)]
            who = self.by_addr[addr]
        dest = {None: None, "zero": ZERO_ADDR, "escrow": self.escrow.address}.get(to)
        if to in self.p:
            dest = self.p[to].address
        self.do_withdraw(tok, who, dest)

    @rule(token=tokens, caller=actor,
          amount=st.sampled_from(["all", "all", "half", "over", "zero"]))
    def withdraw_fees(self, token: str, caller: str | None, amount: str) -> None:
        tok = self.tok[token]
        fees = self.books[tok].fees
        value = {"all": fees, "half": fees // 2, "over": fees + 1, "zero": 0}[amount]
        self.do_withdraw_fees(tok, value, self._who(caller, "admin"))

    @rule(arbitrator=st.sampled_from([0, 1]), values=st.fixed_dictionaries(term_values))
    def schedule_terms(self, arbitrator: int, values: dict[str, int]) -> None:
        """The admin schedules new terms in the timelock: nothing changes until it executes."""
        terms = Terms(arbitrator=[*self.panels][arbitrator], **cast(dict[str, Any], values))
        call = self.client.calls.set_terms(terms, "data:,scheduled")
        self.n += 1
        salt = keccak(text=f"scheduled-{self.n}")
        tl = self.h.timelock
        receipt = self.chain.transact(tl.functions.schedule(
            self.escrow.address, 0, call.calldata, bytes(32), salt, TIMELOCK_DELAY), self.p["admin"])
        ts = int(self.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
        self.scheduled.append((salt, terms, ts + TIMELOCK_DELAY))
        self._count("schedule (timelock)", "ok")

    @rule(pick=st.integers(0, 100))
    def execute_scheduled(self, pick: int) -> None:
        """Execute a scheduled change: refused before its delay has passed; after it, the terms
        apply to orders funded from then on only (invariant 6)."""
        if not self.scheduled:
            return
        salt, terms, ready = self.scheduled[pick % len(self.scheduled)]
        call = self.client.calls.set_terms(terms, "data:,scheduled")
        tl = self.h.timelock

        def predict(t: int) -> str | None:
            # Once ready, the timelock runs the call and bubbles up its revert (the operation
            # stays scheduled, so it is tried again after the terms could be set).
            return "TimelockUnexpectedOperationState" if t < ready else self.terms_problem(terms)

        def apply(ts: int, events: list[Any]) -> None:
            self.scheduled.remove((salt, terms, ready))
            self.terms_id += 1
            self.terms[self.terms_id] = terms
            self._check_event(events, "TermsSet", termsId=self.terms_id, arbitrator=terms.arbitrator)
            self.h.paths["terms changed by the timelock"] += 1

        def send() -> dict[str, Any]:
            fn = tl.functions.execute(self.escrow.address, 0, call.calldata, bytes(32), salt)
            return self.chain.transact(fn, self.p["admin"])

        self._act("execute (timelock)", predict, send, apply)

    @rule(caller=st.sampled_from([None] * 4 + PARTIES[1:3]),
          arbitrator=st.sampled_from([0, 1, 0, 1, 2]),
          bad=bad_terms, low=st.booleans(), values=st.fixed_dictionaries(term_values))
    def set_terms(self, caller: str | None, arbitrator: int, bad: str | None, low: bool,
                  values: dict[str, int]) -> None:  # fmt: skip
        values = dict(values)
        if bad is not None:  # one field just outside its bounds
            _, _, lo, hi = next(b for b in TERM_BOUNDS if b[0] == bad)
            values[bad] = lo - 1 if low and lo > 0 else hi + 1
        arbs = [*self.panels, self.p["stranger"].address]  # the last has no code
        terms = Terms(arbitrator=arbs[arbitrator], **cast(dict[str, Any], values))
        self.do_set_terms(terms, self._who(caller, "admin"))

    @rule(caller=st.sampled_from([None] * 4 + ["merchant"]),
          ratio=st.sampled_from([0, 1_000, 2_000, 2_000, 5_000, BPS, BPS + 1]))
    def set_deposit_ratio(self, caller: str | None, ratio: int) -> None:
        self.do_set_deposit_ratio(ratio, self._who(caller, "admin"))

    @rule(caller=st.sampled_from([None] * 4 + ["carrier"]),
          who=st.sampled_from(["carrier2", "carrier2", "merchant2", "buyer2", "stranger", "zero"]),
          registered=st.booleans())
    def set_carrier(self, caller: str | None, who: str, registered: bool) -> None:
        addr = ZERO_ADDR if who == "zero" else self.p[who].address
        self.do_set_carrier(addr, registered, self._who(caller, "admin"))

    @rule(caller=st.sampled_from([None] * 4 + ["stranger"]), token=tokens, allowed=st.booleans())
    def set_token_allowed(self, caller: str | None, token: str, allowed: bool) -> None:
        self.do_set_token_allowed(self.tok[token], allowed, self._who(caller, "admin"))

    @rule(seconds=time_jumps)
    def advance_time(self, seconds: int) -> None:
        self._travel(seconds)
        self._count("advanceTime", "ok")

    @rule(pick=picks, choices=st.lists(st.integers(0, 3), min_size=1, max_size=3), ruling=rulings)
    def drive(self, pick: int, choices: list[int], ruling: int) -> None:
        """Take an open order one to three steps along a plausible path, with the right parties
        (so that deep states such as rulings and settled returns are reached within few steps)."""
        self._drive(OPEN, pick, choices, ruling)

    @rule(pick=picks, choices=st.lists(st.integers(0, 3), min_size=1, max_size=3), ruling=rulings)
    def drive_dispute(self, pick: int, choices: list[int], ruling: int) -> None:
        """Like `drive`, for a disputed order (opening a dispute on a disputable one first)."""
        if not self._drive({S.DISPUTED}, pick, choices, ruling):
            self._drive({S.SHIPPED, S.DELIVERED} | IN_RETURN, pick, [-1, *choices], ruling)

    @rule(pick=picks, choices=st.lists(st.integers(0, 3), min_size=1, max_size=3))
    def drive_return(self, pick: int, choices: list[int]) -> None:
        """Like `drive`, for an order that is delivered or being returned."""
        self._drive({S.DELIVERED} | IN_RETURN, pick, choices, 0)

    def _drive(self, states: set[S], pick: int, choices: list[int], ruling: int) -> bool:
        pool = [o for o in self.orders.values() if o.state in states]
        if not pool:
            return False
        o = pool[pick % len(pool)]
        self._source = "drive"
        try:
            for choice in choices:
                if o.state not in OPEN:
                    break
                if choice < 0:  # open a dispute, by a party that may
                    buyer_may = o.state in (S.DELIVERED, S.RETURNING)
                    merchant_may = o.state in {S.SHIPPED} | IN_RETURN
                    side = o.buyer if buyer_may and (pick % 2 or not merchant_may) else o.merchant
                    self.do_open_dispute(o, self.by_addr[side])
                else:
                    self._drive_step(o, choice, ruling, pick)
        finally:
            self._source = "rule"
        return True

    def _drive_step(self, o: MOrder, choice: int, ruling: int, pick: int) -> None:
        now = self.chain.timestamp()
        merchant, buyer = self.by_addr[o.merchant], self.by_addr[o.buyer]
        carrier, stranger = self.p["carrier"], self.p["stranger"]

        def after(deadline: int) -> None:
            if deadline + 2 > now:
                self._travel(deadline - now + 2)

        if o.state == S.FUNDED:
            if choice == 3:
                after(self._deadline(o))
                self.do_refund(o, stranger, "timeout (drive)")
            else:
                self.do_ship(o, carrier, self._fresh_tracking(), min(now, o.clock), stranger)
        elif o.state == S.SHIPPED:
            if choice == 0:
                self.do_deliver(o, carrier, self._spelling_of(o.tracking), max(o.clock, now - 60), stranger)
            elif choice == 1:
                self.do_confirm_delivery(o, buyer)
            elif choice == 2:
                self.do_open_dispute(o, merchant)
            else:
                after(self._deadline(o))
                self.do_refund(o, buyer, "timeout (drive)")
        elif o.state == S.DELIVERED:
            if choice in (0, 3):  # a partial or a full return
                amount = max(1, o.price * (pick % BPS) // BPS) if choice == 0 else o.price
                self.do_request_return(o, amount, buyer)
            elif choice == 1:
                self.do_open_dispute(o, buyer)
            else:
                after(self._deadline(o))
                self.do_release(o, stranger, "timeout (drive)")
        elif o.state == S.RETURNING:
            if choice == 0:
                self.do_ship_return(o, carrier, self._fresh_tracking(), now, buyer)
            elif choice == 2:
                self.do_confirm_return(o, merchant)
            else:
                self.do_open_dispute(o, buyer if choice == 1 else merchant)
        elif o.state in (S.RETURN_SHIPPED, S.RETURN_DELIVERED):
            if choice == 0 and o.state == S.RETURN_SHIPPED:
                self.do_deliver_return(o, carrier, self._spelling_of(o.ret_tracking), max(o.clock, now - 60),
                                       merchant)
            elif choice == 1:
                self.do_open_dispute(o, merchant)
            elif choice == 2:
                self.do_confirm_return(o, merchant)
            else:
                after(self._deadline(o))
                self.do_settle_return(o, stranger, "timeout (drive)")
        elif o.state == S.DISPUTED:
            arb = self.panels[o.arbitrator]
            d = arb.disputes[o.dispute_id]
            voters = [m for m in arb.members if m not in d.voted]
            if choice <= 1 and voters and not d.solved:
                agreed = self._agreeing(arb, o.dispute_id, ruling, choice == 0)
                self.do_vote(arb, o.dispute_id, agreed, self.by_addr[voters[0]])
            elif choice == 2:
                respondent = buyer if o.opener == Party.MERCHANT else merchant
                self.do_submit_evidence(o, respondent, "leaf:answer")
            elif not o.answered:
                after(self._deadline(o))
                self.do_claim_default(o, buyer if o.opener == Party.BUYER else merchant)
            else:
                after(o.clock + self.terms[o.terms_id].arbitration_window)
                self.do_timeout_dispute(o, stranger)

    # -- invariants ---------------------------------------------------------------------------

    def _batched_views(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Many escrow views in one eth_call (encoded by hand: web3's encoder is slow)."""
        data = []
        for name, args in calls:
            selector, inputs, _ = self._abi[name]
            data.append(selector + abi_encode(inputs, args))
        batch = bytes(keccak(text="batch(address,bytes[])"))[:4]
        raw = self.chain.w3.eth.call({
            "to": self.batcher, "data": batch + abi_encode(["address", "bytes[]"],
                                                         [self.escrow.address, data])})
        (results,) = abi_decode(["bytes[]"], bytes(raw))
        return [
            _norm(abi_decode(self._abi[name][2], bytes(r)))
            for (name, _), r in zip(calls, results, strict=True)
        ]

    def _accounts(self) -> set[str]:
        """Accounts the model expects to hold anything. Others are covered by the totals: the
        chain's credit and deposit totals equal the model's, so theirs must be zero."""
        named: set[str] = {
            self.p[n].address for n in ("merchant", "merchant2", "buyer", "buyer2", "lender")
        }
        for counter in (self.credits, self.deposits, self.locked):
            named |= {a for (_, a), v in counter.items() if v}
        return named

    def _views(self, full: bool = True) -> tuple[dict[Any, Any], dict[Any, Any]]:
        """(what the chain's views say, what the model says), by key, in one batched call.

        py-evm runs a view in about a millisecond, so between full checks a settled order is
        checked by its state alone (its money is in the totals, checked every time)."""
        keys: list[Any] = [("terms_id",)]
        calls: list[tuple[str, list[Any]]] = [("currentTermsId", [])]
        model: dict[Any, Any] = {("terms_id",): (self.terms_id,)}

        def add(key: Any, name: str, args: list[Any], expected: Any) -> None:
            keys.append(key)
            calls.append((name, args))
            model[key] = expected

        for tok in self.tok.values():
            add(("totals", tok), "totals", [tok], self.books[tok].totals())
            add(("token", tok), "tokenInfo", [tok], (self.token_id[tok], self.allowed[tok]))
            # between full checks, the accounts the model wrote to this step (the totals cover
            # the rest: they equal the model's, so an unexpected credit would show there)
            touched = self.credits.touched | self.deposits.touched | self.locked.touched
            for addr in sorted(self._accounts() if full else touched):
                add(("credit", tok, addr), "creditOf", [tok, addr], (self.credits[tok, addr],))
                add(("deposit", tok, addr), "depositOf", [tok, addr],
                    (self.deposits[tok, addr], self.locked[tok, addr]))
        for name in ("carrier", "carrier2", "merchant2", "buyer2", "stranger"):
            addr = self.p[name].address
            add(("carrier", addr), "isCarrier", [addr], (addr in self.carriers,))
        for oid, o in self.orders.items():
            if not full and o.state in TERMINAL:
                add(("state", oid), "orderState", [oid], (int(o.state),))
                continue
            deadline = self._deadline(o)
            if o.state == S.DISPUTED and o.answered:  # the view shows the arbitrator's deadline
                deadline = o.clock + self.terms[o.terms_id].arbitration_window
            add(("order", oid), "getOrder", [oid], ((
                o.merchant, o.buyer, o.token, o.price, int(o.state), o.clock, o.inspection,
                o.terms_id, o.lender or ZERO_ADDR, deadline,
            ),))  # fmt: skip
            if o.arbitrator != ZERO_ADDR or o.state == S.DISPUTED:
                add(("dispute", oid), "disputeOf", [oid], ((
                    o.arbitrator, o.dispute_id, o.opened_at, int(o.opener), o.answered, int(o.opened_in),
                ),))  # fmt: skip
            if o.ret_amount or o.state in IN_RETURN:
                add(("return", oid), "returnOf", [oid], (o.ret_amount, o.ret_tracking))
        chain = dict(zip(keys, self._batched_views(calls), strict=True))
        for tok in self.tok.values():
            chain["balance", tok] = self.client.balance(tok)
            b = self.books[tok]
            model["balance", tok] = b.base_balance + b.paid_in - b.paid_out
        return chain, {k: _norm(v) for k, v in model.items()}

    @invariant()
    def chain_matches_model(self) -> None:
        """Every view equals the model; invariants 1-3; a reverted action changed nothing."""
        self.steps += 1
        self._check_views(full=LIVENESS_EVERY > 0 and self.steps % LIVENESS_EVERY == 0)

    def _check_views(self, full: bool) -> None:
        started = time.monotonic()
        chain, model = self._views(full)
        self.h.timing["views"] += time.monotonic() - started
        diffs = [k for k in model if chain[k] != model[k]]
        if diffs:
            shown = "\n".join(f"  {k}: chain {chain[k]} model {model[k]}" for k in diffs[:8])
            raise Unexpected(f"{len(diffs)} views differ from the model:\n{shown}")
        if self.expect_unchanged and not self.step_changed and self.last_views is not None:
            changed = [k for k in self.last_views if k in chain and chain[k] != self.last_views[k]]
            assert not changed, f"a reverted action changed {changed[:5]}"
        self.expect_unchanged = self.step_changed = False
        for ledger in (self.credits, self.deposits, self.locked):
            ledger.touched.clear()
        self.last_views = chain
        for tok, b in self.books.items():
            # 1. balance == escrowed + deposits + reserve + fees + credits; escrowed == open prices
            assert chain["balance", tok] == sum(chain["totals", tok]), (tok, chain["totals", tok])
            open_prices = sum(
                o.price for o in self.orders.values() if o.token == tok and o.state in OPEN
            )
            assert chain["totals", tok][0] == open_prices
            # 3. never more out than in (events agree with the model's running sums)
            assert (b.ev_in, b.ev_out) == (b.paid_in, b.paid_out), (tok, b)
            assert b.ev_out <= b.base_balance + b.ev_in, (tok, b)
            assert all(self.deposits[tok, a] >= 0 for a in self.by_addr)
        # 2. each terminal order was settled exactly once, for exactly its price
        for o in self.orders.values():
            if o.state in TERMINAL:
                assert (o.settlements, o.settled) == (1, o.price), (o.oid.hex(), o)
                bound = o.price * self.terms[o.terms_id].compensation_bps // BPS
                assert 0 <= o.compensation <= bound, (o.oid.hex(), o.compensation, bound)
            else:
                assert (o.settlements, o.settled, o.compensation) == (0, 0, 0), o

    @invariant()
    def lenders_get_their_floor(self) -> None:
        """5. After a pledge, no action of the merchant alone, nor of a merchant colluding with a
        buyer address (the machine's parties act in any role, in any order), takes the lender
        below an independent buyer's rights: every payout of a pledged order reaches its lender
        (by the events' payee), and money goes back to the buyer by consent only when the lender
        gave it, and by a settled return only when a carrier attested the return parcel."""
        for o in self.orders.values():
            if not o.lender:
                continue
            assert o.misdirected == 0, (o.oid.hex(), "a pledged payout reached someone else")
            for path, who in o.to_buyer_paths:
                if path == "consent":
                    assert who == o.lender, (o.oid.hex(), "consent to refund by", who)
                assert path != "no parcel", (o.oid.hex(), "a return settled without a parcel")

    @invariant()
    def open_orders_keep_their_terms(self) -> None:
        """6. Admin changes (new terms, deposit ratios, panels named by terms) never alter an open
        order: its terms version is the one it was funded under (`getOrder`, checked with every
        view), that version's terms on chain are still what they were when published, and what
        the order locks of the deposit is computed at that version's ratio (the deposit views)."""
        used = {o.terms_id for o in self.orders.values() if o.state not in TERMINAL}
        for terms_id in sorted(used):
            on_chain = Terms.from_tuple(self.chain.call(self.escrow.functions.terms(terms_id)))
            assert on_chain == self.terms[terms_id], (terms_id, on_chain, self.terms[terms_id])

    @invariant()
    def open_orders_can_time_out(self) -> None:
        """4. (every few steps) each open order reaches a terminal state by timeouts alone."""
        if LIVENESS_EVERY and self.steps % LIVENESS_EVERY == 0:
            self._check_liveness(isolated=False)

    def _timeout_step(self, oid: bytes, use_default: bool) -> tuple[int, Callable[[], Any]]:
        """The permissionless timeout for the order's current state (from the chain's views)."""
        info = self.client.order(oid)
        stranger = self.p["stranger"]
        c = self.client
        if info.state in (S.FUNDED, S.SHIPPED):
            return info.deadline, lambda: c.refund(oid, stranger)
        if info.state in (S.DELIVERED, S.RETURNING):
            return info.deadline, lambda: c.release(oid, stranger)
        if info.state in (S.RETURN_SHIPPED, S.RETURN_DELIVERED):
            return info.deadline, lambda: c.settle_return(oid, stranger)
        assert info.state == S.DISPUTED, info
        dispute = c.dispute_of(oid)
        # A default goes to the opener; the merchant's side only wins one on a return it never got.
        may_default = dispute.opener == Party.BUYER or dispute.opened_in == S.RETURNING
        if use_default and not dispute.answered and may_default:
            opener = self.by_addr[info.buyer if dispute.opener == Party.BUYER else info.merchant]
            return info.deadline, lambda: c.claim_default(oid, opener)
        window = c.terms(info.terms_id).arbitration_window
        return info.clock + window, lambda: c.timeout_dispute(oid, stranger)

    def _time_out(self, oid: bytes, use_default: bool) -> list[tuple[str, dict[str, Any]]]:
        """Drive one order to a terminal state by timeouts; returns the events."""
        events: list[tuple[str, dict[str, Any]]] = []
        for _ in range(MAX_TIMEOUT_STEPS):
            if self.client.state(oid).terminal:
                return events
            deadline, action = self._timeout_step(oid, use_default)
            now = self.chain.timestamp()
            if deadline + 2 > now:
                self._travel(deadline - now + 2)  # latest block lands at target - 1 on py-evm
            events += self.client.events(action())
        state = self.client.state(oid)
        assert state.terminal, f"{oid.hex()} still {state.name} after {MAX_TIMEOUT_STEPS} timeouts"
        return events

    def _check_liveness(self, isolated: bool) -> None:
        """Every open order reaches a terminal state by permissionless timeouts alone: each on its
        own snapshot (`isolated`), or all one after the other on one snapshot."""
        started = time.monotonic()
        open_ = [o for o in self.orders.values() if o.state in OPEN]
        outer = None if isolated or not open_ else self.chain.snapshot()
        try:
            for i, o in enumerate(open_):
                inner = self.chain.snapshot() if isolated else None
                try:
                    events = self._time_out(o.oid, use_default=(i + self.steps) % 2 == 0)
                    settled = [a for n, a in events if n in SETTLEMENTS]
                    assert len(settled) == 1, events
                    self.h.paths[f"liveness: {o.state.name} times out"] += 1
                    if isolated:
                        after = self.client.totals(o.token)
                        assert after.escrowed == self.books[o.token].escrowed - o.price
                        assert after.total == sum(self.books[o.token].totals())
                finally:
                    if inner is not None:
                        self.chain.revert_to(inner)
            if outer is not None:
                for tok in self.tok.values():
                    t = self.client.totals(tok)
                    assert t.escrowed == 0 and t.total == self.client.balance(tok), (tok, t)
        finally:
            if outer is not None:
                self.chain.revert_to(outer)
            self._wall = time.monotonic()
            self.h.timing["liveness"] += time.monotonic() - started

    def teardown(self) -> None:
        """Liveness for each open order, then drain: everything but the reserve can be withdrawn."""
        if not hasattr(self, "orders"):
            return
        self._check_views(full=True)
        self._check_liveness(isolated=True)
        started = time.monotonic()
        snap = self.chain.snapshot()
        try:
            for i, o in enumerate(self.orders.values()):
                if o.state in OPEN:
                    self._time_out(o.oid, use_default=i % 2 == 1)
            accounts = self._accounts() | {a for o in self.orders.values()
                                           for a in (o.buyer, o.merchant, o.lender) if a}
            for tok in self.tok.values():
                owed = sorted(accounts)
                calls = [("creditOf", [tok, a]) for a in owed]
                calls += [("depositOf", [tok, a]) for a in owed]
                views = self._batched_views(calls)
                for i, addr in enumerate(owed):
                    (credit,), (deposit, locked) = views[i], views[len(owed) + i]
                    assert locked == 0, (addr, locked)
                    if credit:
                        self.client.withdraw(tok, self.by_addr[addr])
                    if deposit:
                        self.client.withdraw_deposit(tok, deposit, self.by_addr[addr])
                fees = self.client.totals(tok).fees
                if fees:
                    self.client.withdraw_fees(tok, fees, self.p["admin"])
                t = self.client.totals(tok)
                assert (t.escrowed, t.deposits, t.fees, t.credits) == (0, 0, 0, 0), t
                assert self.client.balance(tok) == t.reserve, (tok, t)
            self.h.paths["drained to the reserve"] += 1
        finally:
            self.chain.revert_to(snap)
            self.h.timing["drain"] += time.monotonic() - started


# --- running it ----------------------------------------------------------------------------------


def make_harness(chain: Chain) -> Harness:
    env = make_escrow_env(chain, deposit=DEPOSIT_USD, deposit_eth=DEPOSIT_ETH)
    members = [env.panel[1].address, env.panel[2].address, env.stranger.address]
    arb2 = chain.deploy(
        "PanelArbitrator", env.admin.address, members, 2, ARB2_COST, sender=env.admin
    )
    options = int(chain.call(env.client.escrow.functions.RULING_OPTIONS()))
    assert options == RULING_OPTIONS, f"model: rulings 0..{RULING_OPTIONS}, contract: 0..{options}"
    # Admin changes also arrive through a timelock, scheduled and executed later (the direct
    # admin stays too, so both paths run).
    timelock = chain.deploy("AdminTimelock", TIMELOCK_DELAY, [env.admin.address], [env.admin.address],
                            sender=env.admin)
    escrow = env.client.escrow
    chain.transact(escrow.functions.grantRole(bytes(32), timelock.address), env.admin)
    return Harness(chain, env, arb2, timelock, chain.snapshot())


def machine_for(harness: Harness) -> type[EscrowMachine]:
    return type(f"EscrowMachine_{harness.chain.kind}", (EscrowMachine,), {"harness": harness})


def _report(harness: Harness, seconds: float) -> str:
    actions = sorted({a for a, _ in harness.stats})
    lines = [f"{harness.chain.kind}: {seconds:.1f}s, {EXAMPLES} examples x {STEPS} steps"]
    for a in actions:
        ok = harness.stats[a, "ok"]
        via = ", ".join(f"{src} {n}" for (x, src), n in sorted(harness.sources.items()) if x == a)
        errs = Counter({e: n for (x, e), n in harness.stats.items() if x == a and e != "ok"})
        shown = ", ".join(f"{e} {n}" for e, n in errs.most_common())
        lines.append(f"  {a:<16} ok {ok:>4} {'(' + via + ')' if via else '':<20} "
                     f"reverted {sum(errs.values()):>4}  {shown}")
    lines.append("  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in harness.timing.items()))
    lines.append("  paths:")
    lines += [f"    {k}: {n}" for k, n in sorted(harness.paths.items())]
    return "\n".join(lines)


def test_escrow_state_machine(chain: Chain) -> None:
    """Random action sequences on both chains; every step checked against the model."""
    harness = make_harness(chain)
    started = time.monotonic()
    run_state_machine_as_test(
        machine_for(harness),
        settings=settings(
            max_examples=EXAMPLES if chain.kind == "embedded" else ANVIL_EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
            phases=list(Phase) if SHRINK else [Phase.explicit, Phase.reuse, Phase.generate],
        ),
    )
    print("\n" + _report(harness, time.monotonic() - started))


@pytest.fixture
def machine(chain: Chain) -> EscrowMachine:
    """One machine instance for the hand-written sequences below."""
    m = machine_for(make_harness(chain))()
    m.seed([])
    return m


# --- pinned sequences ----------------------------------------------------------------------------


def _checked(m: EscrowMachine, ok: bool, expected: bool = True) -> None:
    """After each step of a hand-written sequence: the action's outcome, then every invariant."""
    assert ok is expected
    m.chain_matches_model()
    m.open_orders_can_time_out()


def _delivered_order(m: EscrowMachine, token: str, price: int, pledged: bool = False) -> MOrder:
    o = m.do_fund(m.tok[token], m.p["merchant"], m.p["buyer"].address, m.p["buyer"], price,
                  10 * DAY, 3 * DAY)
    assert o is not None
    m.chain_matches_model()
    if pledged:
        _checked(m, m.do_pledge(o, m.p["lender"].address, m.p["merchant"]))
    now = m.chain.timestamp()
    _checked(m, m.do_ship(o, m.p["carrier"], m._fresh_tracking(), now, m.p["stranger"]))
    _checked(m, m.do_deliver(o, m.p["carrier2"], m._spelling_of(o.tracking), now, m.p["stranger"]))
    return o


def test_fraud_ruling_slashes_the_deposit_then_the_reserve(machine: EscrowMachine) -> None:
    """A pledged order ruled fraudulent: the buyer is refunded in full and compensated 100% of
    the price, first from the merchant's whole deposit, then from the reserve as far as it goes;
    the lender gets nothing; everything else still drains."""
    m = machine
    arb = next(iter(m.panels.values()))
    _checked(m, m.do_set_terms(Terms(arbitrator=arb.address, compensation_bps=BPS), m.p["admin"]))
    _checked(m, m.do_fund_reserve(m.tok["usd"], 5 * 10**7, m.p["stranger"]))
    o = _delivered_order(m, "usd", 2 * 10**8, pledged=True)
    _checked(m, m.do_open_dispute(o, m.p["buyer"]))
    _checked(m, m.do_vote(arb, o.dispute_id, 3, m.p["panel0"]))
    _checked(m, m.do_vote(arb, o.dispute_id, 3, m.p["panel1"]))
    assert o.state == S.RESOLVED
    assert o.compensation == DEPOSIT_USD + 5 * 10**7  # deposit 1e8, then the reserve's 5e7
    assert m.credits[m.tok["usd"], m.p["buyer"].address] == o.price + o.compensation
    assert m.credits[m.tok["usd"], m.p["lender"].address] == 0
    assert m.deposits[m.tok["usd"], m.p["merchant"].address] == 0
    m.teardown()


def test_a_ruling_after_a_default_judgement_pays_nothing_twice(machine: EscrowMachine) -> None:
    """The merchant never answers; the buyer wins by default; the panel's later ruling is final
    in the arbitrator but rejected by the escrow (RulingDeliveryFailed), and no money moves."""
    m = machine
    arb = next(iter(m.panels.values()))
    o = _delivered_order(m, "eth", 10**17)
    _checked(m, m.do_open_dispute(o, m.p["buyer"]))
    _checked(m, m.do_claim_default(o, m.p["buyer"]), expected=False)  # too early
    m._travel(m.terms[o.terms_id].response_window + 2)
    _checked(m, m.do_claim_default(o, m.p["buyer"]))
    assert o.state == S.RESOLVED and o.settled == o.price
    _checked(m, m.do_vote(arb, o.dispute_id, 2, m.p["panel0"]))
    _checked(m, m.do_vote(arb, o.dispute_id, 2, m.p["panel2"]))  # final: delivery fails
    assert arb.disputes[o.dispute_id].solved and o.settlements == 1
    _checked(m, m.do_timeout_dispute(o, m.p["stranger"]), expected=False)
    m.teardown()


def test_back_dated_attestations_do_not_shorten_windows(machine: EscrowMachine) -> None:
    """Shipped with a waybill dated three weeks back: the delivery window (15 days) still runs
    from recording, so the buyer's timeout refund is not open yet."""
    m = machine
    o = m.do_fund(m.tok["usd"], m.p["merchant"], m.p["buyer"].address, m.p["buyer"], 10**6,
                  10 * DAY, 3 * DAY)
    assert o is not None
    m.chain_matches_model()
    long_ago = m.chain.timestamp() - 21 * DAY
    _checked(m, m.do_ship(o, m.p["carrier"], m._fresh_tracking(), long_ago, m.p["stranger"]))
    _checked(m, m.do_refund(o, m.p["buyer"]), expected=False)
    m._travel(m.terms[o.terms_id].delivery_window + 2)
    _checked(m, m.do_deliver(o, m.p["carrier"], m._spelling_of(o.tracking), m.chain.timestamp(),
                             m.p["stranger"]),
             expected=False)  # the window closed: no late delivery attestation
    _checked(m, m.do_refund(o, m.p["buyer"]))
    m.teardown()


def test_a_merchant_under_its_requirement_can_neither_fund_nor_withdraw(
    machine: EscrowMachine,
) -> None:
    m = machine
    usd, merchant = m.tok["usd"], m.p["merchant"]
    o = m.do_fund(usd, merchant, m.p["buyer"].address, m.p["buyer"], 3 * 10**8, 10 * DAY, DAY)
    assert o is not None  # a price of 3e8 locks 6e7 of the 1e8 deposit
    m.chain_matches_model()
    _checked(m, m.do_withdraw_deposit(usd, 4 * 10**7 + 1, merchant), expected=False)
    _checked(m, m.do_set_deposit_ratio(BPS, m.p["admin"]))  # new orders lock their whole price
    assert m.locked[usd, merchant.address] == 6 * 10**7  # the open order's lock is unchanged
    assert m.do_fund(usd, merchant, m.p["buyer"].address, m.p["buyer"], 5 * 10**7, 10 * DAY, DAY) is None
    m.chain_matches_model()
    _checked(m, m.do_deposit(usd, merchant.address, 10**7, m.p["stranger"]))
    assert m.do_fund(usd, merchant, m.p["buyer"].address, m.p["buyer"], 5 * 10**7, 10 * DAY, DAY)
    assert m.locked[usd, merchant.address] == 11 * 10**7
    m.chain_matches_model()
    m.teardown()


def test_withdraw_to_the_escrow_itself_is_refused(machine: EscrowMachine) -> None:
    """withdrawTo refuses the escrow itself as recipient (found by this machine: it used to
    strand the tokens and break the books).

    Minimal sequence: fund a test-stablecoin order, cancel it (the buyer is credited the price),
    the buyer calls ``withdrawTo(token, <escrow address>)``. Before the fix the ERC-20 transfer
    to itself succeeded and ``credits`` dropped by the price while the balance did not
    (balance 201e6, books 200e6). Now it is refused and the books still add up.
    """
    m = machine
    usd, buyer = m.tok["usd"], m.p["buyer"]
    o = m.do_fund(usd, m.p["merchant"], buyer.address, buyer, 10**6, 10 * DAY, DAY)
    assert o is not None
    _checked(m, m.do_cancel(o, m.p["merchant"]))
    with pytest.raises(ContractRevert) as err:
        m.client.withdraw(usd, buyer, m.client.address)
    assert err.value.error_name == "EscrowSelfTransfer"
    totals = m.client.totals(usd)
    assert m.client.balance(usd) == totals.total, (m.client.balance(usd), totals)
