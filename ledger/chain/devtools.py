"""Time and state controls of development chains (the embedded py-evm chain and anvil):
the clock, mining on demand, snapshots. `ledger.chain.rpc.Chain` inherits them; on any other
node they raise `ConfigError`, since a real network's clock and history are not ours to set.

A development anvil is one whose client version says anvil AND whose chain id is anvil's
default, 31337 (`ledger.chain.rpc.connect`). An anvil started with another chain id is
taken for what it presents itself as: a stand-in for a real network (a rehearsal of
production, or a fork of one), where development accounts do not sign, confirmations
default to 3 and the clock is not set by us. The client version alone is not enough: any
node can claim it, and the chain id is what signatures and manifests are bound to.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.types import RPCEndpoint

from ledger.errors import ConfigError

__all__ = ["ANVIL_CHAIN_ID", "DevChainControls"]

#: anvil's default chain id: an anvil node with it is a development chain
ANVIL_CHAIN_ID = 31337


class DevChainControls:
    """Mixed into `ledger.chain.rpc.Chain`, which supplies these fields."""

    w3: Web3
    kind: str
    client: str | None
    tester: Any
    _nonces: dict[str, int]

    def _not_a_dev_chain(self, what: str) -> ConfigError:
        """The error for a development control (`what` needs ...) on a node that is not a
        development chain, saying what is checked and what this node is."""
        client = (self.client or "a node of unknown client")[:60]
        try:
            chain_id: int | str = int(self.w3.eth.chain_id)
        except Exception:  # noqa: BLE001 - the message must not fail
            chain_id = "unknown"
        why = ""
        if "anvil" in client.lower():
            why = (f"; an anvil with another chain id than {ANVIL_CHAIN_ID} stands in for a real "
                   "network, whose clock and history are not ours to set (start a development "
                   "node with `ledger node`)")
        return ConfigError(f"{what} needs the embedded chain or a local anvil node with chain id "
                           f"{ANVIL_CHAIN_ID}; this node is {client} with chain id {chain_id}{why}")

    def timestamp(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def time_travel(self, seconds: int) -> None:
        """Advance chain time by `seconds` and mine a block (embedded and anvil only)."""
        if self.kind not in ("embedded", "anvil"):
            raise self._not_a_dev_chain("time travel")
        # Both clocks' own increase-time calls can land a second off (eth-tester's short,
        # anvil's late when the wall clock ticks in between): mine the exact time.
        self.set_next_timestamp(self.timestamp() + seconds)
        self.mine()

    def set_next_timestamp(self, timestamp: int) -> None:
        """Make the next block (the next transaction's, auto-mined) carry `timestamp`.

        It must be later than the latest block's. Embedded chain and anvil only.
        """
        latest = self.timestamp()
        if timestamp <= latest:
            raise ConfigError(f"next block time {timestamp} must be after the latest block's {latest}")
        if self.kind == "embedded":
            chain = self.tester.backend.chain
            chain.header = chain.header.copy(timestamp=timestamp)
        elif self.kind == "anvil":
            self.w3.provider.make_request(RPCEndpoint("evm_setNextBlockTimestamp"), [timestamp])
        else:
            raise self._not_a_dev_chain("setting block times")

    def mine(self, blocks: int = 1) -> None:
        if self.kind == "embedded":
            self.tester.mine_blocks(blocks)
        elif self.kind == "anvil":
            self.w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(blocks)])
        else:
            raise self._not_a_dev_chain("mining on demand")

    def snapshot(self) -> Any:
        if self.kind == "embedded":
            return self.tester.take_snapshot()
        if self.kind == "anvil":
            return self.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
        raise self._not_a_dev_chain("a snapshot")

    def revert_to(self, snapshot: Any) -> None:
        self._nonces.clear()
        if self.kind == "embedded":
            self.tester.revert_to_snapshot(snapshot)
        elif self.kind == "anvil":
            self.w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])
        else:
            raise self._not_a_dev_chain("a snapshot")
