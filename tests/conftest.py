"""Shared fixtures: chains (embedded py-evm and a real anvil), deployed contracts.

Every test that takes `chain` runs twice: on the embedded chain and on an anvil node
that this test session starts and stops. Each test gets a clean state (a snapshot is
reverted after it), so tests stay independent and fast.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.chain import rpc
from ledger.chain.anvil import AnvilProcess
from ledger.chain.rpc import Chain
from ledger.config import settings

CHAIN_KINDS = [k for k in (settings().test_chains or "embedded,anvil").split(",") if k]


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilProcess]:
    with AnvilProcess() as node:
        yield node


@pytest.fixture(scope="session")
def _embedded_chain() -> Chain:
    return rpc.embedded()


@pytest.fixture(params=CHAIN_KINDS)
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """A chain with funded dev accounts, reset after each test."""
    if request.param == "embedded":
        c: Chain = request.getfixturevalue("_embedded_chain")
    else:
        node: AnvilProcess = request.getfixturevalue("anvil_node")
        c = rpc.connect(node.url)
        c.poll_interval = 0.01
    snap = c.snapshot()
    settings = {k: getattr(c, k) for k in _CHAIN_SETTINGS}
    try:
        yield c
    finally:
        c.revert_to(snap)
        for k, v in settings.items():  # what a test (or an outbox it made) set on the shared chain
            setattr(c, k, v)


_CHAIN_SETTINGS = ("confirmations", "poll_interval", "timeout", "max_fee", "lock_dir", "progress",
                   "held_nonces")


@pytest.fixture
def evidence_log(chain: Chain):  # type: ignore[no-untyped-def]
    """A freshly deployed EvidenceLog; accounts[0] is admin and anchorer."""
    return chain.deploy("EvidenceLog", chain.accounts[0].address)


# --- the escrow ----------------------------------------------------------------------------

from ledger.dev.sandbox import EscrowEnv, make_escrow_env  # noqa: E402


@pytest.fixture
def escrow_env(chain: Chain) -> EscrowEnv:
    """A freshly deployed escrow on the test's chain (reverted with the chain after the test)."""
    return make_escrow_env(chain)
