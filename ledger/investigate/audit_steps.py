"""What the audit checks of the platform's own escrow steps against the escrow's events: the
evidence each event cites, the log records confirmed steps cite that no event does, and the
steps the chain has not taken (listed in an order report, never claimed)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ledger.chain.rpc import Chain
from ledger.escrow.platform import NON_ESCROW_ACTIONS
from ledger.evidence.journal import ActionRow
from ledger.evidence.store import Store
from ledger.investigate.audit_model import Ev, Flag, Order, StepEntry

__all__ = ["EVIDENCE_ARG", "HEX_REF", "LEAF_REF", "SILENT_ACTIONS", "event_leaf", "uncited_records",
           "unsettled_steps"]


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


#: events that cite an evidence-log leaf, and the argument holding it
EVIDENCE_ARG = {
    "OrderFunded": "orderRecord",
    "OrderShipped": "evidence",
    "OrderDelivered": "evidence",
    "OrderReleased": "evidence",
    "OrderRefunded": "evidence",
    "ReturnRequested": "evidence",
    "ReturnShipped": "evidence",
    "ReturnDelivered": "evidence",
    "ReturnSettled": "evidence",
    "DisputeOpened": "evidence",
}

#: platform actions after which the escrow emits nothing for the order: a panel vote that is
#: not the deciding one, a buyer's ERC-20 approval
SILENT_ACTIONS = frozenset({"vote", *NON_ESCROW_ACTIONS})

LEAF_REF = re.compile(r"leaf:([0-9]{1,20}):([0-9a-fA-F]{64})")
HEX_REF = re.compile(r"0x([0-9a-fA-F]{64})")


def event_leaf(ev: Ev) -> bytes | None:
    """The log leaf an escrow event cites as its evidence, if it cites one."""
    if ev.name in EVIDENCE_ARG:
        return bytes(ev.args[EVIDENCE_ARG[ev.name]])
    if ev.name == "Evidence":
        ref = str(ev.args.get("evidence", ""))
        m, h = LEAF_REF.fullmatch(ref), HEX_REF.fullmatch(ref)
        return bytes.fromhex(m.group(2)) if m else bytes.fromhex(h.group(1)) if h else None
    return None


def uncited_records(store: Store, o: Order, actions: Sequence[ActionRow]) -> list[Flag]:
    """A log record that a confirmed platform step cites as its evidence, or that a step not
    (or no longer) confirmed brought into the log, must be cited by an escrow event of the
    order on the chain as it is now: else the log holds evidence of a step the escrow did not
    take (a reorg or a node reset took it away, or the store was edited)."""
    cited = {leaf for leaf in map(event_leaf, o.events) if leaf is not None}
    logged = {r.record.leaf: r.record for r in o.records}
    flags = []
    for a in actions:
        rec = logged.get(a.evidence) if a.evidence is not None else None
        if rec is None or a.evidence in cited or a.action in SILENT_ACTIONS:
            continue
        if a.status == "confirmed":
            state = f"confirmed in tx {_hex(a.tx_hash)}"
        elif rec.id in store.held_ids(a.id):
            state = f"{a.status} (tx {_hex(a.tx_hash)}" + (f": {a.error})" if a.error else ")")
        else:
            continue
        flags.append(Flag(entry=None, subject=f"order {o.order_id}", reason=(
            f"record {rec.id!r} (leaf {rec.index}) is the evidence of the platform's {a.action!r}, "
            f"{state}, but no escrow event of this order on the chain cites it (`ledger resume` "
            "re-sends a step whose transaction vanished)")))
    return flags


def unsettled_steps(store: Store, actions: Sequence[ActionRow], chain: Chain | None = None,
                    ) -> list[StepEntry]:
    """The order's steps the store has not settled as confirmed: listed, not claimed. A
    ``sent`` one is looked up on `chain` (each attempt's hash): if one was mined meanwhile
    the entry says in which block, rather than that the chain never took it."""
    out = []
    for a in actions:
        if a.status == "confirmed":
            continue
        mined = None
        if a.status == "sent" and chain is not None:
            hits = [r for r in map(chain.receipt, a.tx_hashes)
                    if r is not None and r.get("blockNumber") is not None]
            mined = int(hits[0]["blockNumber"]) if hits else None
        out.append(StepEntry(action=a.action, status=a.status, tx_hash=_hex(a.tx_hash),
                             record_ids=store.held_ids(a.id), error=a.error, mined_in_block=mined))
    return out
