"""Offline verification of a well-formed bundle: every lie is reported against the record it
concerns (never raised), a bundle that tells the truth verifies, and a verdict's status keeps
"false" apart from "head not checked" and "not pinned"."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.evidence.bundle import STATUSES, Verdict, build_bundle, verify_bundle, verify_records
from ledger.evidence.bundle_format import Bundle, BundleRecord, Selection, dumps_bundle, load_bundle
from ledger.evidence.store import Store
from ledger.evidence.trust import Pin
from tests.unit.evidence.bundle_data import CHAIN_ID, CONTRACT, anchored_store, export


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return anchored_store(tmp_path_factory.mktemp("verify"))


@pytest.fixture(scope="module")
def bundle(store: Store) -> Bundle:
    return export(store, disclose_personal=True)


def _failures(bundle: Bundle, change: Callable[[Bundle], Any]) -> list[list[str]]:
    """Per-record failures of a changed copy; the change must leave the bundle well-formed."""
    bad = copy.deepcopy(bundle)
    change(bad)
    bad = load_bundle(dumps_bundle(bad))  # still a well-formed document: verification decides
    verdicts, _, _ = verify_records(bad)
    return [v.failures for v in verdicts]


def _personal(bundle: Bundle) -> BundleRecord:
    return next(item for item in bundle.records if item.personal is not None)


def test_the_export_verifies_offline(bundle: Bundle) -> None:
    verdicts, size, root = verify_records(bundle)
    assert verdicts and all(v.ok for v in verdicts)
    assert [v.index for v in verdicts] == [item.index for item in bundle.records]
    assert size == bundle.anchor.tree_size and root.hex() == bundle.anchor.root


def _set(attr: str, value: Any) -> Callable[[BundleRecord], None]:
    return lambda item: setattr(item, attr, value)


LIES: dict[str, tuple[Callable[[Bundle], Any], str]] = {
    "changed content": (lambda b: b.records[0].record.update(ts="2027-01-01T00:00:00Z"), "tampered content"),
    "other salt": (lambda b: _set("salt", "00" * 32)(b.records[0]), "wrong salt"),
    "other record id": (lambda b: b.records[0].record.update(id="O9:order"), "wrong salt"),
    "other salt, no order keys": (lambda b: (_set("salt", "00" * 32)(b.records[0]),
                                             setattr(b, "order_keys", None)), "tampered content"),
    "other stated leaf": (lambda b: _set("leaf_hash", "22" * 32)(b.records[0]), "tampered content"),
    "longer proof": (lambda b: b.records[0].inclusion_proof.append("11" * 32), "bad inclusion proof"),
    "changed content and proof": (lambda b: (b.records[0].record.update(ts="2027-01-01T00:00:00Z"),
                                             b.records[0].inclusion_proof.pop()), "bad inclusion proof"),
    "shorter proof": (lambda b: b.records[0].inclusion_proof.pop(), "bad inclusion proof"),
    "other index": (lambda b: _set("index", b.records[0].index + 1)(b.records[0]), "bad inclusion proof"),
    "index beyond the head": (lambda b: _set("index", b.anchor.tree_size)(b.records[-1]),
                              "bad inclusion proof"),
    "record carries a salt": (lambda b: b.records[0].record.update(salt="00" * 32), "reserved field"),
    "record carries a commitment": (lambda b: b.records[0].record.update(personal_commitment="00" * 32),
                                    "reserved field"),
    "record not canonical": (lambda b: b.records[0].record.update(total=2**60), "cannot be canonicalised"),
    "changed personal data": (lambda b: _personal(b).personal.update(buyer_name="someone else"),  # type: ignore[union-attr]
                              "tampered personal data"),
    "other personal salt": (lambda b: _set("personal_salt", "00" * 32)(_personal(b)),
                            "tampered personal data"),
    "other personal commitment": (lambda b: _set("personal_commitment", "00" * 32)(_personal(b)),
                                  "tampered personal data"),
    "personal data not canonical": (lambda b: _personal(b).personal.update(age=2**60),  # type: ignore[union-attr]
                                    "tampered personal data: it cannot be canonicalised"),
    "another order": (lambda b: setattr(b.selection, "order_id", "O-other"),
                      "outside the selection: record.order_id is"),
    "another merchant": (lambda b: setattr(b.selection, "merchant_id", "M-other"),
                         "outside the selection: record.merchant_id is"),
    "ts before since": (lambda b: setattr(b.selection, "since", b.records[1].record["ts"]),
                        "is before selection.since"),
    "ts at until": (lambda b: setattr(b.selection, "until", b.records[-1].record["ts"]),
                    "is not before selection.until"),
}
#: lies about the last record, not the first
LAST_RECORD = ("index beyond the head", "ts at until")


#: lies that concern every record (a selection none of them is in)
EVERY_RECORD = ("another order", "another merchant")


@pytest.mark.parametrize("name", list(LIES))
def test_every_lie_is_a_named_failure_of_its_record(name: str, bundle: Bundle) -> None:
    change, expected = LIES[name]
    failures = _failures(bundle, change)
    targets = {bundle.records.index(_personal(bundle))} if "personal" in name else {0}
    if name in LAST_RECORD:
        targets = {len(failures) - 1}
    if name in EVERY_RECORD:
        targets = set(range(len(failures)))
    for i, f in enumerate(failures):
        if i in targets:
            assert any(expected in one for one in f), f
        else:
            assert not f, (i, f)


def test_a_wrong_salt_is_not_also_called_tampered_content(bundle: Bundle) -> None:
    failures = _failures(bundle, LIES["other salt"][0])[0]
    assert len(failures) == 1 and failures[0].startswith("wrong salt")


def test_changed_content_is_not_also_called_a_bad_proof(bundle: Bundle) -> None:
    """The stated leaf is in the tree: the content changed, not the proof."""
    failures = _failures(bundle, LIES["changed content"][0])[0]
    assert len(failures) == 1 and failures[0].startswith("tampered content")
    both = _failures(bundle, LIES["changed content and proof"][0])[0]
    assert [f.split(":")[0] for f in both] == ["tampered content", "bad inclusion proof"]


def test_verify_records_reports_progress_once_per_record(bundle: Bundle) -> None:
    steps: list[int] = []
    verdicts, _, _ = verify_records(bundle, progress=steps.append)
    assert steps == [1] * len(verdicts) == [1] * len(bundle.records)


def test_a_record_with_an_empty_id_still_has_its_salt_checked(bundle: Bundle) -> None:
    failures = _failures(bundle, lambda b: b.records[0].record.update(id=""))[0]
    assert failures and failures[0].startswith("wrong salt")


@pytest.mark.parametrize("ts", [None, 5, "yesterday", "2026-02-30T00:00:00Z"])
def test_a_record_without_a_valid_ts_is_outside_a_bounded_selection(bundle: Bundle, ts: Any) -> None:
    def change(b: Bundle) -> None:
        b.selection.since = "2000-01-01T00:00:00Z"
        if ts is None:
            del b.records[0].record["ts"]
        else:
            b.records[0].record["ts"] = ts

    failures = _failures(bundle, change)
    assert any("not an RFC 3339 time to compare with the selection's bounds" in f for f in failures[0])
    assert all(not f for f in failures[1:])


def test_selection_failures_name_the_field_and_both_values(bundle: Bundle) -> None:
    order = bundle.records[0].record["order_id"]

    def change(b: Bundle) -> None:
        b.selection.merchant_id = "M-other"
        b.records[0].record["order_id"] = 7
        del b.records[1].record["merchant_id"]

    failures = _failures(bundle, change)
    merchant = bundle.records[0].record["merchant_id"]
    assert [f for f in failures[0] if f.startswith("outside")] == [
        f"outside the selection: record.order_id is 7, selection.order_id is {order!r}",
        f"outside the selection: record.merchant_id is {merchant!r}, selection.merchant_id is 'M-other'"]
    assert [f for f in failures[1] if f.startswith("outside")] == [
        "outside the selection: record.merchant_id is missing, selection.merchant_id is 'M-other'"]


def test_a_record_outside_the_selection_every_way_has_every_failure(bundle: Bundle) -> None:
    def change(b: Bundle) -> None:
        b.selection.since = "2000-01-01T00:00:00Z"
        b.records[0].record.update(order_id="O-other", ts="soon")

    failures = [f for f in _failures(bundle, change)[0] if f.startswith("outside")]
    assert [f.split(" is ")[0] for f in failures] == ["outside the selection: record.order_id",
                                                      "outside the selection: record.ts"]


def test_without_time_bounds_a_records_ts_is_not_read(bundle: Bundle) -> None:
    failures = _failures(bundle, lambda b: b.records[0].record.update(ts=None))[0]
    assert failures and not any(f.startswith("outside") for f in failures)


def test_selection_bounds_compare_as_times_not_strings(bundle: Bundle) -> None:
    """`…10.3285Z` sorts before `…10.328Z` as text; as a time it is later."""
    ts = bundle.records[0].record["ts"]
    assert ts.endswith("Z") and "." in ts
    later = ts[:-1] + "5Z"
    assert later < ts and _failures(bundle, lambda b: setattr(b.selection, "until", later))[0] == []
    hour = int(ts[11:13])
    offset = f"{ts[:11]}{hour + 1:02d}{ts[13:-1]}+01:00"  # the same instant an hour east
    assert _failures(bundle, lambda b: setattr(b.selection, "since", offset))[0] == []
    assert _failures(bundle, lambda b: setattr(b.selection, "until", offset))[0] != []


def test_a_selection_of_both_order_and_merchant_applies_both(bundle: Bundle) -> None:
    merchant = bundle.records[0].record["merchant_id"]
    assert _failures(bundle, lambda b: setattr(b.selection, "merchant_id", merchant)) == [[]] * len(
        bundle.records)
    neither = _failures(bundle, lambda b: setattr(b, "selection", Selection()))
    assert neither == [[]] * len(bundle.records)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6), max_size=6))
def test_any_record_content_is_verified_not_raised(bundle: Bundle, content: dict[str, Any]) -> None:
    """Whatever a disclosed record says, the verdict is a list of failures for that record."""
    failures = _failures(bundle, lambda b: setattr(b.records[0], "record", content))
    assert failures[0] and all(not f for f in failures[1:])


def _verdict(bundle: Bundle, *, head_failures: list[str] = [], record_failure: bool = False,  # noqa: B006
             head_checked: bool = True, pinned: bool = True) -> Verdict:
    verdicts, size, _ = verify_records(bundle)
    if record_failure:
        verdicts[0].failures.append("tampered content")
    return Verdict(list(head_failures), verdicts, 1, bundle.anchor.contract, size, None, head_checked, pinned)


def test_the_status_keeps_false_apart_from_unchecked_and_unpinned(bundle: Bundle) -> None:
    assert _verdict(bundle).status == "verified" and _verdict(bundle).ok
    for v in (_verdict(bundle, record_failure=True), _verdict(bundle, head_failures=["wrong chain"]),
              _verdict(bundle, record_failure=True, head_checked=False, pinned=False)):
        assert v.status == "not_verified" and not v.ok
    assert _verdict(bundle, head_checked=False).status == "head_unchecked"
    assert _verdict(bundle, head_checked=False, pinned=False).status == "head_unchecked"
    assert _verdict(bundle, pinned=False).status == "unpinned"
    assert not _verdict(bundle, pinned=False).ok and not _verdict(bundle, head_checked=False).ok
    assert set(STATUSES) == {"verified", "not_verified", "head_unchecked", "unpinned"}
    as_json = _verdict(bundle, pinned=False).to_json()
    assert as_json["status"] == "unpinned" and as_json["ok"] is False
    assert {"ok", "chain_id", "contract", "tree_size", "anchored_timestamp", "head_failures",
            "records"} <= set(as_json)


def test_offline_verification_checks_records_and_the_pin_only(bundle: Bundle) -> None:
    head = bundle.anchor
    assert verify_bundle(bundle, None).status == "head_unchecked"
    assert verify_bundle(bundle, None, pin=Pin(head.chain_id, head.contract)).status == "head_unchecked"
    wrong_chain = verify_bundle(bundle, None, pin=Pin(head.chain_id + 1, head.contract))
    assert wrong_chain.status == "not_verified"
    assert wrong_chain.head_failures == [f"wrong chain: anchor.chain_id is {head.chain_id}, the pinned "
                                         f"chain is {head.chain_id + 1}"]
    other = "0x" + "12" * 20
    wrong_contract = verify_bundle(bundle, None, pin=Pin(None, other))
    assert wrong_contract.head_failures == [f"wrong contract: anchor.contract is {head.contract}, the "
                                            f"pinned EvidenceLog is {other}"]
    tampered = copy.deepcopy(bundle)
    tampered.records[0].record["ts"] = "2027-01-01T00:00:00Z"
    assert verify_bundle(tampered, None).status == "not_verified"


def test_build_bundle_writes_the_selection_it_is_given(store: Store, bundle: Bundle) -> None:
    anchor = store.latest_confirmed(CHAIN_ID, CONTRACT)
    stored = store.records_for_order(bundle.records[0].record["order_id"])
    built = build_bundle(store, stored, anchor, selection=Selection(audit="merchant"))
    assert built.selection == Selection(audit="merchant")
    assert json.loads(dumps_bundle(built))["selection"] == {"audit": "merchant"}


def test_build_bundle_writes_records_in_log_order(store: Store, bundle: Bundle) -> None:
    """A merchant audit gathers records order by order; the bundle lists them by leaf index."""
    anchor = store.latest_confirmed(CHAIN_ID, CONTRACT)
    stored = store.records_for_order(bundle.records[0].record["order_id"])
    built = build_bundle(store, list(reversed(stored)), anchor, selection=Selection())
    assert [r.index for r in built.records] == sorted(r.index for r in stored)
