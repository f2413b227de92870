"""The audit report document: written and read back without loss, and read strictly.

The reports are real: the history of tests/integration/test_audit.py (seven orders of one
merchant in two tokens, released, pledged, returned, refunded, disputed, one delivery
after the anchor) on a private embedded chain, audited clean and after tampering, with
and without an evidence log. Both directions of the serialisation are checked on each:
report -> JSON -> report is the same report, JSON -> report -> JSON the same text. Then
the reader is attacked with documents that are almost a report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from ledger._internal import jsondoc
from ledger.chain import rpc
from ledger.dev.flash_sale import generate_flash_sale
from ledger.dev.sandbox import make_escrow_env
from ledger.errors import AuditError
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store
from ledger.investigate import audit_model
from ledger.investigate.audit import Auditor, render_html, render_json, text_report
from ledger.investigate.audit_model import (
    FAILED,
    NOT_APPLICABLE,
    UNANCHORED,
    VERIFIED,
    AuditReport,
    Counts,
    MerchantReport,
    OrderReport,
    RecordEntry,
)
from tests.integration.test_audit import START, build_history

Report = OrderReport | MerchantReport


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Report]:
    """Real reports by name, made once on a chain of their own."""
    tmp = tmp_path_factory.mktemp("audit-model")
    env = make_escrow_env(rpc.embedded())
    sale = generate_flash_sale(seed=41, orders=12, merchants=1, start=START)  # as test_audit.py
    orders = [{k: v for k, v in r.items() if k != "ts"} for r in sale if r["kind"] == "order"]
    store = Store(tmp / "ev.sqlite3", MasterSecret.generate())
    h = build_history(env, store, tmp, orders)
    unanchored = Auditor(store, env.client, log_address=None)
    out: dict[str, Report] = {
        "order": h.auditor.order_report(h.ids["C"]),
        "order-late-delivery": h.auditor.order_report(h.ids["F"]),
        "order-no-log": unanchored.order_report(h.ids["A"]),
        "merchant": h.auditor.merchant_report(h.merchant_id),
        "merchant-empty-window": h.auditor.merchant_report(h.merchant_id,
                                                           since="2099-01-01T00:00:00Z"),
    }
    # C's return record filed under another merchant (the record and the return request
    # citing it fail); B's shipment noted in the store with a transaction that never was
    # (a cross-check flag, of no timeline entry).
    store.db.execute("UPDATE records SET merchant_id = 'M-OTHER' WHERE id = ?",
                     (f"{h.ids['C']}:return",))
    store.db.execute("UPDATE escrow_actions SET tx_hash = ? WHERE order_id = ? AND action = 'ship'",
                     (b"\x02" * 32, h.ids["B"]))
    out["order-tampered"] = h.auditor.order_report(h.ids["C"])
    out["order-cross-checked"] = h.auditor.order_report(h.ids["B"])
    out["merchant-tampered"] = h.auditor.merchant_report(h.merchant_id)
    store.close()
    return out


ALL = ["order", "order-late-delivery", "order-no-log", "order-tampered", "order-cross-checked",
       "merchant", "merchant-empty-window", "merchant-tampered"]


def test_the_fixture_covers_every_kind_of_entry_and_verdict(reports: dict[str, Report]) -> None:
    """Otherwise the round trips below would prove less than they claim."""
    statuses = {e.status for r in reports.values() for e in r.timeline}
    assert statuses == {VERIFIED, UNANCHORED, FAILED, NOT_APPLICABLE}
    assert {r.ok for r in reports.values()} == {True, False}
    assert reports["order-no-log"].anchor is None and reports["order"].anchor is not None
    merchant = reports["merchant"]
    assert isinstance(merchant, MerchantReport)
    assert len(merchant.figures.settled_sales.by_token) == 2  # ETH and the stablecoin
    assert merchant.figures.disputes.items and merchant.figures.pledged_receivables.items
    entries = {f.entry is None for f in reports["merchant-tampered"].flags}
    assert entries == {True, False}  # flags of timeline entries, and of cross-checks


@pytest.mark.parametrize("name", ALL)
def test_report_to_json_and_back_is_the_same_report(reports: dict[str, Report], name: str) -> None:
    report = reports[name]
    parsed = AuditReport.from_json(report.to_json(), f"{name}.json")
    assert type(parsed) is type(report)
    assert parsed == report


@pytest.mark.parametrize("name", ALL)
def test_json_to_report_and_back_is_the_same_text(reports: dict[str, Report], name: str) -> None:
    text = render_json(reports[name])
    assert text == reports[name].to_json()
    assert AuditReport.from_json(text, f"{name}.json").to_json() == text
    assert AuditReport.from_json(text.encode("utf-8"), f"{name}.json").to_json() == text


def test_the_json_is_the_documented_document(reports: dict[str, Report]) -> None:
    """Keys sorted, two-space indent, UTF-8 as is, a final newline, every key always
    present (null included): what docs/audit.md shows and `--json` printed before."""
    for name in ALL:
        text = reports[name].to_json()
        doc = json.loads(text)
        assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        assert doc["format"] == "evidence-escrow/audit/v1"
        assert list(doc["counts"]) == sorted(["verified", "unanchored", "failed", "n/a"])
        for entry in doc["timeline"]:
            common = {"n", "type", "time", "ts", "kind", "order_id", "summary", "status", "reasons"}
            own = ({"id", "index", "leaf"} if entry["type"] == "record" else
                   {"tx_hash", "block_number", "log_index", "args", "evidence", "evidence_record"})
            assert set(entry) == common | own, (name, entry)
    assert json.loads(reports["order-no-log"].to_json())["anchor"] is None
    order = json.loads(reports["order"].to_json())
    assert set(order) == {"format", "report", "generated_at", "chain", "anchor", "order",
                          "timeline", "counts", "flags", "ok", "steps"}
    late = json.loads(reports["order-late-delivery"].to_json())["timeline"]
    assert any(e["kind"] == "OrderPledged" and e["evidence"] is e["evidence_record"] is None
               for e in late)
    merchant = json.loads(reports["merchant"].to_json())
    assert set(merchant) - set(order) == {"merchant", "figures", "orders"}
    assert set(order) - set(merchant) == {"order", "steps"}
    assert "order" not in merchant
    assert None in [i["coverage"] for i in merchant["figures"]["deposit_coverage"]["items"]]


def test_no_field_of_the_document_can_be_left_out() -> None:
    """`DocumentStruct` omits a field left at its default when writing: a report field with
    a default would vanish from the JSON whenever it held that value (null, 0, [])."""
    structs = [v for v in vars(audit_model).values() if isinstance(v, type)
               and issubclass(v, msgspec.Struct) and v.__module__ == audit_model.__name__]
    assert len(structs) > 30
    assert [f"{s.__name__}.{f.name}" for s in structs for f in msgspec.structs.fields(s)
            if not f.required] == []


def test_a_parsed_report_renders_as_the_report_it_was(reports: dict[str, Report]) -> None:
    for name in ("order", "order-tampered", "order-cross-checked", "order-no-log"):
        report = reports[name]
        parsed = AuditReport.from_json(report.to_json(), name)
        assert text_report(parsed) == text_report(report)
        assert render_html(parsed) == render_html(report)


def test_counts_are_per_status_in_a_fixed_order() -> None:
    counts = Counts.of([FAILED, VERIFIED, FAILED, NOT_APPLICABLE])
    assert counts.items() == [(VERIFIED, 1), (UNANCHORED, 0), (FAILED, 2), (NOT_APPLICABLE, 1)]
    assert json.loads(jsondoc.dumps(counts)) == {"verified": 1, "unanchored": 0, "failed": 2,
                                                 "n/a": 1}
    assert Counts.of([]).items() == [(s, 0) for s in (VERIFIED, UNANCHORED, FAILED, NOT_APPLICABLE)]


# --------------------------------------------------------------------------- refused documents


def _edit(report: Report, change: Callable[[dict[str, Any]], None]) -> str:
    doc = json.loads(report.to_json())
    change(doc)
    return json.dumps(doc, indent=2)


def _first_record(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = next(e for e in doc["timeline"] if e["type"] == "record")
    return entry


def _first_event(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = next(e for e in doc["timeline"] if e["type"] == "event")
    return entry


def _record_path(report: Report) -> str:
    n = next(e.n for e in report.timeline if isinstance(e, RecordEntry))
    return f"$.timeline[{n}]"


CHANGES: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    ("unknown top-level field", lambda d: d.update(verdict="trust me"), ["unknown field `verdict`"]),
    ("unknown field in an entry", lambda d: _first_record(d).update(note="x"),
     ["unknown field `note`", "{record}"]),
    ("unknown field in a block", lambda d: d["chain"].update(rpc="http://x"),
     ["unknown field `rpc`", "$.chain"]),
    ("merchant figures in an order report", lambda d: d.update(figures={}),
     ["unknown field `figures`"]),
    ("a missing field", lambda d: d.pop("flags"), ["missing required field `flags`"]),
    ("a missing null field", lambda d: _first_event(d).pop("evidence_record"),
     ["missing required field `evidence_record`"]),
    ("an index as text", lambda d: _first_record(d).update(index="3"),
     ["Expected `int`, got `str`", "{record}.index"]),
    ("a boolean for a number", lambda d: _first_record(d).update(n=True),
     ["Expected `int`, got `bool`", "{record}.n"]),
    ("ok as text", lambda d: d.update(ok="true"), ["Expected `bool`, got `str`", "$.ok"]),
    ("a null chain id", lambda d: d["chain"].update(chain_id=None),
     ["Expected `int`, got `null`", "$.chain.chain_id"]),
    ("an unknown status", lambda d: _first_record(d).update(status="fine"),
     ["Invalid enum value 'fine'", "{record}.status"]),
    ("an unknown entry type", lambda d: _first_record(d).update(type="note"),
     ["Invalid value 'note'", "type"]),
    ("an unknown report kind", lambda d: d.update(report="lender"), ["Invalid value 'lender'"]),
    ("counts with a status missing", lambda d: d["counts"].pop("n/a"),
     ["missing required field `n/a`", "$.counts"]),
    ("another format", lambda d: d.update(format="evidence-escrow/audit/v2"),
     ["format must be 'evidence-escrow/audit/v1'"]),
    ("not an object", lambda d: d.clear(), ["format must be"]),
]


@pytest.mark.parametrize(("change", "needles"), [(c, n) for _, c, n in CHANGES],
                         ids=[name for name, _, _ in CHANGES])
def test_a_malformed_report_is_refused_naming_the_field(
        reports: dict[str, Report], change: Callable[[dict[str, Any]], None],
        needles: list[str]) -> None:
    report = reports["order"]
    with pytest.raises(AuditError) as exc:
        AuditReport.from_json(_edit(report, change), "edited.json")
    message = str(exc.value)
    assert message.startswith("edited.json")
    for needle in needles:
        assert needle.format(record=_record_path(report)) in message, message


def test_a_duplicate_key_is_refused() -> None:
    """A reader that kept the last "ok" would show a failed report as passed."""
    with pytest.raises(AuditError, match="report.json: duplicate key 'ok'"):
        AuditReport.from_json('{"format": "evidence-escrow/audit/v1", "ok": false, "ok": true}',
                              "report.json")


def test_a_duplicate_key_deep_in_a_real_report_is_refused(reports: dict[str, Report]) -> None:
    text = reports["merchant"].to_json()
    forged = text.replace('"status": "verified",', '"status": "failed", "status": "verified",', 1)
    assert forged != text
    with pytest.raises(AuditError, match="duplicate key 'status'"):
        AuditReport.from_json(forged, "merchant.json")


@pytest.mark.parametrize("text", ["", "not json", '{"format": "evidence-escrow/audit/v1", '
                                  '"timeline": [{"time": NaN}]}', "[]", "null"])
def test_text_that_is_no_report_is_refused(text: str) -> None:
    with pytest.raises(AuditError, match="^x.json"):
        AuditReport.from_json(text, "x.json")


def test_an_erased_record_is_summarised_as_erased() -> None:
    from ledger.evidence.store import StoredRecord

    ts = "2026-11-11T00:00:00Z"
    kept = {"id": "O1:pay", "kind": "payment", "order_id": "O1", "merchant_id": "M1", "ts": ts}
    erased = StoredRecord(3, "O1:pay", "payment", "O1", "M1", ts, kept, None, b"\0" * 32, None,
                          ("2026-12-01T09:00:00Z", "O1:erasure"))
    assert audit_model.record_summary(erased) == "payment, erased on 2026-12-01T09:00:00Z"
