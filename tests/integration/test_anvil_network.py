"""anvil as a stand-in for a production network (chain id 8453, 2 s blocks, a 1 gwei base
fee): what `AnvilProcess` starts, and that such a node is treated as a real network."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ledger.chain.anvil import AnvilProcess, anvil_command
from ledger.chain.keys import resolve_signer
from ledger.chain.rpc import ANVIL_CHAIN_ID, connect
from ledger.errors import ConfigError

GWEI = 10**9
BASE_CHAIN_ID = 8453


def test_anvil_command_options() -> None:
    cmd = anvil_command(8545, chain_id=BASE_CHAIN_ID, base_fee=GWEI, block_time=2)
    assert cmd[cmd.index("--chain-id") + 1] == "8453"
    assert cmd[cmd.index("--base-fee") + 1] == str(GWEI)
    assert cmd[cmd.index("--block-time") + 1] == "2"
    plain = anvil_command(8545)
    assert "--chain-id" not in plain and "--base-fee" not in plain and "--block-time" not in plain
    with pytest.raises(ConfigError, match="chain id must be from 1"):
        anvil_command(8545, chain_id=0)
    with pytest.raises(ConfigError, match="base fee must be a number of wei from 0"):
        anvil_command(8545, base_fee=-1)


@pytest.fixture(scope="module")
def production_like() -> Iterator[AnvilProcess]:
    with AnvilProcess(chain_id=BASE_CHAIN_ID, base_fee=GWEI, block_time=2) as node:
        yield node


def test_a_production_like_anvil(production_like: AnvilProcess) -> None:
    chain = connect(production_like.url, signers=[])
    assert chain.chain_id == BASE_CHAIN_ID
    assert int(chain.w3.provider.make_request("eth_chainId", [])["result"], 16) == BASE_CHAIN_ID  # type: ignore[arg-type]
    assert chain.w3.eth.get_block(0)["baseFeePerGas"] == GWEI
    # anvil, but not a development chain: a real network's rules
    assert chain.client is not None and "anvil" in chain.client.lower()
    assert chain.kind == "rpc" and chain.confirmations == 3 and not chain.mines_on_demand()


def test_time_travel_on_anvil_with_another_chain_id_says_what_it_checks(
    production_like: AnvilProcess,
) -> None:
    chain = connect(production_like.url, signers=[])
    with pytest.raises(ConfigError) as err:
        chain.time_travel(3600)
    message = str(err.value)
    assert message.startswith(f"time travel needs the embedded chain or a local anvil node with chain id "
                              f"{ANVIL_CHAIN_ID}; this node is anvil")
    assert f"with chain id {BASE_CHAIN_ID}; an anvil with another chain id" in message
    with pytest.raises(ConfigError, match="development accounts exist only on the embedded chain or a "
                                          "local anvil node with chain id 31337, not on rpc chain 8453"):
        resolve_signer("dev:1", chain)


def test_ledger_advance_on_it_exits_2_with_the_reason(production_like: AnvilProcess) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LEDGER_PRIVATE_KEY", "LEDGER_KEYSTORE")}
    proc = subprocess.run([sys.executable, "-m", "ledger", "advance", "1h", "--rpc", production_like.url],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "needs the embedded chain or a local anvil node with chain id 31337" in proc.stderr
    assert "this node is anvil" in proc.stderr and "chain id 8453" in proc.stderr
