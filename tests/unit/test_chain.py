"""The chain layer: time control, decoded reverts in plain words, key references."""

from __future__ import annotations

import pytest

from ledger import chain as chain_mod
from ledger.chain import Chain, decode_revert, resolve_signer
from ledger.errors import ConfigError, ContractRevert


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
    c = chain_mod.embedded(genesis_timestamp=1_790_000_000)
    assert c.timestamp() == 1_790_000_000
    c.set_next_timestamp(1_790_000_100)
    c.mine()
    assert c.timestamp() == 1_790_000_100


def test_reverts_read_in_plain_words_from_natspec(escrow_env) -> None:  # type: ignore[no-untyped-def]
    from ledger.escrow import order_key

    with pytest.raises(ContractRevert) as err:
        escrow_env.client.release(order_key("nope"), escrow_env.admin)
    e = err.value
    assert e.error_name == "EscrowUnexpectedState"
    assert "an order is not in one of the states an action needs" in str(e)
    assert e.error_args["orderId"] == "0x" + order_key("nope").hex()


def test_unknown_and_malformed_revert_data() -> None:
    assert decode_revert(b"").error_name == "Unknown"
    assert "unknown error 0xdeadbeef" in str(decode_revert(bytes.fromhex("deadbeef")))
    panic = bytes.fromhex("4e487b71") + (0x11).to_bytes(32, "big")
    assert "arithmetic overflow" in str(decode_revert(panic))


def test_key_references() -> None:
    assert resolve_signer("dev:0").address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    key = "0x" + "42" * 32
    assert resolve_signer("env:MY_KEY", env={"MY_KEY": key}).key.hex() == key[2:]
    with pytest.raises(ConfigError, match="not set"):
        resolve_signer("env:MISSING", env={})
    with pytest.raises(ConfigError) as err:
        resolve_signer("env:BAD", env={"BAD": "0x1234secret"})
    assert "1234secret" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown key reference"):
        resolve_signer(key)  # a literal key is never accepted
    with pytest.raises(ConfigError, match="dev:N"):
        resolve_signer("dev:x")


def test_rulings_round_trip() -> None:
    from ledger.escrow import Ruling, buyer_bps_of, split_ruling

    assert [buyer_bps_of(int(r)) for r in Ruling] == [5_000, 10_000, 0, 10_000]
    for bps in (0, 1, 2_500, 9_999, 10_000):
        assert buyer_bps_of(split_ruling(bps)) == bps
    with pytest.raises(ValueError, match="not one of the escrow's rulings"):
        buyer_bps_of(split_ruling(10_000) + 1)
