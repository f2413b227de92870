"""`EscrowClient`: typed access to one deployed FulfillmentEscrow and its PanelArbitrator.

One method per action and view. Every transaction is signed locally by the acting party's
key and a revert comes back as `ContractRevert` naming the contract's custom error and its
values (see `ledger.chain.abi`). Amounts are integers in the token's base units; the token
``NATIVE`` (the zero address) is ETH. The calls themselves are built by
`ledger.escrow.calls`, which the platform's outbox uses too. docs/escrow.md describes the
state machine and the money rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.contract import Contract

from ledger.chain.abi import decode_log
from ledger.chain.rpc import Chain
from ledger.errors import ConfigError
from ledger.escrow.calls import Call, EscrowCalls, is_native
from ledger.escrow.eip712 import Attestation, Offer, sign_attestation, sign_offer
from ledger.escrow.types import ZERO32, DisputeInfo, OrderInfo, OrderState, Party, Terms, Totals

__all__ = ["EscrowClient"]


@dataclass
class EscrowClient:
    """Typed access to one deployed FulfillmentEscrow (and its arbitrator, if given).

    Every action takes the acting party's key (`sender`) and returns the mined receipt;
    reverts raise `ContractRevert` with the decoded custom error.
    """

    chain: Chain
    escrow: Contract
    arbitrator: Contract | None = None
    batcher: Contract | None = None  # EscrowBatcher, for `batch`
    _terms_cache: dict[int, Terms] = field(default_factory=dict, repr=False)

    @classmethod
    def at(cls, chain: Chain, escrow: str, arbitrator: str | None = None,
           batcher: str | None = None) -> EscrowClient:
        return cls(
            chain,
            chain.contract("FulfillmentEscrow", escrow),
            chain.contract("PanelArbitrator", arbitrator) if arbitrator else None,
            chain.contract("EscrowBatcher", batcher) if batcher else None,
        )

    @property
    def address(self) -> str:
        return str(self.escrow.address)

    # signing ------------------------------------------------------------------------
    def sign_offer(self, merchant: LocalAccount, offer: Offer) -> bytes:
        return sign_offer(merchant, offer, self.chain.chain_id, self.address)

    def sign_attestation(self, carrier: LocalAccount, att: Attestation) -> bytes:
        return sign_attestation(carrier, att, self.chain.chain_id, self.address)

    @cached_property
    def calls(self) -> EscrowCalls:
        """The escrow's calls, built (see `ledger.escrow.calls`)."""
        return EscrowCalls(self.escrow, self.arbitrator)

    def send(self, call: Call, sender: LocalAccount) -> dict[str, Any]:
        """Sign `call` with `sender`'s key, send it and wait; raises the decoded revert."""
        return self.chain.transact(call.fn, sender, value=call.value)

    def batch(self, calls: list[Call], sender: LocalAccount) -> dict[str, Any]:
        """Send permissionless `calls` in one transaction through the EscrowBatcher; a failing
        call reverts them all, with its own error (and its index as ``batchIndex``)."""
        if self.batcher is None:
            raise ConfigError("this client has no EscrowBatcher configured")
        return self.send(self.calls.batched(self.batcher, calls), sender)

    def approve(self, token: str, owner: LocalAccount, amount: int) -> dict[str, Any] | None:
        """Let the escrow pull `amount` of an ERC-20 from `owner` (no-op for ETH)."""
        if is_native(token):
            return None
        return self.send(self.calls.approve(token, amount), owner)

    # order lifecycle ------------------------------------------------------------------
    def fund(self, offer: Offer, signature: bytes, buyer: LocalAccount, *,
             approve: bool = True) -> dict[str, Any]:
        """The buyer pays the price into escrow (approving an ERC-20 first unless told not to)."""
        if approve:
            self.approve(offer.token, buyer, offer.price)
        return self.send(self.calls.fund(offer, signature), buyer)

    def ship(self, att: Attestation, signature: bytes, sender: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.ship(att, signature), sender)

    def deliver(self, att: Attestation, signature: bytes, sender: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.deliver(att, signature), sender)

    def confirm_delivery(self, order_id: bytes, buyer: LocalAccount,
                         evidence: bytes = ZERO32) -> dict[str, Any]:
        return self.send(self.calls.confirm_delivery(order_id, evidence), buyer)

    def release(self, order_id: bytes, sender: LocalAccount, evidence: bytes = ZERO32) -> dict[str, Any]:
        return self.send(self.calls.release(order_id, evidence), sender)

    def refund(self, order_id: bytes, sender: LocalAccount, evidence: bytes = ZERO32) -> dict[str, Any]:
        return self.send(self.calls.refund(order_id, evidence), sender)

    def cancel(self, order_id: bytes, merchant: LocalAccount, evidence: bytes = ZERO32) -> dict[str, Any]:
        return self.send(self.calls.cancel(order_id, evidence), merchant)

    def request_return(self, order_id: bytes, amount: int, buyer: LocalAccount,
                       evidence: bytes = ZERO32) -> dict[str, Any]:
        return self.send(self.calls.request_return(order_id, amount, evidence), buyer)

    def ship_return(self, att: Attestation, signature: bytes, sender: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.ship_return(att, signature), sender)

    def deliver_return(self, att: Attestation, signature: bytes, sender: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.deliver_return(att, signature), sender)

    def confirm_return(self, order_id: bytes, merchant: LocalAccount,
                       evidence: bytes = ZERO32) -> dict[str, Any]:
        return self.send(self.calls.confirm_return(order_id, evidence), merchant)

    def settle_return(self, order_id: bytes, sender: LocalAccount,
                      evidence: bytes = ZERO32) -> dict[str, Any]:
        return self.send(self.calls.settle_return(order_id, evidence), sender)

    def pledge(self, order_id: bytes, lender: str, merchant: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.pledge(order_id, lender), merchant)

    # disputes ---------------------------------------------------------------------------
    def arbitration_cost(self, order_id: bytes) -> int:
        info = self.order(order_id)
        terms = self.terms(info.terms_id)
        arb = self.chain.contract("IArbitrator", terms.arbitrator)
        return int(self.chain.call(arb.functions.arbitrationCost(terms.arbitrator_extra_data)))

    def open_dispute(self, order_id: bytes, party: LocalAccount, evidence: bytes = ZERO32) -> dict[str, Any]:
        """Open a dispute, paying the arbitration cost of the order's arbitrator."""
        return self.send(self.calls.open_dispute(order_id, evidence, self.arbitration_cost(order_id)), party)

    def submit_evidence(self, order_id: bytes, party: LocalAccount, evidence: str) -> dict[str, Any]:
        return self.send(self.calls.submit_evidence(order_id, evidence), party)

    def claim_default(self, order_id: bytes, opener: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.claim_default(order_id), opener)

    def timeout_dispute(self, order_id: bytes, sender: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.timeout_dispute(order_id), sender)

    def vote(self, dispute_id: int, ruling: int, member: LocalAccount) -> dict[str, Any]:
        """A panel member's vote on the bundled PanelArbitrator."""
        return self.send(self.calls.vote(dispute_id, ruling), member)

    def refund_fee(self, dispute_id: int, sender: LocalAccount) -> dict[str, Any]:
        """Have the panel refund a dispute's held fee to its opener (after a default or timeout)."""
        return self.send(self.calls.refund_fee(dispute_id), sender)

    def set_panel(self, members: list[str], threshold: int, cost: int, admin: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.set_panel(members, threshold, cost), admin)

    # money -----------------------------------------------------------------------------
    def deposit(self, merchant: str, token: str, amount: int, sender: LocalAccount) -> dict[str, Any]:
        """Add to `merchant`'s deposit (approving an ERC-20 first)."""
        self.approve(token, sender, amount)
        return self.send(self.calls.deposit_for(merchant, token, amount), sender)

    def withdraw_deposit(self, token: str, amount: int, merchant: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.withdraw_deposit(token, amount), merchant)

    def fund_reserve(self, token: str, amount: int, sender: LocalAccount) -> dict[str, Any]:
        self.approve(token, sender, amount)
        return self.send(self.calls.fund_reserve(token, amount), sender)

    def withdraw(self, token: str, account: LocalAccount, to: str | None = None) -> dict[str, Any]:
        return self.send(self.calls.withdraw(token, to), account)

    # administration ------------------------------------------------------------------------
    def set_terms(self, terms: Terms, meta_evidence: str, admin: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.set_terms(terms, meta_evidence), admin)

    def set_carrier(self, carrier: str, registered: bool, admin: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.set_carrier(carrier, registered), admin)

    def set_token_allowed(self, token: str, allowed: bool, admin: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.set_token_allowed(token, allowed), admin)

    def set_treasury(self, treasury: str, admin: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.set_treasury(treasury), admin)

    def withdraw_fees(self, token: str, amount: int, admin: LocalAccount) -> dict[str, Any]:
        return self.send(self.calls.withdraw_fees(token, amount), admin)

    # views ----------------------------------------------------------------------------------
    def order(self, order_id: bytes) -> OrderInfo:
        t = self.chain.call(self.escrow.functions.getOrder(order_id))
        return OrderInfo(
            merchant=str(t[0]), buyer=str(t[1]), token=str(t[2]), price=int(t[3]),
            state=OrderState(int(t[4])), clock=int(t[5]), inspection_window=int(t[6]),
            terms_id=int(t[7]), lender=str(t[8]), deadline=int(t[9]),
        )  # fmt: skip

    def state(self, order_id: bytes) -> OrderState:
        return OrderState(int(self.chain.call(self.escrow.functions.orderState(order_id))))

    def lender_of(self, order_id: bytes) -> str | None:
        lender = str(self.chain.call(self.escrow.functions.lenderOf(order_id)))
        return None if int(lender, 16) == 0 else lender

    def return_of(self, order_id: bytes) -> tuple[int, bytes]:
        amount, th = self.chain.call(self.escrow.functions.returnOf(order_id))
        return int(amount), bytes(th)

    def dispute_of(self, order_id: bytes) -> DisputeInfo:
        t = self.chain.call(self.escrow.functions.disputeOf(order_id))
        return DisputeInfo(str(t[0]), int(t[1]), int(t[2]), Party(int(t[3])), bool(t[4]),
                           OrderState(int(t[5])))

    def order_of_tracking(self, th: bytes) -> bytes | None:
        oid = bytes(self.chain.call(self.escrow.functions.orderOfTracking(th)))
        return None if oid == ZERO32 else oid

    def totals(self, token: str) -> Totals:
        t = self.chain.call(self.escrow.functions.totals(to_checksum_address(token)))
        return Totals(*(int(x) for x in t))

    def credit_of(self, token: str, account: str) -> int:
        fn = self.escrow.functions.creditOf(to_checksum_address(token), to_checksum_address(account))
        return int(self.chain.call(fn))

    def deposit_of(self, token: str, merchant: str) -> tuple[int, int]:
        """(deposit, locked) of a merchant in a token: `locked` is what its open orders hold
        (each ceil(price x its terms' deposit ratio / 10000)); the rest may be withdrawn."""
        fn = self.escrow.functions.depositOf(to_checksum_address(token), to_checksum_address(merchant))
        d, locked = self.chain.call(fn)
        return int(d), int(locked)

    def current_terms_id(self) -> int:
        """The terms version new orders are funded under (an offer must name it)."""
        return int(self.chain.call(self.escrow.functions.currentTermsId()))

    def terms(self, terms_id: int | None = None) -> Terms:
        if terms_id is None:
            terms_id = self.current_terms_id()
        if terms_id not in self._terms_cache:  # versions are immutable once published
            self._terms_cache[terms_id] = Terms.from_tuple(
                self.chain.call(self.escrow.functions.terms(terms_id)))
        return self._terms_cache[terms_id]

    def is_carrier(self, address: str) -> bool:
        return bool(self.chain.call(self.escrow.functions.isCarrier(to_checksum_address(address))))

    def token_info(self, token: str) -> tuple[int, bool]:
        tid, allowed = self.chain.call(self.escrow.functions.tokenInfo(to_checksum_address(token)))
        return int(tid), bool(allowed)

    def balance(self, token: str, account: str | None = None) -> int:
        """`account`'s balance of `token` (the escrow's own by default)."""
        who = to_checksum_address(account or self.address)
        if is_native(token):
            return int(self.chain.w3.eth.get_balance(who))
        erc20 = self.chain.contract("TestStablecoin", token)
        return int(self.chain.call(erc20.functions.balanceOf(who)))

    # events ---------------------------------------------------------------------------------
    def events(self, receipt: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The escrow's (and arbitrator's) events in a receipt, decoded, in log order."""
        out: list[tuple[str, dict[str, Any]]] = []
        contracts = [self.escrow] + ([self.arbitrator] if self.arbitrator is not None else [])
        by_address = {c.address.lower(): c for c in contracts}
        for log in receipt["logs"]:
            contract = by_address.get(str(log["address"]).lower())
            if contract is None:
                continue
            decoded = decode_log(contract, log)
            if decoded is not None:
                out.append(decoded)
        return out
