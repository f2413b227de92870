"""A realistic, deterministic live-stream flash sale, as evidence records.

Several merchants each run a live session on the sale day. Each session has a few
flash "drops" (a featured product put on sale on camera); orders arrive in bursts in
the first minutes after each drop and then trickle in. Most orders are paid within a
minute or two, some are abandoned, a few are cancelled and refunded before shipping.
Paid orders ship within two days with a regional carrier (SF, JD, YTO, ZTO, STO, YUNDA,
EMS, each with its own tracking number format), are delivered a day or a few later (to
the door, a locker, a pickup point or signed for), and some get a review (ratings skewed
positive) or a return (refund only or return and refund, full or partial).

Everything is derived from the seed by hashing (BLAKE2b), per order and per buyer, so a
record does not depend on how many records were generated before it: the output is the
same for a seed on every run and platform. Buyer names, phones and addresses are
fabricated from small syllable lists and digits. Every record passes `parse_record`.

`iter_flash_sale` streams the records in global timestamp order while keeping only a
small integer per pending event in memory (an order's details are re-derived when one
of its later events is due), so a million records can be produced for benchmarks.
"""

from __future__ import annotations

import calendar
import hashlib
import heapq
import json
import math
import time
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from ledger.dev.flash_sale_vocabulary import (
    CITIES,
    ESTATES,
    GIVEN,
    LIST_PRICES,
    PRODUCTS,
    RETURN_DETAIL,
    REVIEW_TEXT,
    ROAD_SUFFIX,
    ROAD_SYLLABLES,
    SURNAMES,
    TAGS,
)
from ledger.evidence.checks import check_ts

__all__ = ["generate_flash_sale", "iter_flash_sale", "to_jsonl", "write_jsonl"]

_MS = 1000
_MIN = 60 * _MS
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR

# --- deterministic randomness ------------------------------------------------------------

_T = TypeVar("_T")


class _Rng:
    """A stream of pseudo-random draws from BLAKE2b(key || counter); cheap to create."""

    __slots__ = ("_key", "_buf", "_pos", "_ctr")

    def __init__(self, *parts: object) -> None:
        self._key = ":".join(map(str, parts)).encode()
        self._ctr = 0
        self._refill()

    def _refill(self) -> None:
        self._buf = hashlib.blake2b(self._key, digest_size=64, salt=self._ctr.to_bytes(16, "big")).digest()
        self._ctr += 1
        self._pos = 0

    def _take(self, n: int) -> int:
        if self._pos + n > 64:
            self._refill()
        p = self._pos
        self._pos = p + n
        return int.from_bytes(self._buf[p : p + n], "big")

    def u(self) -> float:
        """Uniform in [0, 1)."""
        return self._take(4) / 4294967296.0

    def below(self, n: int) -> int:
        """Uniform integer in [0, n)."""
        return self._take(8) % n

    def between(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi]."""
        return lo + self._take(8) % (hi - lo + 1)

    def chance(self, p: float) -> bool:
        return self.u() < p

    def pick(self, seq: Sequence[_T]) -> _T:
        return seq[self._take(8) % len(seq)]

    def digits(self, k: int) -> str:
        return str(self._take(8) % 10**k).zfill(k)

    def skewed(self, lo: int, hi: int, power: float) -> int:
        """An integer in [lo, hi], concentrated near lo for power > 1."""
        return lo + int((hi - lo) * self.u() ** power)


class _Weighted:
    """Weighted choice by cumulative weights."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, pairs: Sequence[tuple[Any, float]]) -> None:
        self.items = [p[0] for p in pairs]
        self.cum = list(accumulate(p[1] for p in pairs))
        self.total = self.cum[-1]

    def draw(self, rng: _Rng) -> Any:
        return self.items[min(bisect_right(self.cum, rng.u() * self.total), len(self.items) - 1)]


