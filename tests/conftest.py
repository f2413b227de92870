"""Shared fixtures: chains (embedded py-evm and a real anvil), deployed contracts.

Every test that takes `chain` runs twice: on the embedded chain and on an anvil node
that this test session starts and stops. Each test gets a clean state (a snapshot is
reverted after it), so tests stay independent and fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ledger import chain as chain_mod
from ledger.chain import Chain
from ledger.node import AnvilProcess

CHAIN_KINDS = [k for k in os.environ.get("LEDGER_TEST_CHAINS", "embedded,anvil").split(",") if k]


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilProcess]:
    with AnvilProcess() as node:
        yield node


@pytest.fixture(scope="session")
def _embedded_chain() -> Chain:
    return chain_mod.embedded()


@pytest.fixture(params=CHAIN_KINDS)
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """A chain with funded dev accounts, reset after each test."""
    if request.param == "embedded":
        c: Chain = request.getfixturevalue("_embedded_chain")
    else:
        node: AnvilProcess = request.getfixturevalue("anvil_node")
        c = chain_mod.connect(node.url)
        c.poll_interval = 0.01
    snap = c.snapshot()
    try:
        yield c
    finally:
        c.revert_to(snap)


@pytest.fixture
def evidence_log(chain: Chain):  # type: ignore[no-untyped-def]
    """A freshly deployed EvidenceLog; accounts[0] is admin and anchorer."""
    return chain.deploy("EvidenceLog", chain.accounts[0].address)


# --- the escrow ----------------------------------------------------------------------------

from dataclasses import dataclass  # noqa: E402

from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402

from ledger.deploy import deploy_escrow  # noqa: E402
from ledger.escrow import EscrowClient  # noqa: E402

TOKEN_SUPPLY = 10**15  # per party, in base units of the 6-decimal test stablecoin


@dataclass
class EscrowEnv:
    """A deployed escrow with named parties (all funded with ETH and test stablecoin).

    admin: DEFAULT_ADMIN of escrow and panel; carriers registered: carrier, carrier2;
    panel: three members, two of three decide; deposit ratio 20% (merchants pre-deposit
    in both tokens); lender and treasury are fresh keys; stranger is registered nowhere.
    """

    chain: Chain
    client: EscrowClient
    token: str  # TestStablecoin address
    admin: LocalAccount
    merchant: LocalAccount
    merchant2: LocalAccount
    buyer: LocalAccount
    buyer2: LocalAccount
    carrier: LocalAccount
    carrier2: LocalAccount
    panel: list[LocalAccount]
    lender: LocalAccount
    treasury: LocalAccount
    stranger: LocalAccount


def _fresh_funded(chain: Chain, funder: LocalAccount, seed: str) -> LocalAccount:
    acct = Account.from_key(bytes.fromhex(__import__("hashlib").sha256(seed.encode()).hexdigest()))
    tx = {"to": acct.address, "value": 10**21, "gas": 21_000, "chainId": chain.chain_id,
          "nonce": chain._next_nonce(funder.address), **chain._fees()}
    chain.wait(chain.broadcast(bytes(funder.sign_transaction(tx).raw_transaction)))
    return acct


def make_escrow_env(chain: Chain, *, deposit: int = 10**12, deposit_eth: int = 10**20) -> EscrowEnv:
    a = chain.accounts
    admin = a[0]
    treasury = _fresh_funded(chain, admin, "treasury")
    lender = _fresh_funded(chain, admin, "lender")
    stranger = _fresh_funded(chain, admin, "stranger")
    dep = deploy_escrow(chain, None, panel=[x.address for x in a[7:10]], threshold=2,
                        treasury=treasury.address, redeploy=True)
    client = EscrowClient.at(chain, dep.escrow.address, dep.arbitrator.address)
    token = chain.deploy("TestStablecoin", sender=admin)
    client.set_token_allowed(token.address, True, admin)
    for carrier in (a[5], a[6]):
        client.set_carrier(carrier.address, True, admin)
    for party in (a[1], a[2], a[3], a[4], lender, stranger):
        chain.transact(token.functions.mint(party.address, TOKEN_SUPPLY), admin)
    for merchant in (a[1], a[2]):
        client.deposit(merchant.address, token.address, deposit, merchant)
        client.deposit(merchant.address, "0x" + "00" * 20, deposit_eth, merchant)
    return EscrowEnv(chain, client, token.address, admin, a[1], a[2], a[3], a[4], a[5], a[6],
                     list(a[7:10]), lender, treasury, stranger)


@pytest.fixture
def escrow_env(chain: Chain) -> EscrowEnv:
    """A freshly deployed escrow on the test's chain (reverted with the chain after the test)."""
    return make_escrow_env(chain)
