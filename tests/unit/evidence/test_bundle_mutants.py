"""Every field of a real bundle, mutated every way: each mutant is refused as malformed (exit 2),
reported not verified naming its record or head field (exit 1), or, only where docs/bundle.md
says a change leaves the bundle true (an informational field, a weaker claim), still verified.
Which of the three is asserted per mutant, and an independent verifier written from the page
(`reference_verifier`) must reach the same outcome on every one.

One chain and one anchored store serve every mutant (`chain_bundle.build_world`); the node
double answers repeated chain reads from memory.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_utils import is_checksum_address

from ledger.cli.log import VERIFY_EXIT
from ledger.errors import BundleError
from ledger.evidence.bundle import verify_bundle
from ledger.evidence.bundle_format import load_bundle
from ledger.evidence.trust import Pin, dumps_trust_root
from tests.unit.evidence import reference_verifier
from tests.unit.evidence.chain_bundle import World, build_world

MALFORMED = "malformed"
#: a head failure names the field or the failure (docs/bundle.md, steps 7 to 12)
HEAD_FAILURE = re.compile(r"^(anchor\.\w+: |trust root|wrong chain: |wrong contract: |head not anchored: )")
#: a record failure names what is wrong with the record (steps 1 to 6)
RECORD_FAILURE = re.compile(r"^(record carries reserved field|record cannot be canonicalised: |wrong salt: |"
                            r"tampered personal data: |tampered content: |bad inclusion proof: |"
                            r"outside the selection: record\.\w+ )")


@dataclass(frozen=True)
class Expect:
    status: str  # malformed | not_verified | verified
    records: frozenset[int] | None = None  # exactly these records fail (None: not asserted)
    head: bool | None = None  # whether the head fails (None: not asserted)


OK = Expect("verified", frozenset(), False)
BAD = Expect(MALFORMED)


def _records(*positions: int) -> Expect:
    return Expect("not_verified", frozenset(positions), False)


HEAD = Expect("not_verified", frozenset(), True)


@dataclass(frozen=True)
class Mutant:
    name: str
    text: bytes
    expect: Expect


# --------------------------------------------------------------------------- the mutants


def _flip(hexdigits: str, at: int) -> str:
    """One hex digit changed, in the case the field is written in."""
    c = hexdigits[at]
    other = "0" if c != "0" else "1"
    return hexdigits[:at] + other + hexdigits[at + 1:]


class Mutants:
    """The mutants of one bundle document, each with its expected outcome (docs/bundle.md)."""

    def __init__(self, world: World) -> None:
        self.doc: dict[str, Any] = json.loads(world.text)
        self.world = world
        self.n = len(self.doc["records"])
        self.all = frozenset(range(self.n))
        self.out: list[Mutant] = []

    def add(self, name: str, change: Callable[[dict[str, Any]], Any], expect: Expect) -> None:
        doc = copy.deepcopy(self.doc)
        change(doc)
        self.text(name, json.dumps(doc, indent=2).encode(), expect)

    def text(self, name: str, text: bytes, expect: Expect) -> None:
        self.out.append(Mutant(name, text, expect))

    def wrong_types(self, where: str, get: Callable[[dict[str, Any]], Any], key: Any, allowed: type,
                    optional: bool = False) -> None:
        """A value of any other JSON type than `allowed` is malformed (null too, unless the field
        is optional: null is then the same as absent)."""
        for value in (None, True, "7", 7, 7.5, [], {}):
            if type(value) is allowed or value is None and optional:
                continue
            label = "null" if value is None else f"a {type(value).__name__}"
            self.add(f"{where} {label}", lambda d, v=value: get(d).__setitem__(key, v), BAD)

    def generate(self) -> list[Mutant]:
        self.top()
        self.selection()
        self.anchor()
        self.order_keys()
        self.record_list()
        for i in range(self.n):
            self.entry(i)
        self.record_content()
        self.texts()
        return self.out

    def top(self) -> None:
        self.add("format v2", lambda d: d.update(format="evidence-escrow/bundle/v2"), BAD)
        self.wrong_types("format", lambda d: d, "format", str)
        for key in ("format", "generated_at", "selection", "anchor", "records"):
            self.add(f"{key} deleted", lambda d, k=key: d.pop(k), BAD)
        self.add("order_keys deleted", lambda d: d.pop("order_keys"), OK)  # a weaker claim
        self.add("an unknown top-level field", lambda d: d.update(signature="trust me"), BAD)
        self.wrong_types("generated_at", lambda d: d, "generated_at", str)
        self.add("generated_at changed", lambda d: d.update(generated_at="1999-01-01T00:00:00Z"), OK)
        self.add("generated_at empty", lambda d: d.update(generated_at=""), OK)

    def selection(self) -> None:
        sel = lambda d: d["selection"]  # noqa: E731
        recs = self.doc["records"]
        self.wrong_types("selection", lambda d: d, "selection", dict)
        self.add("selection.order_id deleted", lambda d: sel(d).pop("order_id"), OK)  # a weaker claim
        self.add("selection.order_id null", lambda d: sel(d).update(order_id=None), OK)
        self.wrong_types("selection.order_id", sel, "order_id", str, optional=True)
        self.add("selection.order_id another order", lambda d: sel(d).update(order_id="O-other"),
                 Expect("not_verified", self.all, False))
        self.add("selection.order_id empty", lambda d: sel(d).update(order_id=""),
                 Expect("not_verified", self.all, False))
        merchant = recs[0]["record"]["merchant_id"]
        self.add("selection.merchant_id of the order's merchant too",
                 lambda d: sel(d).update(merchant_id=merchant), OK)
        self.add("selection.merchant_id another merchant", lambda d: sel(d).update(merchant_id="M-other"),
                 Expect("not_verified", self.all, False))
        self.add("selection.audit added", lambda d: sel(d).update(audit="merchant"), OK)  # informational
        self.add("an unknown selection field", lambda d: sel(d).update(everything=True), BAD)
        first, last = recs[0]["record"]["ts"], recs[-1]["record"]["ts"]
        self.add("selection.since at the first record", lambda d: sel(d).update(since=first), OK)
        second = recs[1]["record"]["ts"]
        self.add("selection.since after the first record", lambda d: sel(d).update(since=second), _records(0))
        self.add("selection.until at the last record", lambda d: sel(d).update(until=last),
                 _records(self.n - 1))
        self.add("selection.until after the last record",
                 lambda d: sel(d).update(until="2099-01-01T00:00:00+09:00"), OK)
        self.add("selection.since after until", lambda d: sel(d).update(since=last, until=first),
                 Expect("not_verified", self.all, False))
        for bound in ("since", "until"):
            self.add(f"selection.{bound} not a time", lambda d, b=bound: sel(d).update({b: "yesterday"}), BAD)
            self.add(f"selection.{bound} not a real date",
                     lambda d, b=bound: sel(d).update({b: "2026-02-30T00:00:00Z"}), BAD)
            self.add(f"selection.{bound} a number", lambda d, b=bound: sel(d).update({b: 1795590813}), BAD)

    def anchor(self) -> None:
        a = lambda d: d["anchor"]  # noqa: E731
        head = self.doc["anchor"]
        self.wrong_types("anchor", lambda d: d, "anchor", dict)
        self.add("anchor empty", lambda d: d.update(anchor={}), BAD)
        self.add("an unknown anchor field", lambda d: a(d).update(verified=True), BAD)
        for key, value in head.items():
            self.add(f"anchor.{key} deleted", lambda d, k=key: a(d).pop(k), BAD)
            self.wrong_types(f"anchor.{key}", a, key, type(value))
            if isinstance(value, int):
                self.add(f"anchor.{key} negative", lambda d, k=key: a(d).update({k: -1}), BAD)
                self.add(f"anchor.{key} 2**63", lambda d, k=key: a(d).update({k: 2**63}), BAD)
                for delta in (1, -1):
                    # tree_size ± 1: the head is not anchored; a proof may still fit the other size
                    expect = Expect("not_verified", None, True) if key == "tree_size" else HEAD
                    self.add(f"anchor.{key} {delta:+d}",
                             lambda d, k=key, v=value + delta: a(d).update({k: v}), expect)
            else:
                self.add(f"anchor.{key} empty", lambda d, k=key: a(d).update({k: ""}), BAD)
                self.hex_changes(f"anchor.{key}", a, key, value, self.head_change(key))
        self.add("anchor of the impostor that anchored the same head",
                 lambda d: a(d).update(self.world.impostor), HEAD)
        self.add("anchor of the platform's earlier head", lambda d: a(d).update(self.world.earlier),
                 Expect("not_verified", None, False))
        later = head["block_timestamp"] + 3600
        self.add("anchor forged to another time", lambda d: a(d).update(block_timestamp=later), HEAD)
        failed = self.world.failed_anchor
        self.add("anchor.tx_hash of a failed anchor", lambda d: a(d).update(tx_hash=failed), HEAD)

    def head_change(self, key: str) -> Expect:
        """What one changed hex digit of an anchor field does."""
        if key == "root":  # another head (not anchored), and no proof leads to it
            return Expect("not_verified", self.all, True)
        return HEAD

    def hex_changes(self, where: str, get: Callable[[dict[str, Any]], Any], key: Any, value: str,
                    changed: Expect) -> None:
        """A digit changed at each end, and every other spelling of the same value."""
        prefix = "0x" if value.startswith("0x") else ""
        digits = value[len(prefix):]
        for at in (0, len(digits) - 1):
            new = prefix + _flip(digits, at)
            expect = changed
            if where == "anchor.contract" and not is_checksum_address(new):
                expect = BAD  # the checksum catches a mistyped digit
            self.add(f"{where} digit {at} changed", lambda d, v=new: get(d).__setitem__(key, v), expect)
        spellings = {"upper case": prefix + digits.upper(), "lower case": prefix + digits.lower(),
                     "0X prefix": "0X" + digits, "other prefix": ("" if prefix else "0x") + digits,
                     "a final newline": value + "\n", "spaces": " " + value, "truncated": value[:-2],
                     "extended": value + "00"}
        for label, new in spellings.items():
            if new != value:
                self.add(f"{where} {label}", lambda d, v=new: get(d).__setitem__(key, v), BAD)

    def order_keys(self) -> None:
        keys = lambda d: d["order_keys"]  # noqa: E731
        ((order, key),) = self.doc["order_keys"].items()
        self.wrong_types("order_keys", lambda d: d, "order_keys", dict, optional=True)
        self.add("order key deleted", lambda d: keys(d).pop(order), OK)  # a weaker claim
        self.add("order key renamed", lambda d: keys(d).update({"O-other": keys(d).pop(order)}), OK)
        self.add("order key of another order added", lambda d: keys(d).update({"O-other": "ab" * 32}), OK)
        self.wrong_types("order key", keys, order, str)
        self.add("order key empty", lambda d: keys(d).update({order: ""}), BAD)
        self.hex_changes("order key", keys, order, key, Expect("not_verified", self.all, False))

    def record_list(self) -> None:
        self.wrong_types("records", lambda d: d, "records", list)
        self.add("records empty", lambda d: d.update(records=[]), BAD)
        self.add("records swapped", lambda d: d["records"].insert(0, d["records"].pop(1)), BAD)
        self.add("records reversed", lambda d: d["records"].reverse(), BAD)
        self.add("a record twice", lambda d: d["records"].insert(1, d["records"][0]), BAD)
        self.add("a record twice at the end", lambda d: d["records"].append(d["records"][-1]), BAD)
        for i in range(self.n):
            self.add(f"records[{i}] left out", lambda d, j=i: d["records"].pop(j), OK)  # a weaker claim

    def entry(self, i: int) -> None:
        e = lambda d: d["records"][i]  # noqa: E731
        item = self.doc["records"][i]
        where = f"records[{i}]"
        self.wrong_types(where, lambda d: d["records"], i, dict)
        self.add(f"{where} empty", lambda d: d["records"].__setitem__(i, {}), BAD)
        self.add(f"an unknown field in {where}", lambda d: e(d).update(note="x"), BAD)
        for key in ("index", "leaf_hash", "inclusion_proof", "record", "salt"):
            self.add(f"{where}.{key} deleted", lambda d, k=key: e(d).pop(k), BAD)
            self.wrong_types(f"{where}.{key}", e, key, type(item[key]))
        self.index(i)
        fails = _records(i)
        for key in ("leaf_hash", "salt", "personal_commitment", "personal_salt"):
            if key in item:
                self.hex_changes(f"{where}.{key}", e, key, item[key], fails)
        proof = item["inclusion_proof"]
        self.add(f"{where}.inclusion_proof empty", lambda d: e(d).update(inclusion_proof=[]), fails)
        self.add(f"{where}.inclusion_proof one hash short", lambda d: e(d)["inclusion_proof"].pop(), fails)
        self.add(f"{where}.inclusion_proof one hash long",
                 lambda d: e(d)["inclusion_proof"].append(proof[0]), fails)
        self.add(f"{where}.inclusion_proof reversed", lambda d: e(d)["inclusion_proof"].reverse(),
                 fails if len(set(proof)) > 1 else OK)
        for j in range(len(proof)):
            self.hex_changes(f"{where}.inclusion_proof[{j}]", lambda d: e(d)["inclusion_proof"], j, proof[j],
                             fails)
            self.add(f"{where}.inclusion_proof[{j}] null",
                     lambda d, k=j: e(d)["inclusion_proof"].__setitem__(k, None), BAD)
        self.personal(i, item)

    def index(self, i: int) -> None:
        e = lambda d: d["records"][i]  # noqa: E731
        indices = [r["index"] for r in self.doc["records"]]
        size = self.doc["anchor"]["tree_size"]
        changes = {indices[i] + 1: "+1", indices[i] - 1: "-1", size: "the tree size", -1: "negative"}
        changes.setdefault(indices[(i + 1) % self.n], "another record's")
        for new, label in changes.items():
            seq = indices[:i] + [new] + indices[i + 1:]
            ordered = new >= 0 and all(a < b for a, b in zip(seq, seq[1:], strict=False))
            self.add(f"records[{i}].index {label}", lambda d, v=new: e(d).update(index=v),
                     _records(i) if ordered else BAD)

    def personal(self, i: int, item: dict[str, Any]) -> None:
        e = lambda d: d["records"][i]  # noqa: E731
        where = f"records[{i}]"
        if "personal" in item:
            self.add(f"{where}.personal deleted", lambda d: e(d).pop("personal"), BAD)
            self.add(f"{where}.personal_salt deleted", lambda d: e(d).pop("personal_salt"), BAD)
            self.add(f"{where}.personal_commitment deleted", lambda d: e(d).pop("personal_commitment"), BAD)
            self.add(f"{where}.personal disclosure withdrawn",
                     lambda d: (e(d).pop("personal"), e(d).pop("personal_salt")), OK)  # a weaker claim
            self.wrong_types(f"{where}.personal", e, "personal", dict)
            for key in item["personal"]:
                self.add(f"{where}.personal.{key} changed",
                         lambda d, k=key: e(d)["personal"].update({k: "someone else"}), _records(i))
            self.add(f"{where}.personal field added", lambda d: e(d)["personal"].update(alias="x"),
                     _records(i))
        elif "personal_commitment" in item:
            self.add(f"{where}.personal_commitment deleted", lambda d: e(d).pop("personal_commitment"),
                     _records(i))
        else:
            self.add(f"{where}.personal_commitment added",
                     lambda d: e(d).update(personal_commitment="ab" * 32), _records(i))
            self.add(f"{where}.personal alone", lambda d: e(d).update(personal={"buyer_name": "x"}), BAD)

    def record_content(self) -> None:
        """Every member of a record's content, changed every way: the record fails (its leaf),
        however JSON-like the change. Records 0 and the one with personal data."""
        personal = next(i for i, r in enumerate(self.doc["records"]) if "personal" in r)
        for i in sorted({0, personal}):
            rec = lambda d, j=i: d["records"][j]["record"]  # noqa: E731
            where = f"records[{i}].record"
            self.add(f"{where} empty", lambda d, r=rec: r(d).clear(), _records(i))
            self.add(f"{where} with its salt", lambda d, r=rec: r(d).update(salt="ab" * 32), _records(i))
            self.add(f"{where} with a commitment",
                     lambda d, r=rec: r(d).update(personal_commitment="ab" * 32), _records(i))
            self.add(f"{where} with a field added", lambda d, r=rec: r(d).update(note="x"), _records(i))
            self.add(f"{where} beyond JCS", lambda d, r=rec: r(d).update(note=2**60), _records(i))
            for key, value in self.doc["records"][i]["record"].items():
                for label, new in (("deleted", ...), ("null", None), ("other", _other(value)),
                                   ("a list", [value])):
                    if new == value and type(new) is type(value):
                        continue
                    change = (lambda d, r=rec, k=key: r(d).pop(k)) if new is ... else (
                        lambda d, r=rec, k=key, v=new: r(d).update({k: v}))
                    self.add(f"{where}.{key} {label}", change, _records(i))

    def texts(self) -> None:
        text = self.world.text
        head = self.doc["anchor"]
        self.text("a UTF-8 byte order mark", b"\xef\xbb\xbf" + text.encode(), BAD)
        self.text("UTF-16", text.encode("utf-16"), BAD)
        self.text("not JSON", text[:-3].encode(), BAD)
        self.text("trailing garbage", (text + "x").encode(), BAD)
        self.text("a second document", (text + text).encode(), BAD)
        number = f'"block_number": {head["block_number"]}'
        self.text("NaN", text.replace(number, '"block_number": NaN').encode(), BAD)
        self.text("Infinity", text.replace('"tree_size": ', '"tree_size": Infinity, "x": ', 1).encode(), BAD)
        self.text("block_number 5.0", text.replace(number, number + ".0").encode(), BAD)
        self.text("block_number 5e0", text.replace(number, number + "e0").encode(), BAD)
        self.text("a duplicate top-level key", text.replace("{", '{"generated_at": "x", ', 1).encode(), BAD)
        root = '"anchor": {"root": "' + "00" * 32 + '", '
        self.text("a duplicate anchor key", text.replace('"anchor": {', root, 1).encode(), BAD)
        self.text("a duplicate key in a record's content",
                  text.replace('"record": {', '"record": {"id": "someone else", ', 1).encode(), BAD)
        self.text("a duplicate key in personal data",
                  text.replace('"personal": {', '"personal": {"buyer_name": "x", ', 1).encode(), BAD)
        self.text("an array", ("[" + text + "]").encode(), BAD)
        self.text("empty", b"", BAD)


def _other(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value[:-1] if value else [1]
    if isinstance(value, dict):
        return {**value, "x": 1}
    return 1


# --------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("mutants"))


@pytest.fixture(scope="module")
def mutants(world: World) -> list[Mutant]:
    return Mutants(world).generate()


@pytest.fixture(scope="module")
def verdicts(mutants: list[Mutant], world: World) -> dict[str, Outcome]:
    """`ledger verify`'s outcome of every mutant, pinned by the trust file, on the node."""
    return {m.name: ledger_verify(world, m.text, world.pin) for m in mutants}


