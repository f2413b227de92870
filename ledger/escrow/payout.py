"""What could still take a payout away: for a lender deciding whether to advance money on it.

A pledged payout is safe from the merchant (once pledged, only the lender may cancel or confirm a
return, and it answers disputes as the merchant can), but not from the rights of an independent
buyer: a refund if the parcel is not shipped or delivered in time, a return the carrier
evidences, an arbitrator's ruling. `claims` lists those that can still happen in the order's
current state, each with who can raise it and until when, from the chain's own views.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ledger.escrow.client import EscrowClient
from ledger.escrow.types import OrderState, Party

__all__ = ["Claim", "claims"]


@dataclass(frozen=True)
class Claim:
    """One way the payout can still shrink: what happens, who can make it happen, until when."""

    what: str
    by: str  # "buyer", "anyone", "arbitrator", "lender", "merchant"
    until: int | None  # unix seconds; None: no deadline of its own

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def claims(client: EscrowClient, escrow_order_id: bytes) -> list[Claim]:
    """The claims on an order's payout that its current state still allows (none once settled)."""
    info = client.order(escrow_order_id)
    state, deadline = info.state, info.deadline
    consent = "lender" if info.pledged else "merchant"
    out: list[Claim] = []
    if state in (OrderState.FUNDED, OrderState.SHIPPED, OrderState.DELIVERED, OrderState.RETURNING,
                 OrderState.RETURN_SHIPPED, OrderState.RETURN_DELIVERED):
        out.append(Claim(f"a full refund to the buyer by consent (cancel), signed by the {consent}",
                         consent, None))
    if state == OrderState.FUNDED:
        out.append(Claim("a full refund to the buyer if the parcel is not shipped by the ship-by time",
                         "anyone", deadline))
    elif state == OrderState.SHIPPED:
        out.append(Claim("a full refund to the buyer if no delivery is attested in the delivery window",
                         "anyone", deadline))
    elif state == OrderState.DELIVERED:
        out.append(Claim("a full or partial return requested by the buyer in the inspection window",
                         "buyer", deadline))
        out.append(Claim("a dispute opened by the buyer in the inspection window (the arbitrator decides)",
                         "buyer", deadline))
    elif state == OrderState.RETURNING:
        amount, _ = client.return_of(escrow_order_id)
        out.append(Claim(f"a refund of {amount} if the return parcel is shipped (carrier-attested) in time",
                         "buyer", deadline))
        out.append(Claim("a dispute opened by the buyer (the arbitrator decides)", "buyer", deadline))
    elif state in (OrderState.RETURN_SHIPPED, OrderState.RETURN_DELIVERED):
        amount, _ = client.return_of(escrow_order_id)
        out.append(Claim(f"a refund of {amount} to the buyer when the return settles, unless the merchant's "
                         "side disputes it in time", "anyone", deadline))
    elif state == OrderState.DISPUTED:
        dispute = client.dispute_of(escrow_order_id)
        if dispute.opener == Party.BUYER and not dispute.answered:
            out.append(Claim(f"a default refund to the buyer unless the {consent} answers the dispute "
                             "in time", "buyer", deadline))
        window = client.terms(info.terms_id).arbitration_window
        out.append(Claim("the arbitrator's ruling (any split of the price)", "arbitrator",
                         info.clock + window))
        out.append(Claim("a 50/50 split if the arbitrator has not ruled by then", "anyone",
                         info.clock + window))
    return out
