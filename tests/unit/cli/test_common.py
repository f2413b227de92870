"""The argparse types every command shares: a bad value is refused with the reason, before any work."""

from __future__ import annotations

import argparse

import pytest
from eth_utils import to_checksum_address

from ledger.cli._common import (
    UINT256_MAX,
    address,
    address_or_keyref,
    amount,
    bounded,
    keyref,
    price,
    time_bound,
    tx_hash,
)

KEY = "0x" + "4c0883a6" * 8


@pytest.mark.parametrize(("parse", "text", "reason"), [
    (price, "-5", "a price (in the token's base units) must be an integer from 1 to 2^256 - 1, not '-5'"),
    (price, "0", "a price"),
    (price, str(2**256), "from 1 to 2^256 - 1"),
    (price, "1.5", "must be an integer"),
    (amount, "-1", "an amount (in the token's base units) must be an integer from 0 to 2^256 - 1"),
    (amount, "ten", "not 'ten'"),
    (bounded(1, 65535, "a TCP port"), "70000", "a TCP port must be an integer from 1 to 65535"),
    (keyref, KEY, "looks like a raw private key (66 characters)"),
    (keyref, "merchant1", "not a key reference (9 characters)"),
    (address_or_keyref, KEY, "looks like a raw private key"),
    (address_or_keyref, "0x1234", "not a key reference (6 characters): use dev:N, env:VAR or "
                                  "keystore:PATH (or a 0x address)"),
    (address, "dev:1", "not an address: 'dev:1'"),
    (tx_hash, "0xzz", "not a transaction hash: '0xzz'"),
    (time_bound, "yesterday", "not an RFC 3339 time: 'yesterday'"),
])  # fmt: skip
def test_bad_values_are_refused_with_the_reason(parse, text: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(argparse.ArgumentTypeError) as err:
        parse(text)
    assert str(err.value).startswith(reason) or reason in str(err.value), str(err.value)
    assert "4c0883a6" not in str(err.value)


def test_good_values_pass() -> None:
    assert price("1") == 1 and amount(str(UINT256_MAX)) == UINT256_MAX and amount("0") == 0
    assert keyref(" dev:3 ") == "dev:3" and address_or_keyref("env:KEY") == "env:KEY"
    assert address("0x" + "ab" * 20) == to_checksum_address("0x" + "ab" * 20)
    assert tx_hash("ab" * 32) == "0x" + "ab" * 32
    assert time_bound("2026-11-11T00:00:00+08:00") == "2026-11-11T00:00:00+08:00"
