"""Bad input anywhere: exit 2, one clear message, no traceback, nothing half-written.

Every case runs one `ledger` command against one data dir and one anvil node that this
module sets up (an evidence log with anchored records, an escrow with a funded order and
a shipped one), and asserts that the command exits 2, that its message names the
argument, record or field and says why, that there is no traceback and no secret in it,
and that the store (records, batches, anchors, escrow actions), the chain (its block
number: every transaction mines a block) and the files (the data dir, the inputs, no
output written) are exactly as before.

The commands run in this process (`ledger.cli.main.main`, as `python -m ledger` does), so
that more than a hundred cases take seconds; a few also run as real processes, to show
what a user sees there.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from ledger.chain.anvil import AnvilProcess
from ledger.cli.main import main
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.evidence.master_secret import MasterSecret

START = "2026-11-11T12:00:00Z"
ESCROW_DAY = "2026-11-12T12:00:00Z"
ETH = 10**18
KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"  # a literal key
MNEMONIC = "abandon " * 11 + "about"
CASES_DIR = Path(__file__).resolve().parents[1] / "cases"
CASE = str(CASES_DIR / "12-timeout-release-no-dispute.json")
SECRETS = (KEY[2:], "abandon", "not-a-key-at-all")


def ledger(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """Run `ledger ARGS` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin))
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            mock.patch.object(sys, "stdin", fake_stdin):
        try:
            status = main(list(args))
        except SystemExit as done:  # argparse
            status = done.code if isinstance(done.code, int) else 1
    return status, out.getvalue(), err.getvalue()


def ok(*args: str) -> dict[str, Any]:
    status, out, err = ledger(*args, "--json")
    assert status == 0, (args, out, err)
    return dict(json.loads(out))


