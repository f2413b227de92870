"""Time in the records' form: RFC 3339 parsing to integer nanoseconds, and back."""

from __future__ import annotations

import calendar
import datetime
import re
import time

from ledger.errors import ConfigError

__all__ = ["MAX_NS", "MAX_RFC3339", "parse_time_ns", "rfc3339", "ts_ns"]

#: The latest time a record can carry. The store orders records by their time in unix
#: nanoseconds in an SQLite INTEGER, which is signed 64-bit; years 1970 to 9999 would need
#: 68 bits, and no commerce event is dated after 2262.
MAX_NS = 2**63 - 1
MAX_RFC3339 = "2262-04-11T23:47:16.854775807Z"


_RFC3339_ANY = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_time_ns(text: str) -> int:
    """An RFC 3339 time (``Z`` or an offset, up to 9 fractional digits) as unix nanoseconds.

    Integer nanoseconds compare exactly; the strings do not (``…00.5Z`` sorts before
    ``…00Z``). Raises ConfigError (a ValueError) naming the text for anything else.
    """
    m = _RFC3339_ANY.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(f"not an RFC 3339 time: {str(text)[:40]!r} (e.g. 2026-11-11T00:00:00Z)")
    y, mo, d, hh, mi, ss = (int(g) for g in m.groups()[:6])
    try:
        base = calendar.timegm(datetime.datetime(y, mo, d, hh, mi, ss).timetuple())
    except ValueError:
        raise ConfigError(f"not a real date and time: {text[:40]!r}") from None
    offset = m.group(8)
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        base -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    frac = (m.group(7) or ".")[1:].ljust(9, "0")
    return base * 10**9 + int(frac)


def rfc3339(unix: int | None = None) -> str:
    """A unix time (default: now) in the records' RFC 3339 UTC form, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


_DAY_NS: dict[str, int] = {}


def ts_ns(ts: str) -> int:
    """A validated record's ``ts`` as unix nanoseconds (fast: dates are cached)."""
    day = _DAY_NS.get(ts[:10])
    if day is None:
        day = calendar.timegm((int(ts[0:4]), int(ts[5:7]), int(ts[8:10]), 0, 0, 0)) * 10**9
        if len(_DAY_NS) < 100_000:
            _DAY_NS[ts[:10]] = day
    secs = int(ts[11:13]) * 3600 + int(ts[14:16]) * 60 + int(ts[17:19])
    frac = ts[20:-1]
    return day + secs * 10**9 + (int(frac.ljust(9, "0")) if frac else 0)


