"""The chain connection: time control on dev chains."""

from __future__ import annotations

import pytest

from ledger.chain import rpc
from ledger.chain.rpc import Chain
from ledger.errors import ConfigError


def test_time_travel_moves_the_clock_exactly(chain: Chain) -> None:
    t0 = chain.timestamp()
    chain.time_travel(3600)
    assert chain.timestamp() == t0 + 3600
    chain.set_next_timestamp(t0 + 7200)
    chain.mine()
    assert chain.timestamp() == t0 + 7200
    with pytest.raises(ConfigError, match="must be after"):
        chain.set_next_timestamp(t0)


def test_embedded_chain_can_start_in_the_past() -> None:
    c = rpc.embedded(genesis_timestamp=1_790_000_000)
    assert c.timestamp() == 1_790_000_000
    c.set_next_timestamp(1_790_000_100)
    c.mine()
    assert c.timestamp() == 1_790_000_100