_CARRIERS = _Weighted(
    [("SF", 22), ("ZTO", 20), ("YTO", 18), ("YUNDA", 14), ("JD", 12), ("STO", 10), ("EMS", 4)]
)
_PAY_METHODS = _Weighted(
    [("alipay", 52), ("wechat_pay", 36), ("unionpay", 4), ("card", 3), ("platform_balance", 4),
     ("apple_pay", 1)]
)  # fmt: skip
_DELIVERY_METHODS = _Weighted([("doorstep", 35), ("locker", 33), ("signed", 20), ("pickup", 12)])
_RATINGS = _Weighted([(5, 62), (4, 20), (3, 8), (2, 4), (1, 6)])


def _tracking_number(rng: _Rng, carrier: str) -> str:
    if carrier == "SF":
        return "SF" + rng.digits(13)
    if carrier == "JD":
        return "JDV" + rng.pick("ABCDE") + rng.digits(11)
    if carrier == "YTO":
        return "YT" + rng.digits(13)
    if carrier == "ZTO":
        return "7" + rng.pick("35") + rng.digits(12)
    if carrier == "STO":
        return "77" + rng.digits(11)
    if carrier == "YUNDA":
        return rng.pick(("43", "46", "31")) + rng.digits(11)
    return "98" + rng.digits(11)  # EMS domestic


