"""Logging through the CLI: quiet by default, -v/-vv and --log-json, and never a secret.

The demo is the fullest run there is (deploy, ingest, anchor, bundles, every escrow step), so
its logs at the most verbose level are grepped for every secret the process knew: the master
secret and what derives from it, the personal-data key, and the private key of every account
that signed anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ledger.chain import rpc
from ledger.dev.demo_escrow import Cast
from ledger.evidence.master_secret import MasterSecret


def _ledger(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def _secrets(master_hex: str, data_key_hex: str) -> dict[str, str]:
    master = MasterSecret.from_hex(master_hex)
    found = {"master secret": master_hex, "LEDGER_DATA_KEY": data_key_hex,
             "the master secret's own data key": master.data_key.hex()}
    for i, account in enumerate(rpc.embedded().accounts):
        found[f"embedded dev account {i}"] = account.key.hex()
    for i, account in enumerate(Cast(admin=rpc.embedded().accounts[0]).everyone()):
        found[f"demo party {i} ({account.address})"] = account.key.hex()
    return {what: value.removeprefix("0x").lower() for what, value in found.items()}


def test_demo_logs_are_detailed_and_hold_no_secret(tmp_path: Path) -> None:
    master_hex, data_key_hex = MasterSecret.generate_hex(), os.urandom(32).hex()
    env = dict(os.environ, LEDGER_MASTER_SECRET=master_hex, LEDGER_DATA_KEY=data_key_hex)
    env.pop("LEDGER_LOG_LEVEL", None)
    run = _ledger("-vv", "--log-json", "demo", "--orders", "60", "--merchants", "3", "--out",
                  str(tmp_path / "out"), "--json", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    assert len(lines) > 200
    assert {"time", "level", "logger", "message"} <= lines[0].keys()
    loggers = {entry["logger"] for entry in lines}
    assert {"ledger.chain.rpc", "ledger.chain.outbox", "ledger.evidence.store", "ledger.evidence.anchor",
            "ledger.escrow.platform"} <= loggers
    messages = [entry["message"] for entry in lines]
    assert any(" fund by " in m for m in messages) and any("confirmed in block" in m for m in messages)
    assert json.loads(run.stdout)["ok"] is True  # the report on stdout, the logs on stderr

    text_run = _ledger("-vv", "demo", "--orders", "20", "--out", str(tmp_path / "out2"), env=env)
    assert text_run.returncode == 0, text_run.stderr[-3000:]
    everything = (run.stdout + run.stderr + text_run.stdout + text_run.stderr).lower()
    leaked = [what for what, value in _secrets(master_hex, data_key_hex).items() if value in everything]
    assert leaked == []


def test_quiet_by_default(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.pop("LEDGER_LOG_LEVEL", None)
    run = _ledger("demo", "--orders", "10", "--out", str(tmp_path / "out"), "--json", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not [line for line in run.stderr.splitlines() if line.startswith(("{", "INFO", "DEBUG"))]
    info = _ledger("--log-json", "demo", "--orders", "10", "--out", str(tmp_path / "out"), "--json",
                   env={**env, "LEDGER_LOG_LEVEL": "info"})
    assert info.returncode == 0
    levels = {json.loads(line)["level"] for line in info.stderr.splitlines() if line.startswith("{")}
    assert levels == {"INFO"}
