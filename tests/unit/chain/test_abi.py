"""Reverts decoded against the project's ABIs and read in plain words."""

from __future__ import annotations

import pytest

from ledger.chain.abi import decode_revert
from ledger.errors import ContractRevert


def test_reverts_read_in_plain_words_from_natspec(escrow_env) -> None:  # type: ignore[no-untyped-def]
    from ledger.escrow.eip712 import escrow_order_id

    with pytest.raises(ContractRevert) as err:
        escrow_env.client.release(escrow_order_id("nope", escrow_env.merchant.address), escrow_env.admin)
    e = err.value
    assert e.error_name == "EscrowUnexpectedState"
    assert "an order is not in one of the states an action needs" in str(e)
    assert e.error_args["orderId"] == "0x" + escrow_order_id("nope", escrow_env.merchant.address).hex()


def test_unknown_and_malformed_revert_data() -> None:
    assert decode_revert(b"").error_name == "Unknown"
    assert "unknown error 0xdeadbeef" in str(decode_revert(bytes.fromhex("deadbeef")))
    panic = bytes.fromhex("4e487b71") + (0x11).to_bytes(32, "big")
    assert "arithmetic overflow" in str(decode_revert(panic))