@dataclass(frozen=True)
class Outcome:
    status: str
    records: frozenset[int]
    head: bool


def ledger_verify(world: World, text: bytes, pin: Pin | None, offline: bool = False) -> Outcome:
    """What `ledger verify` decides, as `cmd_verify` does it, without the printing."""
    try:
        bundle = load_bundle(text, "mutant.json")
    except BundleError:
        return Outcome(MALFORMED, frozenset(), False)
    verdict = verify_bundle(bundle, None if offline else world.node.w3, pin=pin)
    for f in verdict.head_failures:
        assert HEAD_FAILURE.match(f), f
    for r in verdict.records:
        assert all(RECORD_FAILURE.match(f) for f in r.failures), r.failures
    return Outcome(verdict.status, frozenset(i for i, r in enumerate(verdict.records) if not r.ok),
                   bool(verdict.head_failures))


def reference(world: World, text: bytes, *, trust: bool = True, offline: bool = False,
              **pins: Any) -> Outcome:
    trust_text = dumps_trust_root(world.trust).encode() if trust else None
    out = reference_verifier.verify(text, None if offline else world.node.w3, trust=trust_text, **pins)
    return Outcome(out.status, frozenset(out.failed_records), out.head_failed)


def test_there_are_hundreds_of_mutants_and_all_are_different(mutants: list[Mutant], world: World) -> None:
    assert len(mutants) >= 500
    assert len({m.name for m in mutants}) == len(mutants)
    assert len({m.text for m in mutants}) == len(mutants)
    assert world.text.encode() not in {m.text for m in mutants}


