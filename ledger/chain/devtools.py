"""Time and state controls of development chains (the embedded py-evm chain and anvil):
the clock, mining on demand, snapshots. `ledger.chain.rpc.Chain` inherits them; on any other
node they raise `ConfigError`, since a real network's clock and history are not ours to set.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.types import RPCEndpoint

from ledger.errors import ConfigError

__all__ = ["DevChainControls"]


class DevChainControls:
    """Mixed into `ledger.chain.rpc.Chain`, which supplies these fields."""

    w3: Web3
    kind: str
    tester: Any
    _nonces: dict[str, int]

    def timestamp(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def time_travel(self, seconds: int) -> None:
        """Advance chain time by `seconds` and mine a block (embedded and anvil only)."""
        if self.kind not in ("embedded", "anvil"):
            raise ConfigError("time travel needs the embedded chain or anvil")
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
            raise ConfigError("setting block times needs the embedded chain or anvil")

    def mine(self, blocks: int = 1) -> None:
        if self.kind == "embedded":
            self.tester.mine_blocks(blocks)
        elif self.kind == "anvil":
            self.w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(blocks)])
        else:
            raise ConfigError("mining on demand needs the embedded chain or anvil")

    def snapshot(self) -> Any:
        if self.kind == "embedded":
            return self.tester.take_snapshot()
        if self.kind == "anvil":
            return self.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
        raise ConfigError("snapshots need the embedded chain or anvil")

    def revert_to(self, snapshot: Any) -> None:
        self._nonces.clear()
        if self.kind == "embedded":
            self.tester.revert_to_snapshot(snapshot)
        elif self.kind == "anvil":
            self.w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])
        else:
            raise ConfigError("snapshots need the embedded chain or anvil")
