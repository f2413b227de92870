"""Logging set-up for the command line: quiet by default, ``-v``/``-vv``, JSON lines on request.

Library modules only ever call ``logging.getLogger(__name__)``: every logger of the package
hangs under ``ledger``, which has a `logging.NullHandler` (see ``ledger/__init__.py``) so
that a program embedding the package decides itself what is shown. `configure` is for the
command line: one handler on stderr, text or JSON, and a filter that blanks out any known
secret value should one ever reach a message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable

__all__ = ["JsonFormatter", "SecretFilter", "configure", "level_for"]

ROOT = "ledger"
REDACTED = "[redacted]"

# Attributes every LogRecord has; anything else was passed in `extra=` and is logged as a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and the fields given in `extra`."""

    converter = time.gmtime  # type: ignore[assignment]  # typeshed: gmtime takes an optional float

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, sort_keys=False)


class SecretFilter(logging.Filter):
    """Replaces every occurrence of a known secret in a record, whatever its letter case and
    with or without a ``0x`` prefix. A second line of defence: nothing logs a secret on purpose.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        bodies = {s.strip().removeprefix("0x").removeprefix("0X") for s in secrets}
        bodies = {b for b in bodies if len(b) >= 8}  # shorter values would blank ordinary words
        self._pattern = (re.compile("|".join(re.escape(b) for b in sorted(bodies, key=len, reverse=True)),
                                    re.IGNORECASE) if bodies else None)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        message = record.getMessage()
        clean = self._pattern.sub(REDACTED, message)
        if clean != message:
            record.msg, record.args = clean, None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self._pattern.sub(REDACTED, value))
        return True


def level_for(verbosity: int, default: str | None) -> int:
    """-v: INFO, -vv: DEBUG; without -v, `default` (a level name) or WARNING."""
    if verbosity >= 2:
        return logging.DEBUG
    if verbosity == 1:
        return logging.INFO
    if default:
        level = logging.getLevelName(default.strip().upper())
        if isinstance(level, int):
            return level
    return logging.WARNING


class _CurrentStderr:
    """Whatever `sys.stderr` is when a record is written (tests swap it), not when set up."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: int, *, as_json: bool = False, secrets: Iterable[str] = ()) -> None:
    """Send the package's log records at `level` and above to stderr (replacing earlier set-up)."""
    logger = logging.getLogger(ROOT)
    for h in list(logger.handlers):
        if not isinstance(h, logging.NullHandler):
            logger.removeHandler(h)
    handler = logging.StreamHandler(_CurrentStderr())
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(secrets))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
