"""Offline verification of a well-formed bundle: every lie is reported against the record it
concerns (never raised), and a bundle that tells the truth verifies."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.evidence.bundle import build_bundle, verify_records
from ledger.evidence.bundle_format import Bundle, BundleRecord, Selection, dumps_bundle, load_bundle
from ledger.evidence.store import Store
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
    "shorter proof": (lambda b: b.records[0].inclusion_proof.pop(), "bad inclusion proof"),
    "other index": (lambda b: _set("index", b.records[0].index + 1)(b.records[0]), "bad inclusion proof"),
    "index beyond the head": (lambda b: _set("index", 10**6)(b.records[0]), "bad inclusion proof"),
    "record carries a salt": (lambda b: b.records[0].record.update(salt="00" * 32), "reserved field"),
    "record not canonical": (lambda b: b.records[0].record.update(total=2**60), "cannot be canonicalised"),
    "changed personal data": (lambda b: _personal(b).personal.update(buyer_name="someone else"),  # type: ignore[union-attr]
                              "tampered personal data"),
    "personal data without its salt": (lambda b: _set("personal_salt", None)(_personal(b)), "personal_salt"),
    "personal data without a commitment": (
        lambda b: _set("personal_commitment", None)(_personal(b)), "without a personal_commitment"),
}


@pytest.mark.parametrize("name", list(LIES))
def test_every_lie_is_a_named_failure_of_its_record(name: str, bundle: Bundle) -> None:
    change, expected = LIES[name]
    failures = _failures(bundle, change)
    personal = name.startswith(("changed personal", "personal"))
    target = bundle.records.index(_personal(bundle)) if personal else 0
    assert any(expected in f for f in failures[target]), failures[target]
    assert all(not f for i, f in enumerate(failures) if i != target)


def test_a_wrong_salt_is_not_also_called_tampered_content(bundle: Bundle) -> None:
    failures = _failures(bundle, LIES["other salt"][0])[0]
    assert len(failures) == 1 and failures[0].startswith("wrong salt")


def test_a_repeated_leaf_index_is_named(bundle: Bundle) -> None:
    failures = _failures(bundle, lambda b: b.records.append(copy.deepcopy(b.records[0])))
    assert failures[-1] == [f"leaf index {bundle.records[0].index} appears twice in the bundle"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6), max_size=6))
def test_any_record_content_is_verified_not_raised(bundle: Bundle, content: dict[str, Any]) -> None:
    """Whatever a disclosed record says, the verdict is a list of failures for that record."""
    failures = _failures(bundle, lambda b: setattr(b.records[0], "record", content))
    assert failures[0] and all(not f for f in failures[1:])


def test_build_bundle_writes_the_selection_it_is_given(store: Store, bundle: Bundle) -> None:
    anchor = store.latest_confirmed(CHAIN_ID, CONTRACT)
    stored = store.records_for_order(bundle.records[0].record["order_id"])
    built = build_bundle(store, stored, anchor, selection=Selection(audit="merchant"))
    assert built.selection == Selection(audit="merchant")
    assert json.loads(dumps_bundle(built))["selection"] == {"audit": "merchant"}