def _payment_ref(rng: _Rng, method: str, day: str) -> str:
    if method == "alipay":
        return day + "2200" + rng.digits(16)
    if method == "wechat_pay":
        return "42000" + rng.digits(5) + day + rng.digits(10)
    if method == "unionpay":
        return rng.digits(21)
    if method == "card":
        return "ch_" + "".join(rng.pick("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
                               for _ in range(24))
    if method == "apple_pay":
        return "ap-" + rng.digits(18)
    return "BAL" + day + rng.digits(10)


# --- the world: merchants, catalogs, buyers ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sku:
    sku: str
    title: str
    price: int  # flash price, CNY fen


@dataclass(frozen=True, slots=True)
class _Merchant:
    merchant_id: str
    live_session: str
    carrier: str  # main carrier; some parcels go with another
    catalog: tuple[_Sku, ...]
    drops: tuple[int, ...]  # ms offsets (from the sale start) of each flash drop
    session_end: int  # ms offset


@dataclass(frozen=True, slots=True)
class _Buyer:
    buyer_id: str
    name: str
    phone: str
    address: str
    postal_code: str


def _make_merchant(seed: int, i: int, day: str) -> _Merchant:
    rng = _Rng(seed, "merchant", i)
    mid = f"M{1001 + i:04d}"
    session_start = 0 if i == 0 else rng.between(0, 40) * _MIN
    duration = rng.between(120, 240) * _MIN
    drops = [session_start + rng.between(0, 2) * _MIN]
    while len(drops) < rng.between(3, 6):
        drops.append(drops[-1] + rng.between(8, 35) * _MIN)
    catalog = []
    for k in range(rng.between(6, 14)):
        name, spec = rng.pick(PRODUCTS)
        tag = rng.pick(TAGS)
        list_price = rng.pick(LIST_PRICES)
        flash = max(90, (list_price * rng.between(45, 85) // 100) // 100 * 100 - 10)
        catalog.append(_Sku(f"{mid}-SKU{k + 1:03d}", f"【{tag}】{name} {spec}", flash))
    return _Merchant(
        merchant_id=mid,
        live_session=f"{mid}.live.{day}",
        carrier=_CARRIERS.draw(rng),
        catalog=tuple(catalog),
        drops=tuple(drops),
        session_end=session_start + duration,
    )


def _person_name(rng: _Rng) -> str:
    given = rng.pick(GIVEN) + (rng.pick(GIVEN) if rng.chance(0.7) else "")
    return rng.pick(SURNAMES) + given


@lru_cache(maxsize=65536)
def _buyer(seed: int, j: int) -> _Buyer:
    rng = _Rng(seed, "buyer", j)
    province, city, districts, postal = rng.pick(CITIES)
    road = rng.pick(ROAD_SYLLABLES) + rng.pick(ROAD_SYLLABLES) + rng.pick(ROAD_SUFFIX)
    estate = rng.pick(ROAD_SYLLABLES) + rng.pick(ROAD_SYLLABLES) + rng.pick(ESTATES)
    address = (
        f"{province}{city if city != province else ''}{rng.pick(districts)}{road}"
        f"{rng.between(1, 999)}号{estate}{rng.between(1, 30)}栋{rng.between(1, 32)}{rng.between(1, 4):02d}室"
    )
    return _Buyer(
        buyer_id=f"B{seed % 1000:03d}{j:08d}",
        name=_person_name(rng),
        phone="1" + rng.pick("3456789") + rng.digits(9),
        address=address,
        postal_code=postal + rng.digits(3),
    )


# --- one order's life ------------------------------------------------------------------

# Event kinds in causal order; the value is the suffix of the record id.
_EV_ORDER, _EV_PAY, _EV_CANCEL, _EV_SHIP, _EV_DELIVER, _EV_REVIEW, _EV_RETURN = range(7)
_SUFFIX = ("order", "pay", "refund", "ship", "dlv", "review", "return")


@dataclass(slots=True)
class _Plan:
    n: int
    merchant: _Merchant
    buyer: _Buyer
    items: list[tuple[_Sku, int]]
    shipping_fee: int
    discount: int
    total: int
    carrier: str
    tracking_number: str
    rating: int  # 0 when there is no review
    times: dict[int, int]  # event kind -> ms offset; only the events that happen


def _plan(world: _World, n: int) -> _Plan:
    """Order n's life, derived only from (seed, n) and the world."""
    rng = _Rng(world.seed, "order", n)
    t0, m_idx, drop = world.order_slots[n]
    merchant = world.merchants[m_idx]
    buyer = _buyer(world.seed, rng.below(world.buyers))
    featured = merchant.catalog[drop % len(merchant.catalog)]
    items: list[tuple[_Sku, int]] = [(featured, _Weighted_qty.draw(rng))]
    if rng.chance(0.25):
        extra = rng.pick(merchant.catalog)
        if extra is not featured:
            items.append((extra, 1))
    if rng.chance(0.05):
        gift = _Sku(f"{merchant.merchant_id}-GIFT", "【赠品】旅行装小样", 0)
        items.append((gift, 1))
    subtotal = sum(s.price * q for s, q in items)
    shipping_fee = 0 if rng.chance(0.85) else rng.pick((600, 800, 1000))
    discount = 0
    if rng.chance(0.3):
        coupon = rng.pick((300, 500, 1000, 2000, 5000))
        if coupon * 2 <= subtotal:
            discount = coupon
    total = subtotal + shipping_fee - discount
    carrier = merchant.carrier if rng.chance(0.8) else _CARRIERS.draw(rng)
    tracking = _tracking_number(rng, carrier)
    rating = 0

    times = {_EV_ORDER: t0}
    if rng.chance(0.9):
        t = t0 + 3 * _MS + int(rng.u() ** 3 * 15 * _MIN)
        times[_EV_PAY] = t
        if rng.chance(0.03):
            times[_EV_CANCEL] = t + rng.between(2 * _MIN, 6 * _HOUR)
        elif rng.chance(0.98):
            t += rng.between(90 * _MIN, 44 * _HOUR)
            times[_EV_SHIP] = t
            if rng.chance(0.96):
                t += rng.between(14 * _HOUR, 96 * _HOUR)
                times[_EV_DELIVER] = t
                if rng.chance(0.55):
                    rating = _RATINGS.draw(rng)
                    times[_EV_REVIEW] = t + rng.skewed(30 * _MIN, 7 * _DAY, 2.0)
                if rng.chance(0.45 if 0 < rating <= 2 else 0.06):
                    tr = t + rng.skewed(20 * _MIN, 7 * _DAY, 1.5)
                    if tr == times.get(_EV_REVIEW):
                        tr += 1
                    times[_EV_RETURN] = tr
    return _Plan(n, merchant, buyer, items, shipping_fee, discount, total, carrier, tracking, rating, times)


_Weighted_qty = _Weighted([(1, 80), (2, 15), (3, 5)])


def _materialize(world: _World, plan: _Plan, ev: int) -> dict[str, Any]:
    """The record for event `ev` of a planned order."""
    rng = _Rng(world.seed, "event", plan.n, ev)
    order_id = f"O{world.day}{plan.n + 1:07d}"
    rec: dict[str, Any] = {
        "id": f"{order_id}:{_SUFFIX[ev]}",
        "kind": "",
        "order_id": order_id,
        "merchant_id": plan.merchant.merchant_id,
        "ts": world.ts(plan.times[ev]),
    }
    # One function per kind, each drawing from `rng` in a fixed order: a record depends only
    # on the seed and its order, never on how many records came before it.
    _FILL[ev](rec, world, plan, ev, rng)
    return rec


def _order_fields(rec: dict[str, Any], world: _World, plan: _Plan, ev: int, rng: _Rng) -> None:
    """The order: items, totals, and the buyer's personal fields."""
    m, b = plan.merchant, plan.buyer
    rec["kind"] = "order"
    rec["buyer_id"] = b.buyer_id
    rec["live_session"] = m.live_session
    rec["items"] = [{"sku": s.sku, "title": s.title, "qty": q, "unit_price": s.price}
                    for s, q in plan.items]
    rec["shipping_fee"] = plan.shipping_fee
    if plan.discount:
        rec["discount"] = plan.discount
    rec["total"] = plan.total
    rec["currency"] = "CNY"
    personal = {"buyer_name": b.name, "phone": b.phone, "address": b.address,
                "postal_code": b.postal_code}
    if rng.chance(0.15):
        personal["recipient"] = _person_name(rng)
    if rng.chance(0.1):
        personal["buyer_note"] = rng.pick(("请尽快发货", "不要放快递柜", "周末配送",
                                           "送人的，不要放发票"))
    rec["personal"] = personal


def _payment_fields(rec: dict[str, Any], world: _World, plan: _Plan, ev: int, rng: _Rng) -> None:
    """The payment of the order's total."""
    b = plan.buyer
    method = _PAY_METHODS.draw(rng)
    rec["kind"] = "payment"
    rec["amount"] = plan.total
    rec["currency"] = "CNY"
    rec["method"] = method
    rec["payment_ref"] = _payment_ref(rng, method, world.day)
    rec["personal"] = {"payer_name": b.name, "payer_account": b.phone[:3] + "****" + b.phone[-4:]}


def _cancel_fields(rec: dict[str, Any], world: _World, plan: _Plan, ev: int, rng: _Rng) -> None:
    """A cancellation before shipping: a full refund-only return."""
    rec["kind"] = "return"
    rec["amount"] = plan.total
    rec["currency"] = "CNY"
    rec["type"] = "refund_only"
    rec["reason"] = "changed_mind"
    rec["detail"] = "未发货，买家申请取消订单"


def _parcel_fields(rec: dict[str, Any], world: _World, plan: _Plan, ev: int, rng: _Rng) -> None:
    """The shipment, or its delivery (by locker, pickup, signature or to the door)."""
    b = plan.buyer
    rec["kind"] = "shipment" if ev == _EV_SHIP else "delivery"
    rec["carrier"] = plan.carrier
    rec["tracking_number"] = plan.tracking_number
    if ev == _EV_SHIP:
        if len(plan.items) > 1 or rng.chance(0.5):
            rec["items"] = [{"sku": s.sku, "qty": q} for s, q in plan.items]
        rec["personal"] = {"recipient": b.name, "phone": b.phone, "address": b.address,
                           "postal_code": b.postal_code}  # fmt: skip
    else:
        method = _DELIVERY_METHODS.draw(rng)
        rec["method"] = method
        personal = {"recipient": b.name, "phone": b.phone}
        if method == "signed":
            personal["signed_by"] = (b.name if rng.chance(0.7)
                                     else rng.pick(("前台代收", "家人代收", "门卫代收")))
        elif method in ("locker", "pickup"):
            personal["pickup_code"] = rng.digits(6)
        else:
            personal["address"] = b.address
        rec["personal"] = personal


def _review_fields(rec: dict[str, Any], world: _World, plan: _Plan, ev: int, rng: _Rng) -> None:
    """A review, its rating drawn when the order was planned."""
    b = plan.buyer
    rating = plan.rating
    rec["kind"] = "review"
    rec["buyer_id"] = b.buyer_id
    rec["rating"] = rating
    if rng.chance(0.7):
        rec["text"] = rng.pick(REVIEW_TEXT[rating])
    if rng.chance(0.12):
        rec["media_sha256"] = [
            hashlib.sha256(f"{world.seed}:{plan.n}:photo{i}".encode()).hexdigest()
            for i in range(rng.between(1, 3))
        ]
    rec["personal"] = {"reviewer_name": b.name[0] + "**"}


def _return_fields(rec: dict[str, Any], world: _World, plan: _Plan, ev: int, rng: _Rng) -> None:
    """A return: refund only (partial) or return and refund, maybe with a parcel back."""
    b = plan.buyer
    unhappy = 0 < plan.rating <= 2
    rec["kind"] = "return"
    rtype = "refund_only" if rng.chance(0.45 if not unhappy else 0.3) else "return_and_refund"
    if rtype == "refund_only":
        reason = rng.pick(("damaged", "quality", "not_as_described", "missing_item"))
        amount = max(1, plan.total * rng.between(10, 50) // 100)  # partial compensation
    else:
        reason = rng.pick(("size_fit", "not_as_described", "quality", "changed_mind", "wrong_item",
                           "defective"))
        sku, qty = plan.items[0]
        amount = (plan.total if len(plan.items) == 1 or rng.chance(0.5)
                  else min(plan.total, sku.price * qty))
        amount = max(1, amount)
    rec["amount"] = amount
    rec["currency"] = "CNY"
    rec["type"] = rtype
    rec["reason"] = reason
    if rng.chance(0.6):
        rec["detail"] = RETURN_DETAIL[reason]
    if rtype == "return_and_refund" and rng.chance(0.7):
        carrier = _CARRIERS.draw(rng)
        rec["carrier"] = carrier
        rec["tracking_number"] = _tracking_number(rng, carrier)
    if rng.chance(0.3):
        rec["media_sha256"] = [hashlib.sha256(f"{world.seed}:{plan.n}:return-photo".encode()).hexdigest()]
    personal = {"buyer_name": b.name, "phone": b.phone}
    if rtype == "return_and_refund":
        personal["address"] = b.address
    rec["personal"] = personal


_FILL = (_order_fields, _payment_fields, _cancel_fields, _parcel_fields, _parcel_fields, _review_fields,
         _return_fields)  # indexed by event: _EV_ORDER .. _EV_RETURN
assert len(_FILL) == _EV_RETURN + 1


# --- the sale ----------------------------------------------------------------------------


class _World:
    """Merchants, buyers and the time-sorted order slots (t, merchant, drop) of one sale."""

    def __init__(self, seed: int, orders: int, merchants: int, start: str) -> None:
        if check_ts(start) is not None:
            raise ValueError("start must be an RFC 3339 UTC timestamp like 2026-11-11T20:00:00Z, "
                             f"got {start!r}")
        if orders < 0 or merchants < 1:
            raise ValueError("need orders >= 0 and merchants >= 1")
        self.seed = seed
        self.start_s = _epoch_seconds(start)
        self.start_ms_frac = int(start[20:-1].ljust(3, "0")[:3]) if "." in start else 0
        self.day = start[:10].replace("-", "")
        self.merchants = [_make_merchant(seed, i, self.day) for i in range(merchants)]
        self.buyers = max(10, orders * 3 // 4)
        popularity = _Weighted([(i, 1.0 / (i + 1) ** 0.8) for i in range(merchants)])
        slots = []
        for n in range(orders):
            rng = _Rng(seed, "slot", n)
            m_idx = popularity.draw(rng)
            m = self.merchants[m_idx]
            # Earlier drops draw more viewers; most orders land within a minute or two.
            drop = min(int(len(m.drops) * rng.u() ** 1.6), len(m.drops) - 1)
            t_drop = m.drops[drop]
            if rng.chance(0.85):
                t = t_drop + int(-40_000 * math.log1p(-rng.u()))  # exponential, mean 40 s
            else:
                t = t_drop + rng.below(max(1, m.session_end - t_drop))
            slots.append((min(t, m.session_end), m_idx, drop))
        slots.sort()
        self.order_slots = slots
        self._ts_cache: dict[int, str] = {}

    def ts(self, offset_ms: int) -> str:
        total = self.start_ms_frac + offset_ms
        sec, ms = divmod(total, 1000)
        head = self._ts_cache.get(sec)
        if head is None:
            head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.start_s + sec))
            if len(self._ts_cache) > 100_000:
                self._ts_cache.clear()
            self._ts_cache[sec] = head
        return f"{head}.{ms:03d}Z"


def _epoch_seconds(ts: str) -> int:
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))


def iter_flash_sale(seed: int, orders: int, merchants: int, start: str) -> Iterator[dict[str, Any]]:
    """The records of a flash sale in timestamp order (ties broken by order, then event).

    Memory is the order slots (three ints per order), one int per pending event and a
    bounded cache of recent orders' plans; older plans are re-derived when needed.
    """
    world = _World(seed, orders, merchants, start)
    slots = world.order_slots
    # heap key = (ms offset, order number, event) packed into one int
    shift_t = 3 + max(1, orders).bit_length()
    mask_n = (1 << (shift_t - 3)) - 1
    recent: dict[int, _Plan] = {}
    heap: list[int] = []
    next_n = 0
    while next_n < len(slots) or heap:
        if next_n < len(slots) and (not heap or (slots[next_n][0] << shift_t) <= heap[0]):
            plan = _plan(world, next_n)
            for ev, t in plan.times.items():
                heapq.heappush(heap, (t << shift_t) | (next_n << 3) | ev)
            recent[next_n] = plan
            if len(recent) > 4096:
                del recent[next(iter(recent))]
            next_n += 1
            continue
        key = heapq.heappop(heap)
        n = (key >> 3) & mask_n
        plan = recent.get(n) or _plan(world, n)
        yield _materialize(world, plan, key & 7)


def generate_flash_sale(seed: int, orders: int, merchants: int, start: str) -> list[dict[str, Any]]:
    """All records of a flash sale (see the module docstring), sorted by ts."""
    return list(iter_flash_sale(seed, orders, merchants, start))


def to_jsonl(records_: Iterable[dict[str, Any]]) -> bytes:
    """JSONL bytes: one compact UTF-8 JSON object per line, fields in their given order."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    return b"".join((dumps(r) + "\n").encode("utf-8") for r in records_)


def write_jsonl(records_: Iterable[dict[str, Any]], out: str | Path | BinaryIO) -> int:
    """Stream records to a JSONL file (path or binary file object); returns the count."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    if isinstance(out, (str, Path)):
        with open(out, "wb") as f:
            return write_jsonl(records_, f)
    count = 0
    for r in records_:
        out.write((dumps(r) + "\n").encode("utf-8"))
        count += 1
    return count
