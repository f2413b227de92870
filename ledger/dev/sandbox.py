"""A ready escrow with named, funded parties on a development chain.

Tests, the case-library script and investigators' experiments all need the same thing: the
escrow and its panel deployed, a test stablecoin allowed, carriers registered, merchants
with deposits, and keys for every role. Only for the embedded chain or a local anvil: the
parties are development accounts and keys derived from public labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from ledger.chain.keys import labelled_key
from ledger.chain.rpc import Chain
from ledger.deploy import deploy_escrow
from ledger.escrow.client import EscrowClient
from ledger.escrow.types import NATIVE

__all__ = ["MERCHANT_DEPOSIT", "TOKEN_SUPPLY", "EscrowEnv", "make_escrow_env"]

TOKEN_SUPPLY = 10**15  # per party, in base units of the 6-decimal test stablecoin
MERCHANT_DEPOSIT = 10**12  # each merchant's deposit in the test stablecoin


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


def make_escrow_env(
    chain: Chain, *, deposit: int = MERCHANT_DEPOSIT, deposit_eth: int = 10**20
) -> EscrowEnv:
    """Deploy and populate an escrow (see `EscrowEnv`); the chain's dev accounts 0..9 act."""
    a = chain.accounts
    admin = a[0]
    treasury, lender, stranger = (labelled_key(x) for x in ("treasury", "lender", "stranger"))
    for acct in (treasury, lender, stranger):
        chain.send_eth(acct.address, 10**21, admin)
    dep = deploy_escrow(chain, None, panel=[x.address for x in a[7:10]], threshold=2,
                        treasury=treasury.address, redeploy=True)
    client = EscrowClient.at(chain, dep.escrow.address, dep.arbitrator.address, dep.batcher.address)
    token = chain.deploy("TestStablecoin", sender=admin)
    client.set_token_allowed(token.address, True, admin)
    for carrier in (a[5], a[6]):
        client.set_carrier(carrier.address, True, admin)
    for party in (a[1], a[2], a[3], a[4], lender, stranger):
        chain.transact(token.functions.mint(party.address, TOKEN_SUPPLY), admin)
    for merchant in (a[1], a[2]):
        client.deposit(merchant.address, token.address, deposit, merchant)
        client.deposit(merchant.address, NATIVE, deposit_eth, merchant)
    return EscrowEnv(chain, client, token.address, admin, a[1], a[2], a[3], a[4], a[5], a[6],
                     list(a[7:10]), lender, treasury, stranger)
