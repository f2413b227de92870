"""`ledger node`: a local anvil whose chain state survives restarts, driven as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.chain.anvil import free_port, wait_for_rpc
from ledger.evidence.master_secret import MasterSecret

# `ledger node` gives anvil up to 30 s to save its state after SIGINT before killing it; on a
# loaded 2-core machine saving can take longer than 15 s, so the test waits out the node's own bound.
STOP_TIMEOUT = 45


@pytest.fixture
def env() -> dict[str, str]:
    """The environment of a user with a master secret and no chain configured."""
    e = dict(os.environ)
    for k in (
        "LEDGER_RPC",
        "LEDGER_HOME",
        "LEDGER_PRIVATE_KEY",
        "LEDGER_KEYSTORE",
        "LEDGER_MASTER_SECRET_FILE",
    ):
        e.pop(k, None)
    e.update(LEDGER_MASTER_SECRET=MasterSecret.generate_hex(), COLUMNS="200")
    return e


def ledger(ddir: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger", "--data-dir", str(ddir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def ok_json(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is as good as gone
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


class Node:
    """One `ledger node` child process; `ensure_stopped` never leaves anything running."""

    def __init__(self, ddir: Path, env: dict[str, str], log: Path) -> None:
        self.ddir = ddir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ledger",
                    "--data-dir",
                    str(ddir),
                    "node",
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so cleanup can reach anvil too
            )
        self.anvil_pid: int | None = None

    def wait_ready(self) -> None:
        wait_for_rpc(self.url, self.proc, timeout=30)
        node_file = self.ddir / "node.json"
        deadline = time.monotonic() + 10
        while not node_file.exists():  # written right after anvil answers
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "node.json was not written"
            time.sleep(0.05)
        info = json.loads(node_file.read_text())
        assert info["url"] == self.url
        self.anvil_pid = int(info["pid"])

    def stop(self, sig: signal.Signals) -> int:
        """Send `sig` to the `ledger node` process only (not to anvil) and wait for it."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`ledger node` did not stop within {STOP_TIMEOUT}s of {sig.name}")

    def ensure_stopped(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # anvil shares the group; kill it too should `ledger node` have left it behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_node(ddir: Path, env: dict[str, str], log: Path) -> Iterator[Node]:
    node = Node(ddir, env, log)
    try:
        node.wait_ready()
        yield node
    finally:
        node.ensure_stopped()


def _assert_stopped_cleanly(node: Node, rc: int) -> None:
    assert rc == 0, node.log.read_text()
    assert not (node.ddir / "node.json").exists()
    assert node.anvil_pid is not None
    deadline = time.monotonic() + 5
    while _alive(node.anvil_pid):
        assert time.monotonic() < deadline, "anvil outlived `ledger node`"
        time.sleep(0.05)


def test_node_state_survives_restart(tmp_path: Path, env: dict[str, str]) -> None:
    ddir = tmp_path / "data"
    log = tmp_path / "node.log"

    with running_node(ddir, env, log) as node:
        first = ok_json(ledger(ddir, ["deploy", "--json"], env))
        assert first["reused"] is False
        address = str(first["address"])
        manifest = ddir / "deployments" / "31337.json"
        assert manifest.exists()
        _assert_stopped_cleanly(node, node.stop(signal.SIGINT))

    state = ddir / "anvil" / "state.json"
    assert state.exists()
    accounts = json.loads(state.read_text())["accounts"]
    assert accounts[address.lower()]["code"] not in ("", "0x")

    # No node now: commands that need the chain say how to get one.
    anchor = ledger(ddir, ["anchor"], env)
    assert anchor.returncode == 2, anchor.stdout + anchor.stderr
    assert "ledger node" in anchor.stderr
    assert "Traceback" not in anchor.stderr

    with running_node(ddir, env, log) as node:
        assert node.port is not None
        again = ok_json(ledger(ddir, ["deploy", "--json"], env))
        assert again["reused"] is True
        assert again["address"] == address
        assert again["tx_hash"] == first["tx_hash"]
        # SIGTERM (what `kill`, systemd and containers send) also stops it cleanly.
        _assert_stopped_cleanly(node, node.stop(signal.SIGTERM))
    assert state.exists()


def test_chain_commands_without_a_node(tmp_path: Path, env: dict[str, str]) -> None:
    ddir = tmp_path / "data"
    # Nothing configured at all.
    proc = ledger(ddir, ["anchor"], env)
    assert proc.returncode == 2
    assert "ledger node" in proc.stderr and "Traceback" not in proc.stderr
    proc = ledger(ddir, ["anchor", "--json"], env)
    assert proc.returncode == 2
    err = json.loads(proc.stdout)
    assert err["error"] == "ChainUnavailable" and "ledger node" in err["message"]
    # A node.json left behind by a node that is gone.
    ddir.mkdir(parents=True, exist_ok=True)
    (ddir / "node.json").write_text(
        json.dumps({"url": f"http://127.0.0.1:{free_port()}", "pid": 0})
    )
    proc = ledger(ddir, ["deploy"], env)
    assert proc.returncode == 2
    assert "ledger node" in proc.stderr and "Traceback" not in proc.stderr
