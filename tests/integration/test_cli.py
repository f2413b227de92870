"""The CLI end to end, as a user runs it: separate processes against a real anvil node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.chain.rpc import connect
from ledger.deploy import evidence_log
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.evidence.anchor import Anchorer
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store

START = "2026-11-11T12:00:00Z"


def run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ledger", *args], capture_output=True, text=True, env=env, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"ledger {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def env(tmp_path: Path, anvil_node) -> dict[str, str]:  # type: ignore[no-untyped-def]
    e = dict(os.environ)
    e.update(
        LEDGER_HOME=str(tmp_path / "home"),
        LEDGER_MASTER_SECRET=MasterSecret.generate_hex(),
        LEDGER_RPC=anvil_node.url,
        COLUMNS="200",
    )
    for k in ("LEDGER_PRIVATE_KEY", "LEDGER_KEYSTORE"):
        e.pop(k, None)
    return e


def test_cli_flow_ingest_anchor_export_verify(tmp_path: Path, env: dict[str, str]) -> None:
    sale = generate_flash_sale(seed=3, orders=30, merchants=2, start=START)
    half = len(sale) // 2
    (tmp_path / "a.jsonl").write_bytes(to_jsonl(sale[:half]))
    (tmp_path / "b.jsonl").write_bytes(to_jsonl(sale[half:]))

    dep = json.loads(run(["deploy", "--json", "--redeploy"], env).stdout)
    again = json.loads(run(["deploy", "--json"], env).stdout)
    assert again["reused"] and again["address"] == dep["address"]
    assert again["trust_root"] == dep["trust_root"] and "manifest" in dep
    assert json.loads(Path(dep["trust_root"]).read_text())["contract"] == dep["address"]

    out = json.loads(run(["ingest", str(tmp_path / "a.jsonl"), "--json"], env).stdout)
    assert out["log_size"] == half
    a1 = json.loads(run(["anchor", "--json"], env).stdout)
    assert a1["anchored"] and a1["size"] == half and a1["previous_size"] == 0
    merchant = sale[0]["merchant_id"]
    early = tmp_path / "merchant-early.json"
    run(["export", "--merchant", merchant, "--since", START, "-o", str(early)], env)
    run(["ingest", str(tmp_path / "b.jsonl")], env)
    a2 = json.loads(run(["anchor", "--json"], env).stdout)
    assert a2["size"] == len(sale) and a2["previous_size"] == half and a2["gas_used"] <= 100_000
    assert not json.loads(run(["anchor", "--json"], env).stdout)["anchored"]
    status = json.loads(run(["status", "--json"], env).stdout)
    assert status["unanchored_records"] == 0 and status["pending_anchors"] == 0

    order = sale[0]["order_id"]
    bundle_path = tmp_path / "bundle.json"
    run(["export", "--order", order, "-o", str(bundle_path)], env)
    trust = dep["trust_root"]
    assert Path(trust) == Path(env["LEDGER_HOME"]) / "trust" / "31337.json"
    ok = run(["verify", str(bundle_path), "--trust", trust, "--json"], env, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["ok"] and json.loads(ok.stdout)["status"] == "verified"
    human = run(["verify", str(bundle_path), "--trust", trust], env)
    assert "VERIFIED" in human.stdout and "OK" in human.stdout
    pinned_by_flags = ["--expect-chain-id", "31337", "--expect-contract", dep["address"].lower()]
    assert run(["verify", str(bundle_path), *pinned_by_flags], env).returncode == 0

    bundle = json.loads(bundle_path.read_text())
    victim = bundle["records"][0]["record"]
    victim["ts"] = victim["ts"].replace(":0", ":1", 1)
    bad_path = tmp_path / "bad.json"
    bad_path.write_text(json.dumps(bundle))
    bad = run(["verify", str(bad_path), "--trust", trust], env, check=False)
    assert bad.returncode == 1
    assert "tampered content" in bad.stdout and victim["id"] in bad.stdout
    assert "COMPLETE" in human.stdout and json.loads(ok.stdout)["completeness"] == "proven"
    dropped = json.loads(bundle_path.read_text())
    gone = dropped["records"].pop(1)
    bad_path.write_text(json.dumps(dropped))
    bad = run(["verify", str(bad_path), "--trust", trust], env, check=False)
    assert bad.returncode == 1 and "INCOMPLETE record dropped" in bad.stdout
    assert f"has leaf {gone['index']}" in bad.stdout

    mb = tmp_path / "merchant.json"
    run(["export", "--merchant", merchant, "--since", START, "-o", str(mb)], env)
    assert run(["verify", str(mb), "--trust", trust], env).returncode == 0
    assert {r["record"]["merchant_id"] for r in json.loads(mb.read_text())["records"]} == {merchant}
    # the later bundle extends the earlier one; the earlier does not extend the later
    grown = run(["verify", str(mb), "--trust", trust, "--extends", str(early), "--json"], env)
    assert json.loads(grown.stdout)["extends"]["failures"] == []
    back = run(["verify", str(early), "--trust", trust, "--extends", str(mb)], env, check=False)
    assert back.returncode == 1 and "NOT EXTENDED" in back.stdout


def test_cli_verify_exit_codes(tmp_path: Path, env: dict[str, str]) -> None:
    """0 verified, 1 something false, 2 unusable input, 3 head not checked or not pinned."""
    sale = generate_flash_sale(seed=5, orders=4, merchants=1, start=START)
    (tmp_path / "s.jsonl").write_bytes(to_jsonl(sale))
    trust = json.loads(run(["deploy", "--json", "--redeploy", "--log-only"], env).stdout)["trust_root"]
    run(["ingest", str(tmp_path / "s.jsonl")], env)
    run(["anchor"], env)
    path = tmp_path / "b.json"
    run(["export", "--order", sale[0]["order_id"], "-o", str(path)], env)

    def verify(*extra: str, bundle: Path = path) -> subprocess.CompletedProcess[str]:
        return run(["verify", str(bundle), *extra], env, check=False)

    unpinned = verify("--json")
    assert unpinned.returncode == 3 and json.loads(unpinned.stdout)["status"] == "unpinned"
    assert not json.loads(unpinned.stdout)["ok"]
    human = verify()
    assert human.returncode == 3 and "ANCHOR CONTRACT NOT PINNED" in human.stdout
    assert "VERIFIED" not in human.stdout
    offline = verify("--offline", "--trust", trust, "--json")
    assert offline.returncode == 3 and json.loads(offline.stdout)["status"] == "head_unchecked"
    assert verify("--offline", "--expect-chain-id", "1").returncode == 1  # the pin is checked offline
    assert verify("--expect-chain-id", "31337", "--expect-contract", "0x" + "12" * 20).returncode == 1
    assert verify("--expect-chain-id", "31337").returncode == 3  # the contract is what needs pinning
    both = verify("--trust", trust, "--expect-chain-id", "31337")
    assert both.returncode == 2 and "not both" in both.stderr
    assert verify("--offline", "--rpc", env["LEDGER_RPC"]).returncode == 2
    assert verify("--trust", str(tmp_path / "missing.json")).returncode == 2
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    malformed = verify("--trust", trust, bundle=bom)
    assert malformed.returncode == 2 and "BOM" in malformed.stderr and "Traceback" not in malformed.stderr
    no_node = dict(env, LEDGER_RPC="http://127.0.0.1:9")
    assert run(["verify", str(path), "--trust", trust], no_node, check=False).returncode == 2
    assert run(["verify", str(path), "--trust", trust, "--offline"], no_node, check=False).returncode == 3
    helped = run(["verify", "--help"], env).stdout
    assert all(f"{code} " in helped for code in ("0", "1", "2", "3")) and "head_unchecked" in helped


def test_cli_invalid_file_lists_every_problem_and_stores_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    sale = generate_flash_sale(seed=4, orders=5, merchants=1, start=START)
    lines = to_jsonl(sale).splitlines()
    bad_money = json.loads(lines[1])
    key = next(k for k in ("total", "amount") if k in bad_money)
    bad_money[key] = 12.5
    lines[1] = json.dumps(bad_money).encode()
    lines[3] = b'{"id": "x1", "kind": "teleport"}'
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    res = run(["ingest", str(tmp_path / "bad.jsonl"), "--json"], env, check=False)
    assert res.returncode == 2
    payload = json.loads(res.stdout)
    problems = payload["problems"]
    assert {p["line"] for p in problems} >= {2, 4}
    assert any(p["field"] == key and p["record_id"] == bad_money["id"] for p in problems)
    human = run(["ingest", str(tmp_path / "bad.jsonl")], env, check=False)
    assert "bad.jsonl:2" in human.stderr and "nothing was stored" in human.stderr
    status = json.loads(run(["status", "--json"], env).stdout)
    assert status["log_size"] == 0


def test_cli_anchor_says_what_it_resumed(tmp_path: Path, env: dict[str, str], anvil_node) -> None:  # type: ignore[no-untyped-def]
    """A run that only completes an anchor a crashed run left pending says so: which head, which
    transaction, which block; not just "nothing new to anchor"."""
    sale = generate_flash_sale(seed=5, orders=4, merchants=1, start=START)
    (tmp_path / "a.jsonl").write_bytes(to_jsonl(sale))
    run(["deploy", "--log-only", "--redeploy"], env)
    run(["ingest", str(tmp_path / "a.jsonl")], env)
    home = Path(env["LEDGER_HOME"])
    chain = connect(anvil_node.url)
    with Store(home / "evidence.sqlite3", MasterSecret.from_hex(env["LEDGER_MASTER_SECRET"])) as store:
        def crash(anchor_id: int) -> None:
            raise KeyboardInterrupt  # killed after storing the signed anchor, before sending it

        with pytest.raises(KeyboardInterrupt):
            Anchorer(store, chain, evidence_log(chain, home)).anchor(before_broadcast=crash)
        [pending] = store.anchors(status="sent")
    out = json.loads(run(["anchor", "--json"], env).stdout)
    assert not out["anchored"] and out["resumed"] == 1
    [resumed] = out["resumed_anchors"]
    assert (resumed["size"], resumed["status"], resumed["tx_hash"]) == (
        pending.size, "confirmed", "0x" + pending.tx_hash.hex())
    text = run(["anchor"], env).stdout  # and once settled, there is nothing left to resume
    assert text.strip() == (f"nothing new to anchor: head size {pending.size} is anchored in block "
                            f"{resumed['block_number']} (tx 0x{pending.tx_hash.hex()})")


def test_cli_without_a_chain_says_how_to_start_one(tmp_path: Path, env: dict[str, str]) -> None:
    env = dict(env)
    env.pop("LEDGER_RPC")
    res = run(["anchor"], env, check=False)
    assert res.returncode == 2 and "ledger node" in res.stderr and "--rpc" in res.stderr
    res = run(["deploy", "--rpc", "http://127.0.0.1:9"], env, check=False)
    assert res.returncode == 2 and "no Ethereum JSON-RPC node answers" in res.stderr


def test_cli_demo_runs_on_the_embedded_chain(tmp_path: Path) -> None:
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "ledger", "demo", "--orders", "40", "--merchants", "2",
         "--batches", "2", "--out", str(tmp_path / "demo"), "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ok"] and summary["bundle_verified"] and summary["tampered_rejected"]
    assert len(summary["heads"]) == 3 and Path(summary["bundle"]).exists()  # 2 batches + escrow
    assert all(h["gas"] <= 100_000 for h in summary["heads"])
    esc = summary["escrow"]
    states = [o["state"] for o in esc["orders"]]
    assert {"RELEASED", "RETURNED", "RESOLVED", "REFUNDED"} <= set(states)
    assert "EscrowTrackingReused" in esc["empty_parcel_rejected"]
    assert esc["pledged_bundle_verified"] and esc["cited_evidence_in_bundle"] and esc["books_balanced"]
    assert esc["balances"]["lender_credit"] > 0 and esc["balances"]["escrowed"] == 0
    assert esc["balances"]["deposit_a"] + esc["balances"]["deposit_b"] < 800 * 10**6  # slashed


def _keystore(path: Path, key: bytes, password: str) -> Path:
    from eth_account import Account  # noqa: PLC0415 - only these tests build keystores

    path.write_text(json.dumps(Account.encrypt(key, password, kdf="scrypt", iterations=2**10)))
    return path


def test_cli_keystore_parties_have_their_own_passwords(tmp_path: Path, env: dict[str, str]) -> None:
    """Keystore keys only: the operator's keystore under one password (from a mode-0600 file),
    a merchant's under another, named in its reference; the wrong setups exit 2 with the reason."""
    from ledger.chain.keys import dev_key  # noqa: PLC0415

    operator_pw = tmp_path / "operator.password"
    operator_pw.write_text("operator passphrase\n")
    operator_pw.chmod(0o600)
    merchant_pw = tmp_path / "merchant.password"
    merchant_pw.write_text("merchant passphrase\n")
    merchant_pw.chmod(0o600)
    env = dict(env, LEDGER_KEYSTORE=str(_keystore(tmp_path / "op.json", bytes(dev_key(2).key),
                                                  "operator passphrase")),
               LEDGER_KEYSTORE_PASSWORD_FILE=str(operator_pw))
    merchant_ks = _keystore(tmp_path / "merchant.json", bytes(dev_key(1).key), "merchant passphrase")
    merchant = f"keystore:{merchant_ks}?password-file={merchant_pw}"

    dep = json.loads(run(["deploy", "--json", "--redeploy"], env).stdout)
    assert dep["deployer"] == dev_key(2).address  # the operator key came from its keystore
    add = ["deposit", "add", "--merchant", merchant, "--amount", "1000", "--json"]
    out = json.loads(run(add, env).stdout)
    assert out["merchant"] == dev_key(1).address and out["deposit"] == 1000
    # by variable too; and without its own source the operator's password does not open it
    by_env = dict(env, MERCHANT_PW="merchant passphrase")
    ref_env = f"keystore:{merchant_ks}?password-env=MERCHANT_PW"
    shown = json.loads(run(["deposit", "show", "--merchant", ref_env, "--json"], by_env).stdout)
    assert shown["deposit"] == 1000
    res = run(["deposit", "show", "--merchant", f"keystore:{merchant_ks}"], env, check=False)
    assert res.returncode == 2 and "wrong password" in res.stderr and "Traceback" not in res.stderr

    # the attack: a world-readable password file is refused, naming it, its mode and the fix
    merchant_pw.chmod(0o644)
    res = run(["deposit", "show", "--merchant", merchant], env, check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"{merchant_pw} is accessible by group or others (mode 0644)" in res.stderr
    assert f"chmod 600 {merchant_pw}" in res.stderr and "merchant passphrase" not in res.stderr
    operator_pw.chmod(0o640)
    res = run(["deploy"], env, check=False)
    assert res.returncode == 2 and "mode 0640" in res.stderr and "Traceback" not in res.stderr

    # both operator key variables: refused, whichever would have won
    both = dict(env, LEDGER_PRIVATE_KEY="0x" + "11" * 32)
    operator_pw.chmod(0o600)
    res = run(["deposit", "show", "--merchant", ref_env], both, check=False)
    assert res.returncode == 2 and "both LEDGER_PRIVATE_KEY and LEDGER_KEYSTORE are set" in res.stderr
    assert "11" * 32 not in res.stderr + res.stdout and "Traceback" not in res.stderr
    # a password in the reference itself: refused at parse time, not echoed
    res = run(["deposit", "show", "--merchant", f"keystore:{merchant_ks}?password=hunter2"], env, check=False)
    assert res.returncode == 2 and "a password never goes on the command line" in res.stderr
    assert "hunter2" not in res.stderr