def test_every_mutant_is_refused_or_fails_or_is_documented_to_stay_true(
    mutants: list[Mutant], verdicts: dict[str, Outcome]
) -> None:
    wrong = []
    for m in mutants:
        got = verdicts[m.name]
        e = m.expect
        if (got.status != e.status or (e.records is not None and got.records != e.records)
                or (e.head is not None and got.head != e.head)
                or (e.status == "not_verified" and not got.records and not got.head)):
            wrong.append(f"{m.name}: expected {e}, got {got}")
    assert wrong == []


def test_the_true_bundle_verifies_for_both(world: World) -> None:
    text = world.text.encode()
    assert ledger_verify(world, text, world.pin) == reference(world, text) == Outcome("verified", frozenset(),
                                                                                        False)


def test_the_reference_verifier_agrees_on_every_mutant(mutants: list[Mutant], world: World,
                                                       verdicts: dict[str, Outcome]) -> None:
    disagree = []
    for m in mutants:
        ours, theirs = verdicts[m.name], reference(world, m.text)
        if ours != theirs:
            disagree.append(f"{m.name}: ledger {ours}, reference {theirs}")
    assert disagree == []


def _modes(world: World) -> Iterator[tuple[str, Pin | None, dict[str, Any]]]:
    """Each way to pin (or not) and to ask a node (or not), for ledger and the reference."""
    head = world.bundle.anchor
    yield "unpinned", None, {"trust": False}
    yield "offline, pinned", world.pin, {"offline": True}
    yield "offline, unpinned", None, {"trust": False, "offline": True}
    yield "pinned by flags", Pin(head.chain_id, head.contract), {"trust": False, "chain_id": head.chain_id,
                                                                   "contract": head.contract}
    yield "chain pinned only", Pin(head.chain_id), {"trust": False, "chain_id": head.chain_id}


@pytest.mark.parametrize("mode", ["unpinned", "offline, pinned", "offline, unpinned", "pinned by flags",
                                  "chain pinned only"])
def test_pins_and_offline_give_the_documented_status(mode: str, mutants: list[Mutant], world: World) -> None:
    name, pin, ref = next(m for m in _modes(world) if m[0] == mode)
    offline = bool(ref.get("offline"))
    true = ledger_verify(world, world.text.encode(), pin, offline)
    expected = {"unpinned": "unpinned", "pinned by flags": "verified", "chain pinned only": "unpinned"}.get(
        mode, "head_unchecked")
    assert true.status == expected and VERIFY_EXIT[true.status] == (0 if expected == "verified" else 3)
    impostor = next(m for m in mutants if m.name == "anchor of the impostor that anchored the same head")
    fooled = ledger_verify(world, impostor.text, pin, offline)
    # Without a pinned contract the impostor's head holds on its own contract: never `verified`.
    assert fooled.status == ("not_verified" if pin is not None and pin.contract else expected)
    sample = [m for m in mutants if m.expect.status != "verified"][::20] + [impostor]
    for m in sample:
        assert ledger_verify(world, m.text, pin, offline) == reference(world, m.text, **ref), m.name
