"""Escrow calls are built in one place: the function, its arguments, and the value it pays."""

from __future__ import annotations

import pytest

from ledger.dev.sandbox import EscrowEnv
from ledger.escrow.eip712 import Attestation, Offer, canonical_tracking, escrow_order_id
from ledger.escrow.types import NATIVE, ZERO32


def _id(order_id: str) -> bytes:
    return escrow_order_id(order_id, "0x" + "ab" * 20)


def _offer(env: EscrowEnv, token: str) -> Offer:
    return Offer(_id("O1"), env.merchant.address, env.buyer.address, token, 5_000, 10**10, 3600,
                 b"\x01" * 32, 10**10, 1)


def test_fund_pays_the_price_in_eth_and_nothing_in_a_token(escrow_env: EscrowEnv) -> None:
    calls = escrow_env.client.calls
    assert calls.fund(_offer(escrow_env, NATIVE), b"s" * 65).value == 5_000
    assert calls.fund(_offer(escrow_env, escrow_env.token), b"s" * 65).value == 0
    assert calls.deposit_for(escrow_env.merchant.address, NATIVE, 7).value == 7
    assert calls.deposit_for(escrow_env.merchant.address, escrow_env.token, 7).value == 0
    assert calls.fund_reserve(NATIVE, 9).value == 9
    assert calls.open_dispute(_id("O1"), ZERO32, 123).value == 123
    assert calls.release(_id("O1")).value == 0


def test_attestations_go_to_their_own_function(escrow_env: EscrowEnv) -> None:
    calls, waybill = escrow_env.client.calls, canonical_tracking("SF", "SF123456")
    names = {kind: calls.attested(Attestation(kind, _id("O1"), waybill, 1), b"s" * 65).label
             for kind in ("Shipment", "Delivery", "ReturnShipment", "ReturnDelivery")}
    assert names == {"Shipment": "ship", "Delivery": "deliver", "ReturnShipment": "shipReturn",
                     "ReturnDelivery": "deliverReturn"}


def test_a_batch_carries_the_escrow_calls_and_refuses_what_cannot_be_batched(
        escrow_env: EscrowEnv) -> None:
    e = escrow_env
    calls, batcher = e.client.calls, e.client.batcher
    assert batcher is not None
    release, refund = calls.release(_id("O1")), calls.refund(_id("O2"), b"\x07" * 32)
    batch = calls.batched(batcher, [release, refund])
    assert batch.value == 0 and batch.label == "batch"
    target, encoded = batch.fn.arguments
    assert target == e.client.address
    assert encoded == [bytes.fromhex(e.client.escrow.encode_abi("release", [_id("O1"), bytes(32)])[2:]),
                       bytes.fromhex(
                           e.client.escrow.encode_abi("refund", [_id("O2"), b"\x07" * 32])[2:])]
    for bad in (calls.fund_reserve(NATIVE, 9), calls.approve(e.token, 1)):
        with pytest.raises(ValueError, match="cannot be batched"):
            calls.batched(batcher, [release, bad])
    with pytest.raises(ValueError, match="empty"):
        calls.batched(batcher, [])


def test_approve_is_a_call_on_the_token_for_this_escrow(escrow_env: EscrowEnv) -> None:
    call = escrow_env.client.calls.approve(escrow_env.token, 42)
    tx = call.fn.build_transaction({"from": escrow_env.buyer.address, "gas": 100_000, "nonce": 0,
                                    "maxFeePerGas": 1, "maxPriorityFeePerGas": 1, "chainId": 1})
    assert tx["to"] == escrow_env.token and call.value == 0
    assert call.fn.arguments == (escrow_env.client.address, 42)


def test_client_and_calls_agree_on_the_chain(escrow_env: EscrowEnv) -> None:
    """The client sends exactly the built call: an ETH deposit moves the value the call names."""
    e = escrow_env
    before = e.client.deposit_of(NATIVE, e.merchant.address)[0]
    e.client.deposit(e.merchant.address, NATIVE, 1234, e.merchant)
    assert e.client.deposit_of(NATIVE, e.merchant.address)[0] == before + 1234
