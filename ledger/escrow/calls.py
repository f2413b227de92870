"""Every escrow call, built once: the contract function with its arguments and the value it pays.

Building a call is separate from sending it (as web3.py separates a `ContractFunction` from
`transact`): `EscrowClient` sends a `Call` at once, the platform stores it in its outbox
with the evidence behind it and sends it from there. Both get their calls here, so an
argument's order, its checksum form or the value a call pays is written in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3.contract import Contract

from ledger.errors import ConfigError
from ledger.escrow.eip712 import Attestation, Offer
from ledger.escrow.types import ZERO32, Terms

__all__ = ["APPROVE_ABI", "Call", "EscrowCalls", "is_native"]

#: ERC-20 ``approve`` without a declared return value, so that tokens returning nothing
#: (USDT-like) and tokens returning a bool both work.
APPROVE_ABI = [{
    "type": "function", "name": "approve", "stateMutability": "nonpayable", "outputs": [],
    "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
}]  # fmt: skip


def is_native(token: str) -> bool:
    """Whether `token` is ETH (the zero address)."""
    return int(token, 16) == 0


@dataclass(frozen=True)
class Call:
    """A contract call ready to sign: the bound function, the wei it pays, a name for messages."""

    fn: Any  # web3 ContractFunction with its arguments bound
    value: int = 0

    @property
    def label(self) -> str:
        return str(getattr(self.fn, "fn_name", None) or "call")

    @property
    def calldata(self) -> bytes:
        """The call's ABI-encoded data (selector and arguments)."""
        fn = self.fn
        contract = fn.w3.eth.contract(address=fn.address, abi=[fn.abi])
        return bytes.fromhex(contract.encode_abi(fn.abi_element_identifier, args=fn.args)[2:])


