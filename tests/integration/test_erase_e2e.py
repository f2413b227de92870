"""`ledger erase` end to end through the command line, on the embedded chain: ingest, anchor, export
both orders, erase one, anchor, export both again, verify every bundle against the chain and the
trust file. The erased order verifies as erased, the other as before, and the bundles exported
before the erasure still verify (what was disclosed cannot be recalled).

The commands run in this process (`ledger.cli.main.main`) with the embedded chain standing in for
a node (`connect` answers with it), as `ledger --rpc URL` would on a real one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from ledger.chain.rpc import Chain
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.evidence.master_secret import MasterSecret
from tests.integration.test_bad_input import ledger, ok

ORDERS = 6


@pytest.fixture
def embedded(_embedded_chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Chain]:
    chain = _embedded_chain
    snap = chain.snapshot()
    saved = {k: getattr(chain, k) for k in ("confirmations", "timeout", "max_fee", "lock_dir", "progress")}
    monkeypatch.setenv("LEDGER_MASTER_SECRET", MasterSecret.generate_hex())
    monkeypatch.setenv("LEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEDGER_RPC", "http://embedded.invalid")  # `connect` answers with the chain
    for var in ("LEDGER_PRIVATE_KEY", "LEDGER_KEYSTORE", "LEDGER_DATA_KEY",
                "LEDGER_MASTER_SECRET_FILE"):
        monkeypatch.delenv(var, raising=False)
    connect = mock.Mock(side_effect=lambda *a, **k: chain)
    with mock.patch("ledger.cli._common.connect", connect), mock.patch("ledger.cli.log.connect", connect):
        try:
            yield chain
        finally:
            chain.revert_to(snap)
            for k, v in saved.items():
                setattr(chain, k, v)


def _verify(bundle: Path, trust: str) -> tuple[int, dict[str, Any]]:
    status, out, err = ledger("verify", str(bundle), "--trust", trust, "--json")
    assert "Traceback" not in err
    return status, json.loads(out)


def test_erase_anchor_export_verify_through_the_cli(embedded: Chain, tmp_path: Path) -> None:
    sale = generate_flash_sale(seed=13, orders=ORDERS, merchants=1, start="2026-11-11T12:00:00Z")
    (tmp_path / "sale.jsonl").write_bytes(to_jsonl(sale))
    victim = sale[0]["order_id"]
    other = next(o["order_id"] for o in sale if o["order_id"] != victim)
    deployed = ok("deploy", "--log-only")
    trust = str(deployed["trust_root"])
    ok("ingest", str(tmp_path / "sale.jsonl"))
    ok("anchor")
    for oid in (victim, other):
        ok("export", "--order", oid, "-o", str(tmp_path / f"before-{oid}.json"))

    done = ok("erase", "--order", victim, "--reason", "GDPR art. 17 request 7", "--operator", "dpo")
    assert not done["already_erased"] and done["next"] == "ledger anchor" and done["wal_emptied"]
    assert done["key_version"] == 2 and done["salts_recoverable"] is False
    status, _, err = ledger("export", "--order", victim, "-o", str(tmp_path / "early.json"))
    assert status == 2 and "is not anchored yet" in err and "run `ledger anchor`" in err
    anchored = ok("anchor")
    assert anchored["anchored"] and anchored["size"] == done["erasure_index"] + 1
    for oid in (victim, other):
        ok("export", "--order", oid, "-o", str(tmp_path / f"after-{oid}.json"))

    status, verdict = _verify(tmp_path / f"after-{victim}.json", trust)
    # the EvidenceLog anchors heads without an index root for now: a v1 bundle, each entry with its path
    assert (status, verdict["status"]) == (0, "verified")
    assert [(r["index"], r["id"], r["erased"]) for r in verdict["records"][:-1]] == [
        (e["index"], e["id"], done["erased_at"]) for e in done["erased"]]
    assert verdict["records"][-1]["id"] == done["erasure_record"] and verdict["records"][-1]["erased"] is None
    status, text, _ = ledger("verify", str(tmp_path / f"after-{victim}.json"), "--trust", trust)
    first = done["erased"][0]
    assert status == 0 and f"ERASED leaf {first['index']} {first['id']}: erased on" in text

    status, verdict = _verify(tmp_path / f"after-{other}.json", trust)
    assert (status, verdict["status"]) == (0, "verified")
    before = json.loads((tmp_path / f"before-{other}.json").read_text())
    after = json.loads((tmp_path / f"after-{other}.json").read_text())
    def content(doc: dict[str, Any]) -> list[dict[str, Any]]:  # the paths grow with the tree
        return [{k: v for k, v in r.items() if k != "inclusion_proof"} for r in doc["records"]]

    assert content(after) == content(before) and after["order_keys"] == before["order_keys"]
    merchant = tmp_path / "merchant.json"  # the sale's days only: the erasure record rides along
    ok("export", "--merchant", sale[0]["merchant_id"], "--until", "2026-11-30T00:00:00Z", "-o", str(merchant))
    erasures = json.loads(merchant.read_text())["erasures"]
    assert [e["record"]["id"] for e in erasures] == [done["erasure_record"]]
    status, verdict = _verify(merchant, trust)
    assert (status, verdict["status"]) == (0, "verified")
    assert sum(1 for r in verdict["records"] if r["erased"]) == len(done["erased"])
    for oid in (victim, other):  # an earlier head, still anchored: the earlier bundles hold
        status, verdict = _verify(tmp_path / f"before-{oid}.json", trust)
        assert (status, verdict["status"]) == (0, "verified")

    again = ok("erase", "--order", victim, "--reason", "again")
    assert again["already_erased"] and again["erasure_index"] == done["erasure_index"]
    status, _, err = ledger("ingest", str(tmp_path / "sale.jsonl"))
    assert status == 2 and f"order '{victim}' was erased on {done['erased_at']}" in err
    assert ok("status")["log_size"] == done["erasure_index"] + 1
    status, _, err = ledger("erase", "--order", "NOPE", "--reason", "r")
    assert status == 2 and "'NOPE' has no records in the log" in err and "Traceback" not in err
