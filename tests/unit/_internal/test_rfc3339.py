"""Time: RFC 3339 parsing to nanoseconds, and ranges that compare as times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.records import parse_record
from tests.unit.evidence.records_data import valid


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=__import__("datetime").datetime(1970, 1, 1),
                    max_value=__import__("datetime").datetime(2262, 4, 11, 23, 47, 15)),
       st.integers(0, 9), st.integers(0, 999_999_999))
def test_ts_ns_agrees_with_the_general_parser(dt: Any, digits: int, frac: int) -> None:
    from ledger._internal.rfc3339 import parse_time_ns, ts_ns

    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + (("." + str(frac).zfill(9)[:digits]) if digits else "") + "Z"
    rec = parse_record({**valid("payment"), "ts": text})
    assert ts_ns(rec.ts) == parse_time_ns(text)
    assert parse_time_ns(text.replace("Z", "+08:00")) == parse_time_ns(text) - 8 * 3600 * 10**9


def test_the_latest_time_is_the_largest_signed_64_bit_nanosecond() -> None:
    from ledger._internal.rfc3339 import MAX_NS, MAX_RFC3339, parse_time_ns, ts_ns

    assert ts_ns(MAX_RFC3339) == parse_time_ns(MAX_RFC3339) == MAX_NS == 2**63 - 1


def test_time_bounds_compare_as_times_not_strings(tmp_path: Path) -> None:
    from ledger.errors import ConfigError
    from ledger.evidence.store import Store

    with Store(tmp_path / "s.sqlite3", MasterSecret.generate()) as store:
        recs = [parse_record({**valid("payment"), "id": f"p{i}", "ts": ts})
                for i, ts in enumerate(["2026-11-11T20:00:00Z", "2026-11-11T20:00:00.5Z",
                                        "2026-11-11T20:00:01Z"])]
        store.ingest(recs, source="t")
        # As strings, "...00.5Z" < "...00Z"; as times it is half a second later.
        got = [r.id for r in store.records_for_merchant("M1", since="2026-11-11T20:00:00.25Z")]
        assert got == ["p1", "p2"]
        got = [r.id for r in store.records_in_range(None, "2026-11-11T20:00:00.5Z")]
        assert got == ["p0"]
        assert [r.id for r in store.records_in_range("2026-11-12T04:00:00.5+08:00", None)] == ["p1", "p2"]
        with pytest.raises(ConfigError, match="not an RFC 3339 time"):
            store.records_in_range("yesterday", None)
        # Bounds no record's time can reach (outside signed 64-bit nanoseconds) still work.
        assert len(store.records_in_range("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z")) == 3
        assert store.records_in_range("9999-01-01T00:00:00Z", None) == []
        assert store.records_in_range(None, "1900-01-01T00:00:00Z") == []
