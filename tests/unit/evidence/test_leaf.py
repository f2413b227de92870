"""The leaf rule: SHA-256(0x00 || JCS(public fields + salt + personal commitment)).

The fast per-kind writers and the generic encoder must agree with each other and with rfc8785.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.dev.flash_sale import generate_flash_sale
from ledger.evidence import leaf as leaf_rule
from ledger.evidence.leaf import WRITER_FIELDS, leaf_bytes, leaf_hash_of, personal_commitment
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.model import KINDS, Record
from ledger.evidence.records import parse_line, parse_record
from ledger.evidence.validate import schema_fields
from tests.unit.evidence.records_data import DOC, PSALT, SALT, as_line, valid, valid_records


@pytest.mark.parametrize("kind", KINDS)
def test_leaf_is_jcs_of_the_committed_object(kind: str) -> None:
    rec = parse_record(valid(kind))
    committed = leaf_rule.committed(rec, SALT, PSALT)
    assert committed["salt"] == SALT.hex()
    if rec.personal is None:
        assert "personal_commitment" not in committed
    else:
        expected_pc = hashlib.sha256(PSALT + rfc8785.dumps(rec.personal)).hexdigest()
        assert committed["personal_commitment"] == expected_pc == personal_commitment(rec.personal, PSALT)
    assert {k: v for k, v in committed.items() if k not in ("salt", "personal_commitment")} == rec.public
    assert leaf_bytes(rec, SALT, PSALT) == rfc8785.dumps(committed)
    assert leaf_hash_of(rec, SALT, PSALT) == hashlib.sha256(b"\x00" + rfc8785.dumps(committed)).digest()


def test_leaf_hides_personal_data_but_commits_to_it() -> None:
    rec = parse_record(valid("order"))
    leaf = leaf_bytes(rec, SALT, PSALT)
    assert rec.personal is not None
    for value in rec.personal.values():
        assert value.encode() not in leaf
    other = parse_record({**valid("order"), "personal": {**rec.personal, "phone": "13900000000"}})
    assert leaf_hash_of(other, SALT, PSALT) != leaf_hash_of(rec, SALT, PSALT)
    assert leaf_hash_of(rec, SALT, bytes(32)) != leaf_hash_of(rec, SALT, PSALT)
    # without personal data the personal salt plays no part
    pay = parse_record({k: v for k, v in valid("payment").items() if k != "personal"})
    assert leaf_hash_of(pay, SALT, PSALT) == leaf_hash_of(pay, SALT, bytes(32))


def test_leaf_depends_on_salt_and_every_field() -> None:
    rec = parse_record(valid("payment"))
    base = leaf_hash_of(rec, SALT, PSALT)
    assert leaf_hash_of(rec, bytes(32), PSALT) != base
    for field, value in [("amount", 25401), ("ts", "2026-11-11T20:00:01Z"), ("method", "card")]:
        assert leaf_hash_of(parse_record({**valid("payment"), field: value}), SALT, PSALT) != base


def test_salts_must_be_32_bytes() -> None:
    rec = parse_record(valid("order"))
    for salt, psalt in [(b"short", PSALT), (SALT, b"short"), (SALT.hex(), PSALT)]:
        with pytest.raises(ValueError):
            leaf_bytes(rec, salt, psalt)  # type: ignore[arg-type]


def test_unvalidated_record_uses_the_strict_encoder() -> None:
    rec = parse_record(valid("review"))
    hand_made = Record(rec.id, rec.kind, rec.order_id, rec.merchant_id, rec.ts, rec.public, rec.personal)
    assert hand_made == rec and not hand_made.validated and rec.validated
    assert leaf_bytes(hand_made, SALT, PSALT) == leaf_bytes(rec, SALT, PSALT)


def test_fast_writers_match_rfc8785_on_a_simulated_sale() -> None:
    master = MasterSecret(bytes(32))
    for obj in generate_flash_sale(11, 600, 4, "2026-11-11T20:00:00Z"):
        rec = parse_line(as_line(obj), source="sim", line_no=1)
        salt, psalt = master.salts(rec.order_id, rec.id)
        assert leaf_bytes(rec, salt, psalt) == rfc8785.dumps(leaf_rule.committed(rec, salt, psalt))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_records(), st.randoms(use_true_random=False))
def test_valid_records_parse_and_their_leaf_is_jcs(obj: dict[str, Any], rnd: Any) -> None:
    keys = list(obj)
    rnd.shuffle(keys)  # the field order of the input does not matter
    shuffled = {k: obj[k] for k in keys}
    rec = parse_line(json.dumps(shuffled, ensure_ascii=rnd.random() < 0.5).encode(), source="h", line_no=1)
    assert rec == parse_record(obj)
    assert rec.to_json() == obj
    assert leaf_bytes(rec, SALT, PSALT) == rfc8785.dumps(leaf_rule.committed(rec, SALT, PSALT))


def _doc_block(name: str) -> str:
    """The body of the fenced block that follows the marker <!-- example:NAME --> in the doc."""
    text = DOC.read_text(encoding="utf-8")
    m = re.search(rf"<!-- example:{name} -->\s*```[a-z]*\n(.*?)\n```", text, re.S)
    assert m, f"docs/records.md has no example block {name!r}"
    return m.group(1)


def test_worked_example_in_the_doc() -> None:
    """Recompute every value of the doc's worked example from the doc's own inputs."""
    master = bytes.fromhex(_doc_block("master-secret"))
    line = _doc_block("record").encode("utf-8")
    rec = parse_line(line, source="doc", line_no=1)
    ms = MasterSecret(master)
    order_key = ms.order_key(rec.order_id)
    salt, psalt = ms.salts(rec.order_id, rec.id)
    assert _doc_block("order-key") == order_key.hex()
    assert _doc_block("record-salt") == salt.hex()
    assert _doc_block("personal-salt") == psalt.hex()
    assert _doc_block("personal-jcs").encode("utf-8") == rfc8785.dumps(rec.personal)
    assert _doc_block("personal-commitment") == personal_commitment(rec.personal or {}, psalt)
    assert _doc_block("leaf-bytes").encode("utf-8") == leaf_bytes(rec, salt, psalt)
    assert _doc_block("leaf-hash") == leaf_hash_of(rec, salt, psalt).hex()


def test_worked_example_by_an_independent_verifier() -> None:
    """Follow the doc's recipe with only hashlib, hmac and rfc8785 (no ledger code)."""
    import hmac

    master = bytes.fromhex(_doc_block("master-secret"))
    obj = json.loads(_doc_block("record"))
    prk = hmac.digest(b"evidence-escrow/v1", master, "sha256")
    order_key = hmac.digest(prk, b"order:" + obj["order_id"].encode() + b"\x01", "sha256")
    salt = hmac.digest(order_key, b"record:" + obj["id"].encode() + b"\x01", "sha256")
    psalt = hmac.digest(order_key, b"personal:" + obj["id"].encode() + b"\x01", "sha256")
    personal = obj.pop("personal")
    committed = {**obj, "salt": salt.hex()}
    committed["personal_commitment"] = hashlib.sha256(psalt + rfc8785.dumps(personal)).hexdigest()
    leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(committed)).hexdigest()
    assert leaf == _doc_block("leaf-hash")


@pytest.mark.parametrize("kind", KINDS)
def test_each_fast_writer_handles_exactly_its_kinds_fields(kind: str) -> None:
    """A field added to a schema but not to its writer would be silently dropped from the leaf."""
    assert WRITER_FIELDS[kind] == schema_fields(kind)
