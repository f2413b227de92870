"""Replacing a stored signed transaction: the same call again, at a higher fee or a fresh nonce.

A transaction the node holds but does not mine (its max fee below the base fee, or its tip
too low to be picked) is replaced under EIP-1559's rule: the same sender and nonce, with a
max fee *and* a priority fee each higher than the pending one's (geth asks for 10 % more;
anvil for any increase; we add 12.5 %). Exactly one of the two can ever be mined, so the
journal keeps both hashes. A transaction whose nonce another one took can never be mined: its
call is signed again with the next free nonce. Either way the calldata, value, gas limit and
chain id are copied from the stored bytes, so the evidence a step cites never changes.

A ceiling (``--max-fee`` / ``LEDGER_MAX_FEE_GWEI``) caps what a replacement may bid: above
it the tool stops and says what fee the network asks for, never spends more on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes

from ledger.errors import LedgerError

__all__ = ["BUMP", "FeeCeiling", "TxCost", "TxFees", "bumped", "eth", "fees_of", "fresh", "gwei", "resign",
           "tx_cost"]

BUMP = (9, 8)  # a replacement bids at least 9/8 of the replaced transaction's fees


class FeeCeiling(LedgerError):
    """A replacement would have to bid more than the configured ceiling."""


@dataclass(frozen=True)
class TxFees:
    """What a stored EIP-1559 transaction bids, and from whom."""

    sender: str
    nonce: int
    max_fee: int
    tip: int


def gwei(wei: int) -> str:
    return f"{wei / 10**9:.9f}".rstrip("0").rstrip(".") + " gwei"


def eth(wei: int) -> str:
    """Wei as ETH, exactly (no float rounding), trailing zeros dropped: '0.000052 ETH'."""
    whole, frac = divmod(wei, 10**18)
    return (f"{whole}.{frac:018d}".rstrip("0").rstrip(".") if frac else str(whole)) + " ETH"


@dataclass(frozen=True)
class TxCost:
    """What a mined transaction cost its sender: gas used x the price per gas it paid."""

    tx_hash: str  # 0x…
    gas_used: int
    effective_gas_price: int  # wei per gas
    block_number: int

    @property
    def cost_wei(self) -> int:
        return self.gas_used * self.effective_gas_price

    def to_json(self) -> dict[str, Any]:
        return {"tx_hash": self.tx_hash, "gas_used": self.gas_used,
                "effective_gas_price": self.effective_gas_price, "cost_wei": self.cost_wei}


def tx_cost(receipt: Any, tx: Any = None, block: Any = None) -> TxCost:
    """The cost of a mined transaction from its receipt's ``effectiveGasPrice`` (anvil, geth
    and eth-tester report it). Where a node leaves it out, it is computed as EIP-1559 charges
    it, from the transaction `tx` and its `block`: base fee + min(tip, max fee - base fee), or
    a legacy transaction's gas price."""
    price = receipt.get("effectiveGasPrice")
    if price is None:
        if tx is None or block is None:
            raise ValueError("the receipt has no effectiveGasPrice: pass the transaction and its block")
        base = int(block.get("baseFeePerGas") or 0)
        if tx.get("maxFeePerGas") is not None:
            price = base + min(int(tx["maxPriorityFeePerGas"]), int(tx["maxFeePerGas"]) - base)
        else:
            price = int(tx["gasPrice"])
    return TxCost("0x" + bytes(receipt["transactionHash"]).hex(), int(receipt["gasUsed"]), int(price),
                  int(receipt["blockNumber"]))


def fees_of(raw: bytes) -> TxFees:
    tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    return TxFees(str(Account.recover_transaction(raw)), int(tx["nonce"]), int(tx["maxFeePerGas"]),
                  int(tx["maxPriorityFeePerGas"]))


def _up(x: int) -> int:
    return -(-x * BUMP[0] // BUMP[1])


def bumped(old: TxFees, next_base_fee: int, tip: int, ceiling: int | None) -> tuple[int, int]:
    """(max fee, tip) for a replacement of `old` that the next block would include: at least
    9/8 of each of old's, and a max fee of twice the next base fee plus the tip (room for
    the base fee to rise for a few blocks). Raises `FeeCeiling` if that exceeds `ceiling`,
    naming what is needed."""
    # A node accepts a replacement only if it raises both fees (by 10% on geth): a tip of 0
    # goes up by at least 1 wei, and so does a max fee too small for 9/8 to add anything.
    new_tip = max(_up(old.tip), tip, old.tip + 1)
    wanted = max(_up(old.max_fee), old.max_fee + 1, 2 * next_base_fee + new_tip)
    if ceiling is None or wanted <= ceiling:
        return wanted, new_tip
    least = max(_up(old.max_fee), old.max_fee + 1, next_base_fee + new_tip)
    if least > ceiling:
        raise FeeCeiling(
            f"the transaction bids a max fee of {gwei(old.max_fee)} (tip {gwei(old.tip)}) and the next "
            f"block's base fee is {gwei(next_base_fee)}: a replacement needs at least {gwei(least)}, "
            f"above the ceiling of {gwei(ceiling)} (--max-fee / LEDGER_MAX_FEE_GWEI)")
    return ceiling, new_tip


def fresh(next_base_fee: int, tip: int, ceiling: int | None) -> tuple[int, int]:
    """(max fee, tip) for a new transaction: twice the next base fee plus the tip, capped at
    `ceiling`; `FeeCeiling` if even the next base fee plus the tip exceeds it."""
    wanted = 2 * next_base_fee + tip
    if ceiling is None or wanted <= ceiling:
        return wanted, tip
    if next_base_fee + tip > ceiling:
        raise FeeCeiling(f"the next block's base fee is {gwei(next_base_fee)}: a transaction with a tip of "
                         f"{gwei(tip)} needs a max fee of at least {gwei(next_base_fee + tip)}, above the "
                         f"ceiling of {gwei(ceiling)} (--max-fee / LEDGER_MAX_FEE_GWEI)")
    return ceiling, tip


def resign(raw: bytes, signer: LocalAccount, *, nonce: int | None = None, max_fee: int | None = None,
           tip: int | None = None) -> tuple[bytes, bytes, int]:
    """The stored transaction `raw` signed again by `signer` (its sender) with another nonce
    and/or fees; everything else is copied. Returns (raw, hash, nonce)."""
    tx: dict[str, Any] = dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())
    for k in ("v", "r", "s", "type"):
        tx.pop(k, None)
    if str(Account.recover_transaction(raw)).lower() != signer.address.lower():
        raise LedgerError(f"cannot re-sign a transaction of {Account.recover_transaction(raw)} with the key "
                          f"of {signer.address}")
    if tx.get("to") is not None:
        tx["to"] = to_checksum_address(bytes(tx["to"]))
    tx["data"] = bytes(tx["data"])
    if nonce is not None:
        tx["nonce"] = nonce
    if max_fee is not None:
        tx["maxFeePerGas"] = max_fee
    if tip is not None:
        tx["maxPriorityFeePerGas"] = tip
    signed = signer.sign_transaction(tx)
    return bytes(signed.raw_transaction), bytes(signed.hash), int(tx["nonce"])
