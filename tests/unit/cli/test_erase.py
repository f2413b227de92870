"""`ledger erase` on a data dir (no chain needed): what it says, in text and JSON, and its refusals
(exit 2, one message, no traceback, nothing written)."""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledger.cli.main import main
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store

SECRET = "ab" * 32


def ledger(home: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(["--data-dir", str(home), *args])
        except SystemExit as done:
            status = done.code if isinstance(done.code, int) else 1
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEDGER_MASTER_SECRET", SECRET)
    monkeypatch.delenv("LEDGER_MASTER_SECRET_FILE", raising=False)
    monkeypatch.delenv("LEDGER_DATA_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    sale = generate_flash_sale(seed=4, orders=3, merchants=1, start="2026-11-11T12:00:00Z")
    (tmp_path / "sale.jsonl").write_bytes(to_jsonl(sale))
    assert ledger(tmp_path / "home", "ingest", str(tmp_path / "sale.jsonl"))[0] == 0
    return tmp_path / "home"


def _order(home: Path, n: int = 0) -> str:
    db = sqlite3.connect(home / "evidence.sqlite3")
    oid = db.execute("SELECT DISTINCT order_id FROM records ORDER BY order_id").fetchall()[n][0]
    db.close()
    return str(oid)


def _dump(home: Path) -> list[Any]:
    db = sqlite3.connect(home / "evidence.sqlite3")
    rows = [db.execute(f"SELECT * FROM {t}").fetchall() for t in ("records", "order_keys", "batches")]
    db.close()
    return rows


def test_erase_says_what_it_did_and_what_to_do_next(home: Path) -> None:
    oid = _order(home)
    status, out, err = ledger(home, "erase", "--order", oid, "--reason", "GDPR art. 17 request 9")
    assert status == 0 and err == ""
    text = " ".join(out.split())
    assert f"erased order {oid}: " in text and "record(s) lost their content (leaves 0, 1" in text
    assert f"erasure record {oid}:erasure is leaf" in text and "run `ledger anchor` to anchor it" in text
    assert "its order key (version 2, random) is destroyed" in text
    assert "the store file was rebuilt (VACUUM) and its WAL emptied" in text
    status, out, _ = ledger(home, "erase", "--order", oid, "--reason", "again")
    assert status == 0 and f"order {oid} was already erased on" in " ".join(out.split())


def test_the_json_names_everything_and_the_operator_defaults_to_the_login(home: Path) -> None:
    oid = _order(home)
    status, out, _ = ledger(home, "erase", "--order", oid, "--reason", "r", "--json")
    doc = json.loads(out)
    assert status == 0 and set(doc) == {
        "order_id", "erased_at", "erasure_record", "erasure_index", "already_erased", "erased", "key_version",
        "salts_recoverable", "wal_emptied", "not_forgotten", "next"}
    with Store(home / "evidence.sqlite3", MasterSecret.from_hex(SECRET)) as store:
        record = store.record_by_id(doc["erasure_record"])
    assert record is not None and record.public["operator"] == getpass.getuser()
    assert [e["index"] for e in record.public["erased"]] == [e["index"] for e in doc["erased"]]


def test_a_version_1_order_is_said_to_keep_recoverable_salts(home: Path) -> None:
    oid = _order(home, 1)
    db = sqlite3.connect(home / "evidence.sqlite3")
    db.execute("UPDATE order_keys SET version = 1, wrapped = NULL WHERE order_id = ?", (oid,))  # as migrated
    db.commit()
    db.close()
    status, out, _ = ledger(home, "erase", "--order", oid, "--reason", "r", "--operator", "dpo")
    assert status == 0
    assert "its order key was version 1 (derived from the master secret): whoever holds the master secret" \
        in " ".join(out.split())


@pytest.mark.parametrize("args,message", [
    (["--order", "NOPE", "--reason", "r"], "order 'NOPE' has no records in the log: nothing to erase"),
    (["--order", "{order}", "--reason", ""], "field 'reason': must not be empty"),
    (["--order", "{order}", "--reason", "r", "--operator", "x" * 201], "field 'operator': too long"),
])
def test_a_refusal_exits_2_naming_why_and_writes_nothing(home: Path, args: list[str], message: str) -> None:
    before = _dump(home)
    args = [a.replace("{order}", _order(home)) for a in args]
    status, out, err = ledger(home, "erase", *args)
    assert status == 2 and message in err and "Traceback" not in err + out
    assert _dump(home) == before
    status, out, _ = ledger(home, "erase", *args, "--json")
    assert status == 2 and message in json.loads(out)["message"]


def test_missing_arguments_are_argparse_errors(home: Path) -> None:
    status, _, err = ledger(home, "erase", "--order", "x")
    assert status == 2 and "--reason" in err
