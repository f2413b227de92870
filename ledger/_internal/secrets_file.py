"""Reading a small secret file (a master-secret keyfile, a keystore password file) safely.

One check for every secret file the program reads: it must be a regular file (not a
symlink, which could point anywhere, nor a directory), readable by its owner only (a
group- or world-readable secret is already disclosed to every account on the machine, so
it is refused with the fix, `chmod 600`), and small. Errors name the file and why, never
what it holds.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ledger.errors import ConfigError

__all__ = ["read_private_file"]


def read_private_file(path: Path, what: str, *, max_bytes: int = 1024, expected: str = "") -> bytes:
    """The bytes of the secret file `path` (called `what` in errors, e.g. "keyfile"), after
    checking that it is a regular file only its owner can access, of at most `max_bytes`
    (`expected` says what it should hold, for the error when it is larger)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot open {what} {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        if os.name == "posix" and st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise ConfigError(
                f"{what} {path} is accessible by group or others (mode {mode:04o}); "
                f"refusing to use it. Run: chmod 600 {path}"
            )
        if st.st_size > max_bytes:
            hint = f"; expected {expected}" if expected else f"; at most {max_bytes} expected"
            raise ConfigError(f"{what} {path} is {st.st_size} bytes{hint}")
        return os.read(fd, max_bytes + 1)
    finally:
        os.close(fd)
