"""Run a local anvil node (npm `@foundry-rs/anvil-linux-amd64`).

`ledger node` keeps the chain state in the data directory (anvil `--state`, dumped
periodically and on exit), so multi-step CLI work survives restarts.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import TypedDict, Unpack

from ledger._internal.solc import PROJECT_ROOT
from ledger.config import settings
from ledger.errors import ChainUnavailable, ConfigError

_logger = logging.getLogger(__name__)

ANVIL_PACKAGE_BIN = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


def find_anvil() -> str:
    explicit = settings().anvil
    if explicit:
        return explicit
    bundled = PROJECT_ROOT / ANVIL_PACKAGE_BIN
    if bundled.exists():
        return str(bundled)
    found = shutil.which("anvil")
    if found:
        return found
    raise ConfigError(
        "anvil not found: run the README's set-up (npm installs @foundry-rs/anvil-linux-amd64), "
        "put anvil on PATH, or set LEDGER_ANVIL"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int) -> None:
    """Refuse a port something already listens on: anvil would fail to bind it, but only
    after whatever holds it had answered as if it were the new node."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as anvil does: TIME_WAIT is free
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"--port {port}: 127.0.0.1:{port} is already in use ({exc.strerror}); "
                              "is a node already running there? Stop it, or pick another --port") from None


class _AnvilOptions(TypedDict, total=False):
    """The keyword options of `anvil_command`."""

    block_time: float | None
    state_interval: int
    timestamp: int | None
    chain_id: int | None
    base_fee: int | None


def anvil_command(
    port: int,
    state_file: Path | None = None,
    *,
    block_time: float | None = None,
    state_interval: int = 1,
    timestamp: int | None = None,
    chain_id: int | None = None,
    base_fee: int | None = None,
) -> list[str]:
    """The command line of an anvil node on 127.0.0.1:`port`.

    `block_time`: seconds per block (default: a block per transaction); `timestamp`: the
    genesis time; `chain_id`: another chain id than anvil's 31337, which makes the node a
    stand-in for a real network (`ledger.chain.rpc.connect` then treats it as one: no
    development accounts, no clock control); `base_fee`: the genesis block's base fee in wei
    (EIP-1559 moves it from there). Chain id 8453, `block_time=2` and `base_fee=10**9`
    rehearse a production-like network.
    """
    if chain_id is not None and not 0 < chain_id < 2**63:
        raise ConfigError(f"anvil chain id must be from 1 to 2^63 - 1, not {chain_id}")
    if base_fee is not None and base_fee < 0:
        raise ConfigError(f"anvil base fee must be a number of wei from 0, not {base_fee}")
    cmd = [
        find_anvil(),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--hardfork", "cancun",
        "--silent",
        "--gas-limit", "60000000",
    ]
    if state_file is not None:
        cmd += ["--state", str(state_file), "--state-interval", str(state_interval)]
    if block_time is not None:
        cmd += ["--block-time", str(block_time)]
    if timestamp is not None:
        cmd += ["--timestamp", str(timestamp)]  # genesis time: replays start in the past
    if chain_id is not None:
        cmd += ["--chain-id", str(chain_id)]
    if base_fee is not None:
        cmd += ["--base-fee", str(base_fee)]
    return cmd


def wait_for_rpc(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ChainUnavailable(f"anvil exited with code {proc.returncode} before answering at {url}")
        try:
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise ChainUnavailable(f"anvil did not answer at {url} within {timeout:.0f}s")


class AnvilProcess:
    """A child anvil process; a context manager that always stops it."""

    def __init__(self, port: int | None = None, state_file: Path | None = None, **kw: Unpack[_AnvilOptions]):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = anvil_command(self.port, state_file, **kw)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AnvilProcess:
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        wait_for_rpc(self.url, self.proc)
        _logger.info("anvil started at %s (pid %d)", self.url, self.proc.pid)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # SIGINT lets anvil dump --state on exit
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> AnvilProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
