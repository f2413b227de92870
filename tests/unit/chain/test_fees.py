"""Replacements: a fee bump keeps the call and nonce and bids enough; the ceiling is never passed."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes

from ledger.chain.fees import FeeCeiling, TxFees, bumped, eth, fees_of, fresh, gwei, resign, tx_cost
from ledger.chain.keys import dev_keys
from ledger.chain.rpc import Chain
from ledger.errors import LedgerError

GWEI = 10**9


def _signed(nonce: int = 4, max_fee: int = 2 * GWEI, tip: int = GWEI) -> bytes:
    a = dev_keys()[0]
    tx = {"to": dev_keys()[1].address, "value": 7, "gas": 50_000, "chainId": 31337, "nonce": nonce,
          "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "data": b"\x12\x34"}
    return bytes(a.sign_transaction(tx).raw_transaction)


def test_fees_of_reads_sender_nonce_and_bids() -> None:
    assert fees_of(_signed()) == TxFees(dev_keys()[0].address, 4, 2 * GWEI, GWEI)


def test_a_bump_outbids_the_old_transaction_and_the_next_base_fee() -> None:
    old = TxFees("0x", 1, 2 * GWEI, GWEI)
    max_fee, tip = bumped(old, next_base_fee=50 * GWEI, tip=GWEI, ceiling=None)
    assert tip >= old.tip * 9 // 8 and max_fee >= old.max_fee * 9 // 8  # EIP-1559 replacement rule
    assert max_fee == 100 * GWEI + tip  # room for the base fee to rise
    # A base fee below the old bid still needs +12.5 % on both to replace it.
    assert bumped(old, next_base_fee=GWEI // 2, tip=GWEI, ceiling=None) == (2_250_000_000, 1_125_000_000)


def test_the_ceiling_caps_a_bump_and_refuses_one_that_cannot_be_mined_under_it() -> None:
    old = TxFees("0x", 1, 2 * GWEI, GWEI)
    assert bumped(old, next_base_fee=10 * GWEI, tip=GWEI, ceiling=15 * GWEI) == (15 * GWEI, 1_125_000_000)
    with pytest.raises(FeeCeiling) as err:
        bumped(old, next_base_fee=50 * GWEI, tip=GWEI, ceiling=30 * GWEI)
    assert "needs at least 51.125 gwei, above the ceiling of 30 gwei" in str(err.value)


def test_a_bump_of_a_zero_tip_still_raises_both_fees() -> None:
    """A node replaces a pending transaction only if the new one raises the tip as well as the
    max fee: 9/8 of a zero tip is zero, so it goes up by at least one wei."""
    old = TxFees("0x", 1, 7, 0)
    max_fee, tip = bumped(old, next_base_fee=0, tip=0, ceiling=None)
    assert tip > old.tip and max_fee > old.max_fee


def test_a_fresh_transaction_bids_under_the_ceiling_or_says_what_it_needs() -> None:
    assert fresh(10 * GWEI, GWEI, None) == (21 * GWEI, GWEI)
    assert fresh(10 * GWEI, GWEI, 15 * GWEI) == (15 * GWEI, GWEI)  # capped: still above base + tip
    with pytest.raises(FeeCeiling) as err:
        fresh(20 * GWEI, GWEI, 15 * GWEI)
    assert "needs a max fee of at least 21 gwei, above the ceiling of 15 gwei" in str(err.value)


def test_resign_keeps_the_call_and_changes_only_nonce_and_fees() -> None:
    raw = _signed()
    new_raw, new_hash, nonce = resign(raw, dev_keys()[0], max_fee=9 * GWEI, tip=2 * GWEI)
    assert nonce == 4 and new_hash == keccak(new_raw) and new_hash != keccak(raw)
    assert Account.recover_transaction(new_raw) == Account.recover_transaction(raw) == dev_keys()[0].address
    again = fees_of(new_raw)
    assert (again.nonce, again.max_fee, again.tip) == (4, 9 * GWEI, 2 * GWEI)
    a, b = (TypedTransaction.from_bytes(HexBytes(r)).as_dict() for r in (raw, new_raw))
    for k in ("to", "value", "gas", "chainId", "data"):
        assert a[k] == b[k], k
    _, _, fresh = resign(raw, dev_keys()[0], nonce=11)
    assert fresh == 11


def test_resign_refuses_another_sender_key() -> None:
    with pytest.raises(LedgerError, match="cannot re-sign a transaction of"):
        resign(_signed(), dev_keys()[2])


def test_gwei_reads_well() -> None:
    assert (gwei(2 * GWEI), gwei(2_757_000_000), gwei(1)) == ("2 gwei", "2.757 gwei", "0.000000001 gwei")


def test_a_transaction_costs_gas_used_times_the_effective_gas_price() -> None:
    receipt = {"transactionHash": b"\x01" * 32, "gasUsed": 50_000, "blockNumber": 7,
               "effectiveGasPrice": 3 * GWEI}
    cost = tx_cost(receipt)
    assert cost.cost_wei == 150_000 * GWEI and cost.to_json()["tx_hash"] == "0x" + "01" * 32
    # Without effectiveGasPrice: EIP-1559's base fee + min(tip, max fee - base fee), or a legacy price.
    bare = {k: v for k, v in receipt.items() if k != "effectiveGasPrice"}
    block = {"baseFeePerGas": 10 * GWEI}
    assert tx_cost(bare, {"maxFeePerGas": 12 * GWEI, "maxPriorityFeePerGas": 5 * GWEI}, block
                   ).effective_gas_price == 12 * GWEI  # the max fee caps the tip
    assert tx_cost(bare, {"maxFeePerGas": 30 * GWEI, "maxPriorityFeePerGas": GWEI}, block
                   ).effective_gas_price == 11 * GWEI
    assert tx_cost(bare, {"gasPrice": 4 * GWEI}, {}).effective_gas_price == 4 * GWEI
    with pytest.raises(ValueError, match="effectiveGasPrice"):
        tx_cost(bare)


def test_eth_shows_wei_exactly() -> None:
    assert eth(0) == "0 ETH" and eth(10**18) == "1 ETH" and eth(52_113 * GWEI) == "0.000052113 ETH"
    assert eth(10**18 + 1) == "1.000000000000000001 ETH"


def test_the_embedded_chain_reports_the_cost_it_charged(chain: Chain) -> None:
    me = chain.default_account
    before = chain.w3.eth.get_balance(me.address)
    receipt = chain.send_eth(dev_keys()[1].address, 5, me)
    cost = chain.cost(receipt)
    assert cost.gas_used == 21_000 and cost.effective_gas_price > 0
    assert chain.w3.eth.get_balance(me.address) == before - 5 - cost.cost_wei
