"""The case file: the library's files read and written back byte for byte, the model both
ways, what-if overrides on a copy, and malformed case files refused with a `CaseError`
naming the JSON path (before any chain is started)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import CaseError
from ledger.escrow.types import Terms
from ledger.investigate.case import (
    Case,
    CaseTerms,
    Erc20Token,
    NativeToken,
    dumps_case,
    load_case,
)
from tests.document_edits import Malformed, edit

CASES = sorted((Path(__file__).resolve().parents[2] / "cases").glob("*.json"))


def _case(fragment: str) -> tuple[Case, str]:
    path = next(p for p in CASES if fragment in p.name)
    text = path.read_text()
    return load_case(text, path.name), text


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_library_files_read_and_write_back_byte_for_byte(path: Path) -> None:
    text = path.read_text()
    case = load_case(text, path.name)
    assert dumps_case(case) == text
    assert text == json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n"  # how cases were written
    assert load_case(dumps_case(case)) == case


def test_optional_keys_stay_absent() -> None:
    case, _ = _case("timeout-release")
    written = json.loads(dumps_case(case))
    assert all("dropped" not in a and "overridden" not in a for a in written["actions"])
    assert "verified" not in written["expect"] and written["note"] is not None
    bare = msgspec.structs.replace(case, name=None, expect=None, note=None)
    written = json.loads(dumps_case(bare))
    assert "name" not in written and "expect" not in written and written["note"] is None


def test_tokens_are_a_tagged_union() -> None:
    erc20, _ = _case("double-pledge")
    assert isinstance(erc20.setup.token, Erc20Token) and erc20.setup.token.decimals == 6
    native, _ = _case("timeout-release")
    assert isinstance(native.setup.token, NativeToken)
    assert json.loads(dumps_case(native))["setup"]["token"] == {"kind": "native"}
    setup = msgspec.structs.replace(native.setup, token=erc20.setup.token)
    swapped = msgspec.structs.replace(native, setup=setup)
    assert load_case(dumps_case(swapped)) == swapped


@given(st.builds(Terms, arbitrator=st.just("0x" + "ab" * 20), fee_bps=st.integers(0, 10_000),
                 delivery_window=st.integers(0, 2**32), arbitrator_extra_data=st.binary(max_size=40)))
def test_terms_both_ways(terms: Terms) -> None:
    as_case = CaseTerms.of(terms)
    again = msgspec.convert(msgspec.to_builtins(as_case), CaseTerms, strict=True)
    assert again == as_case and again.judged_by(terms.arbitrator, terms.arbitrator_extra_data) == terms


# --------------------------------------------------------------------------- malformed case files


def _action(doc: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = doc["actions"][0]
    return first


MALFORMED: Malformed = {
    "duplicate key": (lambda t: t.replace('"order_id": "O', '"order_id": "O1", "order_id": "O', 1),
                      "duplicate key 'order_id'"),
    "duplicate key in an event's values": (
        lambda t: t.replace('"orderId": "0x', '"orderId": "0x00", "orderId": "0x', 1),
        "duplicate key 'orderId'"),
    "unknown field": (edit(lambda d: d.update(verdict="guilty")), "unknown field `verdict`"),
    "unknown action field": (edit(lambda d: _action(d).update(gas=1)),
                             "unknown field `gas` - at `$.actions[0]`"),
    "unknown token kind": (edit(lambda d: d["setup"]["token"].update(kind="erc721")),
                           "`$.setup.token.kind`"),
    "erc20 token without an address": (edit(lambda d: d["setup"]["token"].pop("address")),
                                       "missing required field `address` - at `$.setup.token`"),
    "value as a string": (edit(lambda d: _action(d).update(value="0")), "`$.actions[0].value`"),
    "time as a float": (edit(lambda d: _action(d).update(time=1.5)), "`$.actions[0].time`"),
    "status not known": (edit(lambda d: _action(d).update(status="pending")), "`$.actions[0].status`"),
    "signer not an address": (edit(lambda d: _action(d)["signatures"][0].update(signer="me")),
                              "`$.actions[0].signatures[0].signer`"),
    "sender missing": (edit(lambda d: _action(d).pop("sender")), "missing required field `sender`"),
    "expected refusal of three parts": (edit(lambda d: d["expect"].update(failed=[["a", "b", "c"]])),
                                        "`$.expect.failed[0]`"),
    "malformed evidence bundle": (edit(lambda d: d["evidence"]["records"][0].update(salt="00")),
                                  "`$.evidence.records[0].salt`"),
    "evidence bundle of another format": (edit(lambda d: d["evidence"].update(format="x")),
                                          "`$.evidence.format`"),
    "wrong format": (edit(lambda d: d.update(format="evidence-escrow/case/v1")),
                     "is not a case file (format must be 'evidence-escrow/case/v2')"),
    "NaN": (lambda t: t.replace('"value": 0', '"value": NaN', 1), "NaN is not JSON"),
    "truncated": (lambda t: t[:-100], "is not JSON"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_case_files_are_refused_naming_the_field(name: str) -> None:
    _, text = _case("empty-parcel")
    mutate, expected = MALFORMED[name]
    bad = mutate(text)
    assert bad != text
    with pytest.raises(CaseError) as caught:
        load_case(bad, "case.json")
    assert str(caught.value).startswith("case.json") and expected in str(caught.value)
