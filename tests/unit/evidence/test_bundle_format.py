"""The bundle document: both directions of its serialisation, and every way a malformed
bundle is refused (a `BundleError` naming the file and the JSON path, never a traceback)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ledger._internal import jsondoc
from ledger.errors import BundleError
from ledger.evidence.bundle_format import (
    FORMAT,
    Bundle,
    BundleAnchor,
    BundleRecord,
    Selection,
    dumps_bundle,
    hex_bytes,
    load_bundle,
)
from ledger.evidence.store import Store
from tests.document_edits import Malformed, edit
from tests.unit.evidence.bundle_data import anchored_store, export

CASES = sorted((Path(__file__).resolve().parents[2] / "cases").glob("*.json"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return anchored_store(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def bundle(store: Store) -> Bundle:
    return export(store, disclose_personal=True)


@pytest.fixture(scope="module")
def text(bundle: Bundle) -> str:
    return dumps_bundle(bundle)


# --------------------------------------------------------------------------- round trips


def test_model_to_text_to_model(bundle: Bundle) -> None:
    assert load_bundle(dumps_bundle(bundle)) == bundle


def test_exported_text_to_model_to_text(text: str) -> None:
    assert dumps_bundle(load_bundle(text, "bundle.json")) == text


def test_written_as_before_the_model(bundle: Bundle, text: str) -> None:
    """`ledger export` wrote ``json.dumps(bundle, indent=2, sort_keys=True) + "\\n"``."""
    as_dict = jsondoc.to_json(bundle)
    assert text == json.dumps(as_dict, indent=2, sort_keys=True) + "\n"
    assert sorted(as_dict) == ["anchor", "format", "generated_at", "order_keys", "records", "selection"]
    assert as_dict["anchor"]["tx_hash"].startswith("0x")
    assert not as_dict["records"][0]["salt"].startswith("0x")


def test_optional_fields_are_absent_not_null(store: Store) -> None:
    """Without --disclose-personal the personal keys are left out, never written as null."""
    quiet = export(store)
    items = jsondoc.to_json(quiet)["records"]
    assert any("personal_commitment" in i for i in items)
    assert not any("personal" in i or "personal_salt" in i for i in items)
    assert load_bundle(dumps_bundle(quiet)) == quiet


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case_library_evidence_round_trips(path: Path) -> None:
    evidence = json.loads(path.read_text())["evidence"]
    written = json.dumps(evidence, indent=2, sort_keys=True) + "\n"
    assert dumps_bundle(load_bundle(written, path.name)) == written


_hex32 = st.binary(min_size=32, max_size=32).map(bytes.hex)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


_times = st.datetimes(min_value=datetime(1000, 1, 1)).map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


@given(
    record=st.dictionaries(st.text(), _json, max_size=5),
    index=st.integers(min_value=0, max_value=2**63 - 2),
    proof=st.lists(_hex32, max_size=4),
    personal=st.none() | st.dictionaries(st.text(), st.text(), max_size=3),
    selection=st.builds(Selection, order_id=st.none() | st.text(), since=st.none() | _times),
)
@example(record={}, index=0, proof=[], personal=None, selection=Selection())
def test_any_bundle_survives_both_directions(
    record: dict[str, Any], index: int, proof: list[str], personal: dict[str, str] | None,
    selection: Selection,
) -> None:
    item = BundleRecord(index=index, leaf_hash="ab" * 32, inclusion_proof=proof, record=record,
                        salt="cd" * 32, personal_commitment=None if personal is None else "ef" * 32,
                        personal=personal, personal_salt=None if personal is None else "01" * 32)
    anchor = BundleAnchor(chain_id=1, contract="0x" + "12" * 20, tree_size=index + 1, root="34" * 32,
                          tx_hash="0x" + "56" * 32, block_number=7, block_hash="0x" + "78" * 32,
                          block_timestamp=1_795_590_813)
    bundle = Bundle(format=FORMAT, generated_at="2026-11-25T08:00:00Z", selection=selection, anchor=anchor,
                    records=[item], order_keys={"o": "9a" * 32})
    text = dumps_bundle(bundle)
    assert load_bundle(text) == bundle
    assert dumps_bundle(load_bundle(text)) == text


def test_hex_fields_are_read_in_the_one_form_they_are_written() -> None:
    assert hex_bytes("0x" + "ab" * 32) == hex_bytes("ab" * 32) == b"\xab" * 32


# --------------------------------------------------------------------------- malformed documents


def _first(doc: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = doc["records"][0]
    return record


def _personal(doc: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in doc["records"] if "personal" in r)


def _swap_first_two(doc: dict[str, Any]) -> None:
    doc["records"][0], doc["records"][1] = doc["records"][1], doc["records"][0]


MALFORMED: Malformed = {
    "duplicate key in a record": (
        lambda t: t.replace('"salt": "', '"salt": "' + "00" * 32 + '",\n      "salt": "', 1),
        "duplicate key 'salt'"),
    "duplicate key at the top": (lambda t: t.replace("{", '{"format": "' + FORMAT + '", ', 1),
                                 "duplicate key 'format'"),
    "duplicate key inside a record's content": (
        lambda t: t.replace('"record": {', '"record": {"id": "someone else\'s", ', 1), "duplicate key 'id'"),
    "unknown top-level field": (edit(lambda d: d.update(signature="trust me")), "unknown field `signature`"),
    "unknown record field": (edit(lambda d: _first(d).update(note="x")),
                             "unknown field `note` - at `$.records[0]`"),
    "unknown anchor field": (edit(lambda d: d["anchor"].update(verified=True)),
                             "unknown field `verified` - at `$.anchor`"),
    "unknown selection field": (edit(lambda d: d["selection"].update(everything=True)),
                                "unknown field `everything` - at `$.selection`"),
    "index as a string": (edit(lambda d: _first(d).update(index="3")), "`$.records[0].index`"),
    "index as a boolean": (edit(lambda d: _first(d).update(index=True)),
                           "got `bool` - at `$.records[0].index`"),
    "negative index": (edit(lambda d: _first(d).update(index=-1)), ">= 0 - at `$.records[0].index`"),
    "tree size as a float": (edit(lambda d: d["anchor"].update(tree_size=60.0)), "`$.anchor.tree_size`"),
    "records not a list": (edit(lambda d: d.update(records={})), "`$.records`"),
    "record content not an object": (edit(lambda d: _first(d).update(record=[])), "`$.records[0].record`"),
    "personal data not an object": (edit(lambda d: _first(d).update(personal="x")),
                                    "`$.records[0].personal`"),
    "salt not hex": (edit(lambda d: _first(d).update(salt="zz" * 32)), "`$.records[0].salt`"),
    "salt too short": (edit(lambda d: _first(d).update(salt="00" * 31)), "`$.records[0].salt`"),
    "proof hash too long": (edit(lambda d: _first(d)["inclusion_proof"].insert(0, "00" * 33)),
                            "`$.records[0].inclusion_proof[0]`"),
    "leaf hash with spaces": (edit(lambda d: _first(d).update(leaf_hash="00 " * 32)),
                              "`$.records[0].leaf_hash`"),
    "order key not hex": (edit(lambda d: d["order_keys"].update({k: "key" for k in d["order_keys"]})),
                          "`$.order_keys[...]`"),
    "tx hash without 0x": (edit(lambda d: d["anchor"].update(tx_hash=d["anchor"]["tx_hash"][2:])),
                           "`$.anchor.tx_hash`"),
    "tx hash in upper case": (edit(lambda d: d["anchor"].update(tx_hash="0x" + "AB" * 32)),
                              "`$.anchor.tx_hash`"),
    "block hash with 0X": (edit(lambda d: d["anchor"].update(block_hash="0X" + "22" * 32)),
                           "`$.anchor.block_hash`"),
    "root with 0x": (edit(lambda d: d["anchor"].update(root="0x" + d["anchor"]["root"])), "`$.anchor.root`"),
    "leaf hash in upper case": (edit(lambda d: _first(d).update(leaf_hash=_first(d)["leaf_hash"].upper())),
                                "`$.records[0].leaf_hash`"),
    "leaf hash with a final newline": (edit(lambda d: _first(d).update(leaf_hash="ab" * 32 + "\n")),
                                       "`$.records[0].leaf_hash`"),
    "tx hash with a final newline": (edit(lambda d: d["anchor"].update(tx_hash="0x" + "ab" * 32 + "\n")),
                                     "`$.anchor.tx_hash`"),
    "contract with a final newline": (edit(lambda d: d["anchor"].update(contract="0x" + "12" * 20 + "\n")),
                                      "`$.anchor.contract`"),
    "salt with 0x": (edit(lambda d: _first(d).update(salt="0x" + _first(d)["salt"])), "`$.records[0].salt`"),
    "proof hash with one upper-case digit": (
        edit(lambda d: _first(d)["inclusion_proof"].__setitem__(0, "A" + "0" * 63)),
        "`$.records[0].inclusion_proof[0]`"),
    "order key in upper case": (edit(lambda d: d["order_keys"].update({k: v.upper() for k, v in
                                                                          d["order_keys"].items()})),
                                "`$.order_keys[...]`"),
    "order keys not an object": (edit(lambda d: d.update(order_keys=list(d["order_keys"].values()))),
                                 "`$.order_keys`"),
    "order key a number": (edit(lambda d: d["order_keys"].update({k: 7 for k in d["order_keys"]})),
                           "`$.order_keys[...]`"),
    "contract in lower case": (edit(lambda d: d["anchor"].update(contract=d["anchor"]["contract"].lower())),
                               "anchor.contract 0x5fbdb2315678afecb367f032d93f642f64180aa3 is not in its "
                               "EIP-55 checksum case - at `$.anchor`"),
    "contract not an address": (edit(lambda d: d["anchor"].update(contract="0x1234")), "`$.anchor.contract`"),
    "chain id as a string": (edit(lambda d: d["anchor"].update(chain_id=str(d["anchor"]["chain_id"]))),
                             "Expected `int`, got `str` - at `$.anchor.chain_id`"),
    "block number as a float": (edit(lambda d: d["anchor"].update(block_number=5.0)),
                                "Expected `int`, got `float` - at `$.anchor.block_number`"),
    "block number negative": (edit(lambda d: d["anchor"].update(block_number=-5)), "`$.anchor.block_number`"),
    "tree size too large": (edit(lambda d: d["anchor"].update(tree_size=2**63)), "`$.anchor.tree_size`"),
    "block timestamp null": (edit(lambda d: d["anchor"].update(block_timestamp=None)),
                             "`$.anchor.block_timestamp`"),
    "tx hash missing": (edit(lambda d: d["anchor"].pop("tx_hash")),
                        "missing required field `tx_hash` - at `$.anchor`"),
    "tx hash empty": (edit(lambda d: d["anchor"].update(tx_hash="")), "`$.anchor.tx_hash`"),
    "block hash null": (edit(lambda d: d["anchor"].update(block_hash=None)), "`$.anchor.block_hash`"),
    "block number missing": (edit(lambda d: d["anchor"].pop("block_number")),
                             "missing required field `block_number`"),
    "index as a float": (edit(lambda d: _first(d).update(index=float(_first(d)["index"]))),
                         "`$.records[0].index`"),
    "inclusion proof null": (edit(lambda d: _first(d).update(inclusion_proof=None)),
                             "`$.records[0].inclusion_proof`"),
    "records out of order": (edit(_swap_first_two), "records[1].index"),
    "a record twice": (edit(lambda d: d["records"].insert(1, d["records"][0])),
                       "does not follow records[0].index"),
    "no records": (edit(lambda d: d.update(records=[])), "`$.records`: a v1 bundle has at least one record"),
    "since not a time": (edit(lambda d: d["selection"].update(since="yesterday")),
                         "selection.since: not an RFC 3339 time: 'yesterday'"),
    "until not a real date": (edit(lambda d: d["selection"].update(until="2026-02-30T00:00:00Z")),
                              "selection.until: not a real date and time"),
    "personal without its salt": (edit(lambda d: _personal(d).pop("personal_salt")),
                                  "personal and personal_salt are disclosed together or not at all"),
    "personal salt without personal": (edit(lambda d: _personal(d).pop("personal")),
                                       "personal and personal_salt are disclosed together or not at all"),
    "personal without a commitment": (edit(lambda d: _personal(d).pop("personal_commitment")),
                                      "personal data is disclosed without the personal_commitment"),
    "root missing": (edit(lambda d: d["anchor"].pop("root")),
                     "missing required field `root` - at `$.anchor`"),
    "root null": (edit(lambda d: d["anchor"].update(root=None)), "`$.anchor.root`"),
    "records missing": (edit(lambda d: d.pop("records")), "missing required field `records`"),
    "wrong format": (edit(lambda d: d.update(format="evidence-escrow/bundle/v3")),
                     "is not an evidence bundle (format must be 'evidence-escrow/bundle/v1' or "
                     "'evidence-escrow/bundle/v2')"),
    "format missing": (edit(lambda d: d.pop("format")), "format must be"),
    "not an object": (lambda t: "[" + t + "]", "format must be"),
    "NaN": (lambda t: t.replace('"block_number": 5', '"block_number": NaN', 1), "NaN is not JSON"),
    "Infinity": (lambda t: t.replace('"tree_size": ', '"tree_size": -Infinity, "x": ', 1),
                 "-Infinity is not JSON"),
    "truncated": (lambda t: t[: len(t) // 2], "is not JSON"),
    "empty": (lambda t: "", "is not JSON"),
    "not UTF-8": (lambda t: "\udcff" + t, "is not JSON: it is not UTF-8"),
    "a UTF-8 byte order mark": (lambda t: "\ufeff" + t, "is not JSON: Unexpected UTF-8 BOM"),
    "UTF-16": (lambda t: t.encode("utf-16").decode("utf-8", "surrogateescape"), "is not UTF-8"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_bundles_are_refused_naming_the_field(name: str, text: str) -> None:
    mutate, expected = MALFORMED[name]
    bad = mutate(text)
    assert bad != text
    with pytest.raises(BundleError) as caught:
        load_bundle(bad.encode("utf-8", "surrogateescape"), "bundle.json")
    assert str(caught.value).startswith("bundle.json")
    assert expected in str(caught.value)


@given(st.binary(max_size=200) | _json.map(json.dumps).map(str.encode))
@example(b'{"format": "evidence-escrow/bundle/v1"}')
@example(b"[]")
@example(b"9" * 5000)
def test_garbage_is_a_bundle_error(data: bytes) -> None:
    with pytest.raises(BundleError):
        load_bundle(data)