@dataclass(frozen=True)
class EscrowCalls:
    """The calls of one FulfillmentEscrow (and its PanelArbitrator, when given)."""

    escrow: Contract
    arbitrator: Contract | None = None

    @property
    def _f(self) -> Any:
        return self.escrow.functions

    @staticmethod
    def _pays(token: str, amount: int) -> int:
        return amount if is_native(token) else 0

    # ERC-20 -------------------------------------------------------------------------------
    def approve(self, token: str, amount: int) -> Call:
        """Let the escrow pull `amount` of an ERC-20 (the caller's own tokens)."""
        erc20 = self.escrow.w3.eth.contract(address=to_checksum_address(token), abi=APPROVE_ABI)
        return Call(erc20.functions.approve(self.escrow.address, amount))

    # the order lifecycle ------------------------------------------------------------------
    def fund(self, offer: Offer, signature: bytes) -> Call:
        return Call(self._f.fund(offer.as_tuple(), signature), self._pays(offer.token, offer.price))

    def ship(self, att: Attestation, signature: bytes) -> Call:
        return Call(self._f.ship(att.as_tuple(), signature))

    def deliver(self, att: Attestation, signature: bytes) -> Call:
        return Call(self._f.deliver(att.as_tuple(), signature))

    def ship_return(self, att: Attestation, signature: bytes) -> Call:
        return Call(self._f.shipReturn(att.as_tuple(), signature))

    def deliver_return(self, att: Attestation, signature: bytes) -> Call:
        return Call(self._f.deliverReturn(att.as_tuple(), signature))

    def attested(self, att: Attestation, signature: bytes) -> Call:
        """The call that records a carrier attestation of `att.kind` (its evidence is signed in it)."""
        build = {"Shipment": self.ship, "Delivery": self.deliver,
                 "ReturnShipment": self.ship_return, "ReturnDelivery": self.deliver_return}[att.kind]
        return build(att, signature)

    def batched(self, batcher: Contract, calls: list[Call]) -> Call:
        """One transaction through an `EscrowBatcher` making `calls` on this escrow in order.

        Only steps anyone may take belong in a batch (they run with the batcher as sender):
        attestations, releases, refunds, settlements. Calls that pay value cannot be batched.
        """
        if not calls:
            raise ValueError("an empty batch")
        encoded = []
        for call in calls:
            if call.value or call.fn.address != self.escrow.address:
                raise ValueError(f"{call.label} cannot be batched (it pays value or is not an escrow call)")
            encoded.append(bytes.fromhex(self.escrow.encode_abi(
                call.fn.abi_element_identifier, args=call.fn.args)[2:]))
        return Call(batcher.functions.batch(self.escrow.address, encoded))

    def confirm_delivery(self, order_id: bytes, evidence: bytes = ZERO32) -> Call:
        return Call(self._f.confirmDelivery(order_id, evidence))

    def release(self, order_id: bytes, evidence: bytes = ZERO32) -> Call:
        return Call(self._f.release(order_id, evidence))

    def refund(self, order_id: bytes, evidence: bytes = ZERO32) -> Call:
        return Call(self._f.refund(order_id, evidence))

    def cancel(self, order_id: bytes, evidence: bytes = ZERO32) -> Call:
        return Call(self._f.cancel(order_id, evidence))

    def request_return(self, order_id: bytes, amount: int, evidence: bytes = ZERO32) -> Call:
        return Call(self._f.requestReturn(order_id, amount, evidence))

    def confirm_return(self, order_id: bytes, evidence: bytes = ZERO32) -> Call:
        return Call(self._f.confirmReturn(order_id, evidence))

    def settle_return(self, order_id: bytes, evidence: bytes = ZERO32) -> Call:
        return Call(self._f.settleReturn(order_id, evidence))

    def pledge(self, order_id: bytes, lender: str) -> Call:
        return Call(self._f.pledge(order_id, to_checksum_address(lender)))

    # disputes -------------------------------------------------------------------------------
    def open_dispute(self, order_id: bytes, evidence: bytes, arbitration_cost: int) -> Call:
        """Open a dispute, paying the arbitration cost of the order's arbitrator."""
        return Call(self._f.openDispute(order_id, evidence), arbitration_cost)

    def submit_evidence(self, order_id: bytes, evidence: str) -> Call:
        return Call(self._f.submitEvidence(order_id, evidence))

    def claim_default(self, order_id: bytes) -> Call:
        return Call(self._f.claimDefault(order_id))

    def timeout_dispute(self, order_id: bytes) -> Call:
        return Call(self._f.timeoutDispute(order_id))

    def vote(self, dispute_id: int, ruling: int) -> Call:
        """A panel member's vote on the bundled PanelArbitrator."""
        if self.arbitrator is None:
            raise ConfigError("this escrow has no PanelArbitrator configured")
        return Call(self.arbitrator.functions.vote(dispute_id, ruling))

    def refund_fee(self, dispute_id: int) -> Call:
        """Refund a dispute's held fee to its opener after a default or an arbitration timeout."""
        if self.arbitrator is None:
            raise ConfigError("this escrow has no PanelArbitrator configured")
        return Call(self.arbitrator.functions.refundFee(dispute_id))

    def set_panel(self, members: list[str], threshold: int, cost: int) -> Call:
        """Publish a new panel epoch (its members, threshold and arbitration cost)."""
        if self.arbitrator is None:
            raise ConfigError("this escrow has no PanelArbitrator configured")
        return Call(self.arbitrator.functions.setPanel(
            [to_checksum_address(m) for m in members], threshold, cost))

    def withdraw_panel_fees(self, to: str, amount: int) -> Call:
        """Send the panel's earned dispute fees to `to`."""
        if self.arbitrator is None:
            raise ConfigError("this escrow has no PanelArbitrator configured")
        return Call(self.arbitrator.functions.withdrawFees(to_checksum_address(to), amount))

    # money ------------------------------------------------------------------------------------
    def deposit_for(self, merchant: str, token: str, amount: int) -> Call:
        fn = self._f.depositFor(to_checksum_address(merchant), to_checksum_address(token), amount)
        return Call(fn, self._pays(token, amount))

    def withdraw_deposit(self, token: str, amount: int) -> Call:
        return Call(self._f.withdrawDeposit(to_checksum_address(token), amount))

    def fund_reserve(self, token: str, amount: int) -> Call:
        return Call(self._f.fundReserve(to_checksum_address(token), amount), self._pays(token, amount))

    def withdraw(self, token: str, to: str | None = None) -> Call:
        """Withdraw the caller's credit in `token`, to itself or to `to`."""
        token = to_checksum_address(token)
        if to is None:
            return Call(self._f.withdraw(token))
        return Call(self._f.withdrawTo(token, to_checksum_address(to)))

    # administration ---------------------------------------------------------------------------
    def set_terms(self, terms: Terms, meta_evidence: str) -> Call:
        return Call(self._f.setTerms(terms.as_tuple(), meta_evidence))

    def set_carrier(self, carrier: str, registered: bool) -> Call:
        return Call(self._f.setCarrier(to_checksum_address(carrier), registered))

    def set_token_allowed(self, token: str, allowed: bool) -> Call:
        return Call(self._f.setTokenAllowed(to_checksum_address(token), allowed))

    def set_treasury(self, treasury: str) -> Call:
        return Call(self._f.setTreasury(to_checksum_address(treasury)))

    def withdraw_fees(self, token: str, amount: int) -> Call:
        return Call(self._f.withdrawFees(to_checksum_address(token), amount))

    def sweep(self, token: str) -> Call:
        """Send what the escrow holds of `token` beyond its books to the treasury (anyone may)."""
        return Call(self._f.sweep(to_checksum_address(token)))
