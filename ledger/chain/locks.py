"""File locks that processes on one data directory share (`<data dir>/locks/`).

An exclusive `flock` is released by the kernel when its holder exits, kill -9 included, so a
crashed command never leaves a lock behind. Without a lock directory (a library user that
set none) the lock is a no-op: the caller's own thread lock is all there is.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["file_lock"]


@contextlib.contextmanager
def file_lock(lock_dir: Path | None, say: Callable[[str], None], stem: str, what: str, *,
              wait: bool = True) -> Iterator[bool]:
    """Hold ``<lock_dir>/<stem>.lock`` exclusively; if another process holds it, `say` that this
    one waits for `what`, then wait; or, without `wait`, go on without it. Yields whether the
    lock is held."""
    if lock_dir is None:
        yield True
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{stem}.lock"
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            say(f"waiting for {what} (lock {path})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