@dataclass
class World:
    """The module's node, data dir and input files, and what the cases refer to."""

    node: AnvilProcess
    home: Path
    work: Path
    names: dict[str, str]

    def state(self) -> dict[str, Any]:
        """Everything a refused command must leave as it was."""
        db = sqlite3.connect(f"file:{self.home / 'evidence.sqlite3'}?mode=ro", uri=True)
        try:
            store = {
                "records": db.execute("SELECT COUNT(*), MAX(idx) FROM records").fetchone(),
                "batches": db.execute("SELECT COUNT(*) FROM batches").fetchone(),
                "anchors": db.execute("SELECT id, status, size FROM anchors ORDER BY id").fetchall(),
                "actions": db.execute("SELECT id, status, action FROM escrow_actions ORDER BY id").fetchall(),
            }
        finally:
            db.close()
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
        request = urllib.request.Request(self.node.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            block = json.loads(answer.read())["result"]
        return {"store": store, "block": block, "files": _files(self.home, self.work)}


def _files(*dirs: Path) -> dict[str, str]:
    """Every file under `dirs` and a hash of its bytes; the store by name only (SQLite may
    checkpoint its journal into it on close without changing what it holds); not the per-key
    nonce lock files (empty: a command takes a key's lock before it simulates its call)."""
    out = {}
    for d in dirs:
        for p in sorted(d.rglob("*")):
            if p.suffix == ".lock" and p.parent.name == "locks" and p.stat().st_size == 0:
                continue
            if p.is_file() and not p.name.startswith("evidence.sqlite3"):
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif p.name == "evidence.sqlite3":
                out[str(p)] = "store"
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("bad-input")
    home, work = base / "home", base / "work"
    work.mkdir()
    env = {"LEDGER_HOME": str(home), "LEDGER_MASTER_SECRET": MasterSecret.generate_hex(),
           "COLUMNS": "200", "NOT_A_KEY": "not-a-key-at-all"}
    with AnvilProcess() as node, pytest.MonkeyPatch.context() as mp:
        for k in ("LEDGER_PRIVATE_KEY", "LEDGER_KEYSTORE", "LEDGER_MASTER_SECRET_FILE", "LEDGER_DATA_KEY"):
            mp.delenv(k, raising=False)
        for k, v in {**env, "LEDGER_RPC": node.url}.items():
            mp.setenv(k, v)
        yield World(node, home, work, _set_up(work))


def _set_up(work: Path) -> dict[str, str]:  # long function: the module's whole data set, in order
    sale = generate_flash_sale(seed=41, orders=6, merchants=1, start=START)
    (work / "sale.jsonl").write_bytes(to_jsonl(sale))
    ok("deploy")
    ok("ingest", str(work / "sale.jsonl"))
    ok("carrier", "add", "dev:5")
    ok("deposit", "add", "--merchant", "dev:1", "--amount", str(10 * ETH))
    orders = [dict(r) for r in generate_flash_sale(seed=42, orders=4, merchants=1, start=ESCROW_DAY)
              if r["kind"] == "order"]
    for o in orders:
        o.pop("ts")
        (work / f"{o['order_id']}.json").write_text(json.dumps(o, ensure_ascii=False))
    shipped, funded, spare = orders[0]["order_id"], orders[1]["order_id"], orders[2]
    for oid in (shipped, funded):
        ok("order", "open", "--record", str(work / f"{oid}.json"), "--merchant", "dev:1",
           "--buyer", "dev:3", "--price", str(ETH // 10))
    ok("order", "ship", shipped, "--carrier", "dev:5", "--carrier-code", "SF", "--tracking", "SF4100000001")
    ok("anchor")
    ok("export", "--order", shipped, "-o", str(work / "bundle.json"))
    bundle = json.loads((work / "bundle.json").read_text())

    def write(name: str, data: bytes | str) -> None:
        (work / name).write_bytes(data.encode() if isinstance(data, str) else data)

    def jsonl(*objs: dict[str, Any]) -> bytes:
        return b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objs)

    pay = next(r for r in sale if r["kind"] == "payment")
    order = next(r for r in sale if r["kind"] == "order")
    review = next(r for r in sale if r["kind"] == "review")
    fresh = dict(pay, id="X1:pay", order_id="X1")
    write("conflict.jsonl", jsonl(dict(pay, amount=pay["amount"] + 1)))
    write("fresh.jsonl", jsonl(fresh))
    write("fresh-other.jsonl", jsonl(dict(fresh, amount=fresh["amount"] + 1)))
    write("other-merchant.jsonl", jsonl(dict(pay, id=pay["order_id"] + ":pay2", merchant_id="M-OTHER")))
    write("fresh-other-merchant.jsonl", jsonl(dict(fresh, id="X1:pay2", merchant_id="M-OTHER")))
    write("two-merchants.jsonl", jsonl(dict(fresh, id="X9:pay", order_id="X9"),
                                       dict(fresh, id="X9:pay2", order_id="X9", merchant_id="M-OTHER")))
    write("float.jsonl", jsonl(dict(fresh, amount=12.5)))
    write("kind.jsonl", jsonl({"id": "x1", "kind": "teleport"}))
    write("late.jsonl", jsonl(dict(fresh, ts="2262-04-11T23:47:16.854775808Z")))
    write("y9999.jsonl", jsonl(dict(fresh, ts="9999-12-31T23:59:59Z")))
    write("offset.jsonl", jsonl(dict(fresh, ts="2026-11-11T20:00:00+08:00")))
    title = dict(order["items"][0], title="tea\x7f")
    write("del.jsonl", jsonl(dict(order, id="X2:order", order_id="X2", items=[title, *order["items"][1:]])))
    write("nel.jsonl", jsonl(dict(fresh, personal={"payer_name": "Wang\x85Li"})))
    write("c1.jsonl", jsonl(dict(review, id="X3:review", order_id="X3", text="good\x9f")))
    write("long.jsonl", jsonl(dict(review, id="X4:review", text="x" * 70_000)))
    write("json.jsonl", b'{"id": "X5:pay", "kind": "payment",\n')
    write("utf8.jsonl", json.dumps(fresh).encode()[:-1] + b', "x": "\xff"}\n')
    write("bom.jsonl", b"\xef\xbb\xbf" + jsonl(fresh))
    write("null.jsonl", jsonl(dict(fresh, payment_ref=None)))
    write("dupkey.jsonl", json.dumps(fresh).encode()[:-1] + b', "amount": 1}\n')
    write("unknown.jsonl", jsonl(dict(fresh, colour="red")))
    write("salt.jsonl", jsonl(dict(fresh, salt="00")))
    write("total.jsonl", jsonl(dict(order, id="X6:order", order_id="X6", total=order["total"] + 1)))
    write("currency.jsonl", jsonl(dict(fresh, currency="XXX")))
    write("array.jsonl", b"[1, 2]\n")
    write("dupid.jsonl", jsonl(fresh, dict(fresh, amount=fresh["amount"] + 1)))
    write("badid.jsonl", jsonl(dict(fresh, id="X 7")))
    write("good-then-bad.jsonl", jsonl(dict(fresh, id="X8:pay", order_id="X8")))
    write("empty.jsonl", b"")
    write("erasure.jsonl", jsonl({"id": f"{shipped}:erasure", "kind": "erasure", "order_id": shipped,
                                  "merchant_id": order["merchant_id"], "ts": "2026-12-01T00:00:00Z",
                                  "reason": "r", "operator": "o", "key_version": 2,
                                  "erased": [{"index": 0, "id": f"{shipped}:order", "leaf": "00" * 32}]}))
    write("not-json.json", b"{not json")
    write("array.json", b"[]")
    write("payment.json", json.dumps(dict(spare, kind="payment")))
    write("renamed.json", json.dumps(dict(spare, id="NEW-1:order")))
    write("taken.json", json.dumps(dict(spare, order_id=shipped, id=f"{shipped}:order")))
    write("late-order.json", json.dumps(dict(spare, ts="2300-01-01T00:00:00Z")))
    spare_title = dict(spare["items"][0], title="tea\x7f")
    write("del-order.json", json.dumps(dict(spare, items=[spare_title, *spare["items"][1:]])))
    write("statement-del.json", json.dumps({"kind": "return", "amount": 1, "currency": "CNY",
                                            "type": "refund_only", "reason": "other", "detail": "a\x7f"}))
    for name, change in (("unknown-field", lambda b: b.update(extra=1)),
                         ("format", lambda b: b.update(format="evidence-escrow/bundle/v0")),
                         ("no-records", lambda b: b.pop("records"))):
        copy = json.loads(json.dumps(bundle))
        change(copy)
        write(f"bundle-{name}.json", json.dumps(copy))
    write("bundle-dupkey.json", (work / "bundle.json").read_text().replace("{", '{"format": 1, ', 1))
    case = json.loads(Path(CASE).read_text())
    write("case-unknown-field.json", json.dumps({**case, "extra": 1}))
    write("case-format.json", json.dumps({**case, "format": "evidence-escrow/case/v0"}))
    return {"shipped": shipped, "funded": funded, "merchant": order["merchant_id"], "pay": pay["id"],
            "pay_order": pay["order_id"], "work": str(work), "case": CASE}


# ------------------------------------------------------------------------------ the cases

W = "{work}"
TOO_BIG = str(2**256)

#: (id, argv, stdin, substrings the message must contain)
CASES: list[tuple[str, list[str], bytes, list[str]]] = [
    # ingest: every file validated, then all stored in one transaction, or nothing
    ("ingest-missing", ["ingest", f"{W}/missing.jsonl"], b"", ["missing.jsonl", "No such file"]),
    ("ingest-directory", ["ingest", W], b"", ["cannot read it", "Is a directory"]),
    ("ingest-stdin-twice", ["ingest", "-", "-"], b"", ["'-' (stdin) can be given only once"]),
    ("ingest-conflict", ["ingest", f"{W}/conflict.jsonl"], b"",
     ["conflict.jsonl", "{pay}", "already in the log with different content", "differing: amount",
      "nothing was stored"]),
    ("ingest-good-then-conflict", ["ingest", f"{W}/fresh.jsonl", f"{W}/conflict.jsonl"], b"",
     ["{pay}", "differing: amount", "nothing was stored"]),
    ("ingest-files-disagree", ["ingest", f"{W}/fresh.jsonl", f"{W}/fresh-other.jsonl"], b"",
     ["fresh-other.jsonl", "'X1:pay'", "also in", "fresh.jsonl", "differing: amount"]),
    ("ingest-other-merchant", ["ingest", f"{W}/other-merchant.jsonl"], b"",
     ["other-merchant.jsonl: record '{pay_order}:pay2' field 'merchant_id'",
      "order '{pay_order}' belongs to merchant '{merchant}' (record '{pay_order}:order', leaf ",
      "from {work}/sale.jsonl); this record says 'M-OTHER'", "nothing was stored"]),
    ("ingest-files-two-merchants", ["ingest", f"{W}/fresh.jsonl", f"{W}/fresh-other-merchant.jsonl"], b"",
     ["fresh-other-merchant.jsonl: record 'X1:pay2' field 'merchant_id'",
      "order 'X1' belongs to merchant '{merchant}' (record 'X1:pay', from {work}/fresh.jsonl); this record "
      "says 'M-OTHER'", "nothing was stored"]),
    ("ingest-file-two-merchants", ["ingest", f"{W}/two-merchants.jsonl"], b"",
     ["record 'X9:pay2' field 'merchant_id'", "order 'X9' belongs to merchant '{merchant}' (record 'X9:pay'",
      "this record says 'M-OTHER'"]),
    ("ingest-other-merchant-json", ["ingest", f"{W}/other-merchant.jsonl", "--json"], b"",
     ['"field": "merchant_id"', '"record_id": "{pay_order}:pay2"', "this record says 'M-OTHER'"]),
    ("ingest-float", ["ingest", f"{W}/float.jsonl"], b"", ["float.jsonl:1", "field 'amount'", "float money"]),
    ("ingest-kind", ["ingest", f"{W}/kind.jsonl"], b"",
     ["kind.jsonl:1: record 'x1' field 'kind'", "unknown kind 'teleport'"]),
    ("ingest-after-2262", ["ingest", f"{W}/late.jsonl"], b"",
     ["field 'ts'", "after 2262-04-11T23:47:16.854775807Z"]),
    ("ingest-year-9999", ["ingest", f"{W}/y9999.jsonl"], b"", ["field 'ts'", "after 2262-04-11"]),
    ("ingest-offset", ["ingest", f"{W}/offset.jsonl"], b"", ["field 'ts'", "timezone offsets"]),
    ("ingest-del", ["ingest", f"{W}/del.jsonl"], b"", ["field 'items[0].title'", "U+007F"]),
    ("ingest-nel", ["ingest", f"{W}/nel.jsonl"], b"", ["field 'personal.payer_name'", "U+0085"]),
    ("ingest-c1", ["ingest", f"{W}/c1.jsonl"], b"", ["field 'text'", "U+009F"]),
    ("ingest-long-line", ["ingest", f"{W}/long.jsonl"], b"", ["'X4:review'", "the limit is 65536 bytes"]),
    ("ingest-bad-json", ["ingest", f"{W}/json.jsonl"], b"", ["json.jsonl:1", "invalid JSON"]),
    ("ingest-not-utf8", ["ingest", f"{W}/utf8.jsonl"], b"", ["utf8.jsonl:1", "not valid UTF-8"]),
    ("ingest-bom", ["ingest", f"{W}/bom.jsonl"], b"", ["byte order mark"]),
    ("ingest-null", ["ingest", f"{W}/null.jsonl"], b"", ["field 'payment_ref'", "null is not allowed"]),
    ("ingest-duplicate-key", ["ingest", f"{W}/dupkey.jsonl"], b"", ["field 'amount'", "duplicate key"]),
    ("ingest-unknown-field", ["ingest", f"{W}/unknown.jsonl"], b"", ["field 'colour'", "unknown field"]),
    ("ingest-reserved", ["ingest", f"{W}/salt.jsonl"], b"", ["field 'salt'", "reserved"]),
    ("ingest-total", ["ingest", f"{W}/total.jsonl"], b"", ["field 'total'", "does not equal"]),
    ("ingest-currency", ["ingest", f"{W}/currency.jsonl"], b"", ["field 'currency'", "'XXX'"]),
    ("ingest-array", ["ingest", f"{W}/array.jsonl"], b"", ["expected a JSON object, got array"]),
    ("ingest-duplicate-id", ["ingest", f"{W}/dupid.jsonl"], b"",
     ["dupid.jsonl:2", "duplicate record id with different content"]),
    ("ingest-bad-id", ["ingest", f"{W}/badid.jsonl"], b"", ["field 'id'", "invalid characters"]),
    ("ingest-good-and-bad", ["ingest", f"{W}/good-then-bad.jsonl", f"{W}/float.jsonl"], b"",
     ["float.jsonl:1", "nothing was stored"]),
    ("ingest-stdin", ["ingest", "-"], b'{"id": "S1", "kind": "payment"}\n',
     ["<stdin>:1", "field 'amount'", "missing required field"]),
    ("ingest-json", ["ingest", f"{W}/float.jsonl", "--json"], b"", ['"field": "amount"', "float money"]),
    # order open
    ("open-price-negative", ["order", "open", "--record", f"{W}/{{funded}}.json", "--merchant", "dev:1",
                             "--buyer", "dev:3", "--price", "-5"], b"",
     ["argument --price", "from 1 to 2^256 - 1", "'-5'"]),
    ("open-price-too-big", ["order", "open", "--record", f"{W}/renamed.json", "--merchant", "dev:1",
                            "--buyer", "dev:3", "--price", TOO_BIG], b"", ["argument --price", "2^256 - 1"]),
    ("open-price-zero", ["order", "open", "--record", f"{W}/renamed.json", "--merchant", "dev:1",
                         "--buyer", "dev:3", "--price", "0"], b"", ["argument --price", "from 1"]),
    ("open-price-text", ["order", "open", "--record", f"{W}/renamed.json", "--merchant", "dev:1",
                         "--buyer", "dev:3", "--price", "cheap"], b"", ["argument --price", "'cheap'"]),
    ("open-record-missing", ["order", "open", "--record", f"{W}/missing.json", "--merchant", "dev:1",
                             "--buyer", "dev:3", "--price", "5"], b"",
     ["--record", "missing.json", "No such file"]),
    ("open-record-not-json", ["order", "open", "--record", f"{W}/not-json.json", "--merchant", "dev:1",
                              "--buyer", "dev:3", "--price", "5"], b"", ["--record", "not a JSON record"]),
    ("open-record-array", ["order", "open", "--record", f"{W}/array.json", "--merchant", "dev:1",
                           "--buyer", "dev:3", "--price", "5"], b"",
     ["--record", "expected one JSON object"]),
    ("open-record-id", ["order", "open", "--record", f"{W}/renamed.json", "--merchant", "dev:1",
                        "--buyer", "dev:3", "--price", "5"], b"",
     ["'NEW-1:order'", "field 'id'", "change both order_id and id"]),
    ("open-order-id-taken", ["order", "open", "--record", f"{W}/taken.json", "--merchant", "dev:1",
                             "--buyer", "dev:3", "--price", "5"], b"",
     ["field 'order_id'", "already has records in the log", "another order's id"]),
    ("open-not-an-order", ["order", "open", "--record", f"{W}/payment.json", "--merchant", "dev:1",
                           "--buyer", "dev:3", "--price", "5"], b"",
     ["field", "unknown field for kind 'payment'"]),
    ("open-after-2262", ["order", "open", "--record", f"{W}/late-order.json", "--merchant", "dev:1",
                         "--buyer", "dev:3", "--price", "5"], b"", ["field 'ts'", "after 2262-04-11"]),
    ("open-del-in-title", ["order", "open", "--record", f"{W}/del-order.json", "--merchant", "dev:1",
                           "--buyer", "dev:3", "--price", "5"], b"", ["items[0].title", "U+007F"]),
    ("open-literal-key", ["order", "open", "--record", f"{W}/renamed.json", "--merchant", KEY,
                          "--buyer", "dev:3", "--price", "5"], b"",
     ["argument --merchant", "looks like a raw private key (66 characters)", "env:VAR"]),
    ("open-mnemonic", ["order", "open", "--record", f"{W}/renamed.json", "--merchant", "dev:1",
                       "--buyer", MNEMONIC, "--price", "5"], b"",
     ["argument --buyer", "mnemonic phrase (12 words)"]),
    ("open-mistyped-ref", ["order", "open", "--record", f"{W}/renamed.json", "--merchant", "dv:1",
                           "--buyer", "dev:3", "--price", "5"], b"",
     ["argument --merchant", "not a key reference (4 characters, prefix 'dv')"]),
    ("open-dev-100", ["order", "open", "--record", f"{W}/renamed.json", "--merchant", "dev:100",
                      "--buyer", "dev:3", "--price", "5"], b"", ["argument --merchant", "from 0 to 99"]),
    ("open-env-unset", ["order", "open", "--record", f"{W}/{{funded}}.json", "--merchant", "env:NO_SUCH_KEY",
                        "--buyer", "dev:3", "--price", "5"], b"", ["env:NO_SUCH_KEY", "is not set"]),
    ("open-env-not-a-key", ["order", "open", "--record", f"{W}/{{funded}}.json", "--merchant", "dev:1",
                            "--buyer", "env:NOT_A_KEY", "--price", "5"], b"",
     ["env:NOT_A_KEY", "does not hold a valid private key"]),
    ("open-token", ["order", "open", "--record", f"{W}/{{funded}}.json", "--merchant", "dev:1",
                    "--buyer", "dev:3", "--price", "5", "--token", "DOGE"], b"",
     ["argument --token", "must be ETH or an ERC-20 address, not 'DOGE'"]),
    ("open-ship-within", ["order", "open", "--record", f"{W}/renamed.json", "--merchant", "dev:1",
                          "--buyer", "dev:3", "--price", "5", "--ship-within", "3x"], b"",
     ["argument --ship-within", "not a duration: '3x'"]),
    ("open-offer-ttl", ["order", "open", "--record", f"{W}/renamed.json", "--merchant", "dev:1",
                        "--buyer", "dev:3", "--price", "5", "--offer-ttl", "-1"], b"",
     ["argument --offer-ttl", "not a duration"]),
    ("open-again", ["order", "open", "--record", f"{W}/{{funded}}.json", "--merchant", "dev:1",
                    "--buyer", "dev:3", "--price", "5"], b"",
     ["field 'order_id'", "already has records in the log"]),
    # the other order steps
    ("show-unknown", ["order", "show", "O-NOBODY"], b"", ["unknown order 'O-NOBODY'"]),
    ("ship-unknown", ["order", "ship", "O-NOBODY", "--carrier", "dev:5", "--carrier-code", "SF",
                      "--tracking", "SF4100000009"], b"", ["'O-NOBODY'", "no order record in the log"]),
    ("ship-literal-key", ["order", "ship", "{funded}", "--carrier", KEY[2:], "--carrier-code", "SF",
                          "--tracking", "SF4100000009"], b"",
     ["argument --carrier", "looks like a raw private key (64 characters)"]),
    ("ship-tracking", ["order", "ship", "{funded}", "--carrier", "dev:5", "--carrier-code", "SF",
                       "--tracking", "SF 41!"], b"",
     ["field 'tracking_number'", "not a valid tracking number"]),
    ("ship-carrier-code", ["order", "ship", "{funded}", "--carrier", "dev:5", "--carrier-code", "sf",
                           "--tracking", "SF4100000009"], b"",
     ["field 'carrier'", "not a valid carrier code"]),
    ("ship-again", ["order", "ship", "{shipped}", "--carrier", "dev:5", "--carrier-code", "SF",
                    "--tracking", "SF4100000002"], b"", ["ship reverted", "current=SHIPPED"]),
    ("deliver-unshipped", ["order", "deliver", "{funded}", "--carrier", "dev:5"], b"",
     ["'{funded}'", "no shipment record"]),
    ("deliver-method", ["order", "deliver", "{shipped}", "--carrier", "dev:5", "--method", "drone"], b"",
     ["argument --method", "invalid choice: 'drone'"]),
    ("deliver-not-a-carrier", ["order", "deliver", "{shipped}", "--carrier", "dev:6"], b"",
     ["deliver reverted", "not a registered carrier", "EscrowNotCarrier"]),
    ("confirm-bad-ref", ["order", "confirm", "{shipped}", "--buyer", "dev:x"], b"",
     ["argument --buyer", "dev:N needs N"]),
    ("release-too-early", ["order", "release", "{shipped}"], b"",
     ["release reverted", "EscrowUnexpectedState", "current=SHIPPED"]),
    ("refund-too-early", ["order", "refund", "{funded}"], b"", ["refund reverted", "before its deadline"]),
    ("cancel-wrong-party", ["order", "cancel", "{funded}", "--merchant", "dev:4"], b"",
     ["cancel reverted", "EscrowUnauthorizedCaller"]),
    ("return-negative", ["order", "return", "{shipped}", "--buyer", "dev:3", "--amount", "-1"], b"",
     ["argument --amount", "from 0 to 2^256 - 1"]),
    ("return-reason", ["order", "return", "{shipped}", "--buyer", "dev:3", "--amount", "1",
                       "--reason", "whim"], b"", ["field 'reason'", "unknown return reason 'whim'"]),
    ("return-type", ["order", "return", "{shipped}", "--buyer", "dev:3", "--amount", "1",
                     "--type", "swap"], b"", ["argument --type", "invalid choice: 'swap'"]),
    ("return-ship-unknown", ["order", "return-deliver", "O-NOBODY", "--carrier", "dev:5"], b"",
     ["'O-NOBODY'", "no return shipment record"]),
    ("order-no-step", ["order"], b"", ["the following arguments are required: STEP"]),
    # deposits, pledges, withdrawals, carriers, tokens, the books
    ("deposit-negative", ["deposit", "add", "--merchant", "dev:1", "--amount", "-1"], b"",
     ["argument --amount", "from 0 to 2^256 - 1", "'-1'"]),
    ("deposit-too-big", ["deposit", "add", "--merchant", "dev:1", "--amount", TOO_BIG], b"",
     ["argument --amount", "2^256 - 1"]),
    ("deposit-literal-key", ["deposit", "add", "--merchant", KEY, "--amount", "1"], b"",
     ["argument --merchant", "looks like a raw private key"]),
    ("deposit-bad-address", ["deposit", "show", "--merchant", "0x1234"], b"",
     ["argument --merchant", "(or a 0x address)"]),
    ("deposit-from", ["deposit", "add", "--merchant", "dev:1", "--amount", "1", "--from", "hunter2"], b"",
     ["argument --from", "not a key reference (7 characters)"]),
    ("deposit-withdraw-too-much", ["deposit", "withdraw", "--merchant", "dev:1", "--amount", str(100 * ETH)],
     b"", ["withdrawDeposit reverted", "EscrowDepositLocked"]),
    ("deposit-withdraw-address", ["deposit", "withdraw", "--merchant", "0x" + "ab" * 20, "--amount", "1"],
     b"", ["--merchant", "needs the merchant's KEYREF", "not an address"]),
    ("deposit-token", ["deposit", "show", "--merchant", "dev:1", "--token", "0xnope"], b"",
     ["argument --token", "must be ETH or an ERC-20 address, not '0xnope'"]),
    ("deposit-what", ["deposit", "top-up", "--merchant", "dev:1"], b"", ["invalid choice: 'top-up'"]),
    ("pledge-unknown", ["pledge", "O-NOBODY"], b"", ["unknown order 'O-NOBODY'", "nothing is pledged"]),
    ("pledge-show-unknown", ["pledge", "show", "O-NOBODY"], b"", ["unknown order 'O-NOBODY'"]),
    ("pledge-two-orders", ["pledge", "O-1", "O-2"], b"", ["one order id expected", "'O-1 O-2'"]),
    ("pledge-literal-key", ["pledge", "{funded}", "--lender", KEY, "--merchant", "dev:1"], b"",
     ["argument --lender", "looks like a raw private key"]),
    ("pledge-no-merchant", ["pledge", "{funded}", "--lender", "dev:6"], b"", ["pledging needs --merchant"]),
    ("pledge-bad-lender", ["pledge", "{funded}", "--lender", "0xbad", "--merchant", "dev:1"], b"",
     ["argument --lender", "(or a 0x address)"]),
    ("pledge-wrong-merchant", ["pledge", "{funded}", "--lender", "dev:6", "--merchant", "dev:2"], b"",
     ["pledge reverted", "EscrowUnauthorizedCaller"]),
    ("withdraw-literal-key", ["withdraw", "--as", KEY], b"",
     ["argument --as", "looks like a raw private key"]),
    ("withdraw-bad-to", ["withdraw", "--as", "dev:3", "--to", "dev:4"], b"",
     ["argument --to", "not an address"]),
    ("withdraw-token", ["withdraw", "--as", "dev:3", "--token", "XYZ"], b"",
     ["argument --token", "must be ETH", "'XYZ'"]),
    ("carrier-literal-key", ["carrier", "add", KEY], b"",
     ["argument carrier", "looks like a raw private key"]),
    ("carrier-bad-address", ["carrier", "add", "0x12"], b"", ["argument carrier", "not a key reference"]),
    ("carrier-what", ["carrier", "hire", "dev:5"], b"", ["invalid choice: 'hire'"]),
    ("token-bad", ["token", "allow", "not-a-token"], b"",
     ["argument token", "must be ETH or an ERC-20 address"]),
    ("token-missing", ["token", "allow"], b"", ["the following arguments are required: token"]),
    ("escrow-token", ["escrow", "--token", "junk"], b"", ["argument --token", "not 'junk'"]),
    # disputes
    ("dispute-statement-missing", ["dispute", "open", "{shipped}", "--as", "dev:3", "--statement",
                                   f"{W}/missing.json"], b"",
     ["--statement", "missing.json", "No such file"]),
    ("dispute-statement-del", ["dispute", "open", "{shipped}", "--as", "dev:3", "--statement",
                               f"{W}/statement-del.json"], b"", ["field 'detail'", "U+007F"]),
    ("dispute-no-record", ["dispute", "open", "{shipped}", "--as", "dev:3", "--record-id", "NOPE"], b"",
     ["no record 'NOPE' in the log"]),
    ("dispute-no-evidence", ["dispute", "open", "{shipped}", "--as", "dev:3"], b"",
     ["one of the arguments --record-id --statement is required"]),
    ("dispute-evidence-unknown", ["dispute", "evidence", "{shipped}", "--as", "dev:3", "--record-id", "NOPE"],
     b"", ["no record 'NOPE' in the log"]),
    ("dispute-ruling", ["dispute", "vote", "{shipped}", "--member", "dev:7", "--ruling", "maybe"], b"",
     ["argument --ruling", "unknown ruling 'maybe'"]),
    ("dispute-split", ["dispute", "vote", "{shipped}", "--member", "dev:7", "--ruling", "split:20000"], b"",
     ["argument --ruling"]),
    ("dispute-member-key", ["dispute", "vote", "{shipped}", "--member", KEY, "--ruling", "refund"], b"",
     ["argument --member", "looks like a raw private key"]),
    # verify and export
    ("verify-missing", ["verify", f"{W}/missing.json"], b"", ["BUNDLE", "missing.json", "No such file"]),
    ("verify-not-json", ["verify", f"{W}/not-json.json"], b"", ["not-json.json is not JSON"]),
    ("verify-unknown-field", ["verify", f"{W}/bundle-unknown-field.json"], b"",
     ["bundle-unknown-field.json", "unknown field `extra`"]),
    ("verify-format", ["verify", f"{W}/bundle-format.json"], b"",
     ["not an evidence bundle", "format must be"]),
    ("verify-no-records", ["verify", f"{W}/bundle-no-records.json"], b"",
     ["bundle-no-records.json", "missing required field `records`"]),
    ("verify-duplicate-key", ["verify", f"{W}/bundle-dupkey.json"], b"", ["duplicate key 'format'"]),
    ("verify-stdin", ["verify", "-"], b"garbage", ["- is not JSON"]),
    ("export-since", ["export", "--order", "{shipped}", "--since", "yesterday", "-o", f"{W}/out.json"], b"",
     ["argument --since", "not an RFC 3339 time: 'yesterday'"]),
    ("export-unwritable", ["export", "--order", "{shipped}", "-o", f"{W}/no-such-dir/out.json"], b"",
     ["--output", "no-such-dir/out.json", "cannot write it", "No such file"]),
    ("export-who", ["export", "--order", "{shipped}", "--merchant", "{merchant}"], b"",
     ["not allowed with argument"]),
    ("anchor-confirmations", ["anchor", "--confirmations", "-1"], b"",
     ["argument --confirmations", "from 0 to 1000"]),
    # erasure: refused before anything is written
    ("erase-unknown", ["erase", "--order", "NOPE", "--reason", "r"], b"",
     ["order 'NOPE' has no records in the log: nothing to erase"]),
    ("erase-empty-reason", ["erase", "--order", "{shipped}", "--reason", ""], b"",
     ["record '{shipped}:erasure' field 'reason'", "must not be empty"]),
    ("erase-control-operator", ["erase", "--order", "{shipped}", "--reason", "r", "--operator", "a\x07b"],
     b"", ["field 'operator'", "control character U+0007"]),
    ("erase-json", ["erase", "--order", "NOPE", "--reason", "r", "--json"], b"", ["'NOPE' has no records"]),
    ("erase-no-reason", ["erase", "--order", "{shipped}"], b"",
     ["the following arguments are required: --reason"]),
    ("ingest-erasure-record", ["ingest", f"{W}/erasure.jsonl"], b"",
     ["erasure.jsonl:1", "field 'kind'", "an erasure record is written by `ledger erase`"]),
    # cases and replays
    ("replay-missing", ["replay", f"{W}/missing.json"], b"", ["CASE", "missing.json", "no such case file"]),
    ("replay-not-json", ["replay", f"{W}/not-json.json"], b"", ["not-json.json is not JSON"]),
    ("replay-unknown-field", ["replay", f"{W}/case-unknown-field.json"], b"",
     ["case-unknown-field.json", "unknown field `extra`"]),
    ("replay-format", ["replay", f"{W}/case-format.json"], b"", ["not a case file", "format must be"]),
    ("replay-arg-hex", ["replay", "{case}", "--override", 'arg:deliver.delivery.evidence="0xzz"'], b"",
     ["override arg:deliver.delivery.evidence=\"0xzz\"", "not a valid bytes32",
      "'delivery.evidence'"]),
    ("replay-arg-uint", ["replay", "{case}", "--override", "arg:deliver.delivery.deliveredAt=-1"], b"",
     ["not a valid uint64"]),
    ("replay-arg-name", ["replay", "{case}", "--override", "arg:release.nothing=1"], b"",
     ["override arg:release.nothing=1", "has no argument 'nothing'"]),
    ("replay-time-before", ["replay", "{case}", "--override", "time:deliver=-2d"], b"",
     ["override time:deliver=-2d", "step 2 (deliver)", "not after step 1 (ship)"]),
    ("replay-time-past", ["replay", "{case}", "--override", "time:ship=+3d"], b"",
     ["override time:ship=+3d", "not before step 2 (deliver)"]),
    ("replay-time-text", ["replay", "{case}", "--override", "time:release=soon"], b"",
     ["override time:release=soon", "time must be"]),
    ("replay-drop-unknown", ["replay", "{case}", "--override", "drop:teleport"], b"",
     ["0 call(s) of 'teleport'"]),
    ("replay-not-an-override", ["replay", "{case}", "--override", "swap:fund"], b"",
     ["not an override: 'swap:fund'"]),
    ("replay-record", ["replay", "{case}", "--override", "record:nobody.total=1"], b"",
     ["no disclosed record 'nobody'"]),
    ("case-extra-tx", ["case", "{shipped}", "--extra-tx", "0xzz"], b"",
     ["argument --extra-tx", "not a transaction hash: '0xzz'"]),
    ("case-unwritable", ["case", "{shipped}", "-o", f"{W}/no-such-dir/case.json"], b"",
     ["--output", "cannot write it"]),
    ("case-unknown", ["case", "O-NOBODY", "-o", f"{W}/case.json"], b"",
     ["order 'O-NOBODY' has no record in the log"]),
    ("case-extra-tx-unknown", ["case", "{shipped}", "--extra-tx", "0x" + "ab" * 32, "-o", f"{W}/case.json"],
     b"", ["transaction 0x" + "ab" * 32, "is not mined"]),
    ("trace-unknown", ["trace", "0x" + "ab" * 32], b"", ["transaction 0x" + "ab" * 32, "is not mined"]),
    ("trace-hash", ["trace", "0x12"], b"", ["argument TX_HASH", "not a transaction hash"]),
    # audits
    ("audit-unknown-order", ["audit", "--order", "O-NOBODY"], b"", ["'O-NOBODY'", "no record in the log"]),
    ("audit-unknown-merchant", ["audit", "--merchant", "M-NOBODY"], b"", ["'M-NOBODY'", "has no records"]),
    ("audit-since", ["audit", "--merchant", "{merchant}", "--since", "last week"], b"",
     ["argument --since", "not an RFC 3339 time: 'last week'"]),
    ("audit-until-before-since", ["audit", "--merchant", "{merchant}", "--since", "2026-12-01T00:00:00Z",
                                  "--until", "2026-11-01T00:00:00Z"], b"",
     ["--until", "is not after --since"]),
    ("audit-order-window", ["audit", "--order", "{shipped}", "--since", "2026-01-01T00:00:00Z"], b"",
     ["--since/--until bound a merchant audit"]),
    ("audit-html-unwritable", ["audit", "--order", "{shipped}", "--html", f"{W}/no-such-dir/r.html"], b"",
     ["--html", "cannot write it"]),
    ("audit-who", ["audit"], b"", ["one of the arguments --order --merchant is required"]),
    # the node, the clock, deployment, the command line itself
    ("node-busy-port", ["node", "--port", "{port}"], b"", ["--port {port}", "already in use"]),
    ("node-port-range", ["node", "--port", "70000"], b"", ["argument --port", "from 1 to 65535"]),
    ("advance-zero", ["advance", "0"], b"", ["argument duration", "the clock only moves forward"]),
    ("advance-text", ["advance", "soon"], b"", ["argument duration", "not a duration: 'soon'"]),
    ("deploy-panel-key", ["deploy", "--panel", f"dev:7,{KEY}"], b"",
     ["argument --panel", "looks like a raw private key"]),
    ("deploy-threshold", ["deploy", "--threshold", "0"], b"", ["argument --threshold", "from 1"]),
    ("deploy-ratio", ["deploy", "--deposit-ratio", "20000"], b"", ["argument --deposit-ratio", "to 10000"]),
    ("deploy-treasury", ["deploy", "--treasury", "treasury"], b"", ["argument --treasury", "not an address"]),
    ("demo-orders", ["demo", "--orders", "0"], b"", ["argument --orders", "from 1"]),
    ("unknown-command", ["teleport"], b"", ["invalid choice: 'teleport'"]),
    ("data-dir-unusable", ["--data-dir", "/proc/no-such-dir", "status"], b"",
     ["cannot open evidence store /proc/no-such-dir/evidence.sqlite3", "No such file"]),
]

assert len(CASES) >= 100 and len({c[0] for c in CASES}) == len(CASES)


def _fill(text: str, names: dict[str, str]) -> str:
    return text.format(**names)


@pytest.mark.parametrize(("argv", "stdin", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_naming_what_and_why_and_changes_nothing(
        world: World, argv: list[str], stdin: bytes, needles: list[str]) -> None:
    names = {**world.names, "port": str(world.node.port)}
    args = [_fill(a, names) for a in argv]
    before = world.state()
    status, out, err = ledger(*args, stdin=stdin)
    message = err if "--json" not in args else out
    assert status == 2, (args, out, err)
    assert "Traceback" not in out + err
    for needle in needles:
        assert _fill(needle, names) in message, (needle, message)
    for secret in SECRETS:
        assert secret not in out + err, "a secret was echoed"
    assert world.state() == before


@pytest.mark.parametrize("case", ["open-price-negative", "open-record-missing", "deposit-negative",
                                  "replay-arg-hex", "open-literal-key", "show-unknown",
                                  "ingest-other-merchant"])
def test_a_real_process_exits_2_with_one_line_and_no_traceback(world: World, case: str) -> None:
    """What the reviewer ran, as a process: exit 2, the reason on stderr, no traceback."""
    argv, stdin, needles = next(c[1:] for c in CASES if c[0] == case)
    names = {**world.names, "port": str(world.node.port)}
    proc = subprocess.run([sys.executable, "-m", "ledger", *(_fill(a, names) for a in argv)],
                          input=stdin, capture_output=True, env=dict(os.environ), timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err and KEY[2:] not in err
    assert all(_fill(n, names) in err for n in needles), err


def test_a_correct_file_ingests_again_and_every_order_keeps_one_merchant(world: World) -> None:
    """The one-merchant rule refuses nothing a correct file holds: ingesting it again stores nothing
    and refuses nothing, and no order in the store (escrow steps' records included) has two merchants."""
    sale = world.work / "sale.jsonl"
    [again] = ok("ingest", str(sale))["files"]
    assert (again["stored"], again["skipped"]) == (0, len(sale.read_bytes().splitlines()))
    db = sqlite3.connect(f"file:{world.home / 'evidence.sqlite3'}?mode=ro", uri=True)
    try:
        mixed = db.execute("SELECT order_id FROM (SELECT order_id, merchant_id FROM records UNION SELECT"
                           " order_id, merchant_id FROM held_records) GROUP BY order_id"
                           " HAVING COUNT(*) > 1").fetchall()
    finally:
        db.close()
    assert mixed == []
