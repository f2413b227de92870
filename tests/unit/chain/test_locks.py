"""File locks shared by processes on one data directory (`ledger.chain.locks`)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger.chain.locks import file_lock

_HOLD = """
import fcntl, sys, time
with open(sys.argv[1], "a") as fh:
    fcntl.flock(fh, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(60)
"""


def test_without_a_lock_directory_the_lock_is_a_no_op(tmp_path: Path) -> None:
    said: list[str] = []
    with file_lock(None, said.append, "x", "nothing"), file_lock(None, said.append, "x", "nothing"):
        pass
    assert said == [] and list(tmp_path.iterdir()) == []


def test_the_lock_directory_is_made_and_a_free_lock_taken_silently(tmp_path: Path) -> None:
    said: list[str] = []
    with file_lock(tmp_path / "locks", said.append, "31337-anchor", "another run"):
        assert (tmp_path / "locks" / "31337-anchor.lock").exists()
    assert said == []


def test_a_holder_killed_with_sigkill_leaves_no_lock_behind(tmp_path: Path) -> None:
    lock = tmp_path / "k.lock"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    said: list[str] = []
    start = time.monotonic()
    with file_lock(tmp_path, said.append, "k", "the killed holder"):
        pass
    assert time.monotonic() - start < 1.0 and said == []
