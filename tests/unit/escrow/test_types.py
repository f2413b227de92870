"""The escrow's Python types: rulings and their buyer shares."""

from __future__ import annotations

import pytest


def test_rulings_round_trip() -> None:
    from ledger.escrow.types import Ruling, buyer_bps_of, split_ruling

    assert [buyer_bps_of(int(r)) for r in Ruling] == [5_000, 10_000, 0, 10_000]
    for bps in (0, 1, 2_500, 9_999, 10_000):
        assert buyer_bps_of(split_ruling(bps)) == bps
    with pytest.raises(ValueError, match="not one of the escrow's rulings"):
        buyer_bps_of(split_ruling(10_000) + 1)
