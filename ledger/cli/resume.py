"""`ledger resume`: finish or abandon every transaction an earlier command left pending.

It first re-checks the stored anchors against the chain as it is now
(`ledger.evidence.anchor_check`) and lists those a reorg or a node reset took away or moved
(one the node holds pending again is awaited with the rest); anchoring the log again is
`ledger anchor`'s job.

Anchors and escrow steps are stored (signed) before they are broadcast; a command that was
killed, lost its node, or ran out of time leaves them ``sent``. This command drives each to
its end with the outbox protocol (`ledger.chain.outbox`): it awaits what the node has,
re-sends what it lost with the same bytes, replaces what is underpriced or stuck at a higher
fee (up to --max-fee), signs again with a fresh nonce what another transaction's nonce
displaced, and abandons, with the reason, only what can never take effect. A step signed by
a party whose key the platform does not hold (a buyer, a merchant) needs that key for a
replacement: pass it with --key.
"""

from __future__ import annotations

import argparse
from typing import Any

from ledger.chain.keys import resolve_signer
from ledger.chain.outbox import Outbox, Outcome
from ledger.chain.rpc import Chain
from ledger.cli._common import (
    KEYREF_HELP,
    add_json,
    add_rpc,
    add_tx_options,
    cost_text,
    data_dir,
    emit,
    keyref,
    mined_receipt,
    open_chain,
    open_store,
    tx_costs,
)
from ledger.deploy import escrow_client, evidence_log
from ledger.errors import DeploymentError
from ledger.escrow.journal import ActionJournal, drive_pending
from ledger.escrow.platform import Platform
from ledger.evidence.anchor import Anchorer
from ledger.evidence.anchor_check import recheck_chain

__all__ = ["cmd_resume", "configure"]


def cmd_resume(args: argparse.Namespace) -> int:
    chain = open_chain(args)
    keys = {s.address.lower(): s for s in (resolve_signer(k, chain) for k in args.key or [])}
    results: list[dict[str, Any]] = []
    notes: list[str] = []
    with open_store(args) as store:
        changes = [c for r in recheck_chain(store, chain) for c in r.changes]  # even with no EvidenceLog left
        anchorer = _anchorer(store, chain, args, notes)
        if anchorer is not None:
            anchorer.outbox.signers.update(keys)
            results += [_result(chain, "anchor", o, f"head size {_size(store, o)}")
                        for o in anchorer.resume()]
        try:
            platform = Platform(store, escrow_client(chain, data_dir(args)), chain.default_account)
        except DeploymentError as exc:
            # No live escrow in the manifest (a reset node, a lost manifest): the stored steps are
            # still driven to their end (a step whose escrow has no code is abandoned, not re-sent).
            if store.actions(status="sent", chain_id=chain.chain_id):
                notes.append(f"escrow steps: {exc}; the stored steps are settled against the chain as it is")
            journal = ActionJournal(store, chain.chain_id, chain)
            for escrow in sorted({a.contract for a in store.actions(chain_id=chain.chain_id)}):
                journal.recheck(chain, escrow)  # confirmed steps the chain lost go back to sent
            outbox = Outbox(chain, journal, keys)
            outcomes = drive_pending(store, outbox, journal, args.confirmations, None)
        else:
            platform.outbox.signers.update(keys)
            platform.confirmations = args.confirmations
            outcomes = platform.resume()
        for o in outcomes:
            a = store.action_row(o.row.id)
            results.append(_result(chain, "escrow", o, f"{o.row.label} of order {a.order_id if a else '?'}"))
        # The store, not what was driven, says what is left: a row none of the above could drive
        # (its contract unknown here) is still pending.
        left = len(store.anchors(chain.chain_id, status="sent")) + \
            len(store.actions(status="sent", chain_id=chain.chain_id))
    lines = [f"{r['kind']} {r['what']} (tx {r['tx_hash'][:14]}…): {_word(r)}"
             + (f"; {cost_text(r)}" if r["cost_wei"] is not None else "") for r in results]
    if any(r["cost_wei"] is not None for r in results):
        lines.append(f"in all: {cost_text(_total(results))}")
    lines += notes
    lines += [c.text() for c in changes]
    if any(c.row.status in ("lost", "failed") for c in changes):
        lines.append("re-anchoring is `ledger anchor`'s job: run it to anchor the log again (after "
                     "`ledger deploy --redeploy` if the EvidenceLog itself is gone)")
    if not results and not left:
        lines.insert(0, "nothing pending: every stored anchor and escrow step is settled")
    elif left:
        lines.append(f"{left} still pending: run `ledger resume` again (with --key for a party's "
                     "key, --max-fee to allow a higher fee, --timeout to wait longer)")
    emit(args, {"results": results, "pending": left, "notes": notes, **_total(results),
                "anchors_rechecked": [c.to_json() for c in changes]}, "\n".join(lines))
    return 75 if left else 0  # EX_TEMPFAIL, as for a step that times out


def _anchorer(store: Any, chain: Any, args: argparse.Namespace, notes: list[str]) -> Anchorer | None:
    """The anchorer of the manifest's EvidenceLog; without one (a reset node, a lost manifest)
    that of the log the latest pending anchor was signed for, so that it is still settled (or
    abandoned, if that log has no code any more); None if nothing is pending."""
    try:
        return Anchorer(store, chain, evidence_log(chain, data_dir(args)))
    except DeploymentError as exc:
        sent = store.anchors(chain.chain_id, status="sent")
        if not sent:
            notes.append(f"anchors: {exc}")
            return None
        notes.append(f"anchors: {exc}; the stored anchors are settled against the chain as it is")
        return Anchorer(store, chain, chain.contract("EvidenceLog", sent[-1].contract))


def _size(store: Any, o: Outcome) -> int | str:
    row = store.anchor_row(o.row.id)
    return "?" if row is None else int(row.size)


def _result(chain: Chain, kind: str, o: Outcome, what: str) -> dict[str, Any]:
    """One driven transaction; a mined one (confirmed or reverted) with what it cost: the
    attempt mined, which may be an earlier one than the latest (a replacement's)."""
    receipt = mined_receipt(chain, o.row.hashes) if o.status in ("confirmed", "failed") else None
    costs = tx_costs(chain, [receipt]) if receipt is not None else None
    return {"kind": kind, "id": o.row.id, "what": what, "status": o.status, "detail": o.detail,
            "tx_hash": "0x" + o.row.tx_hash.hex(),
            "mined_tx_hash": costs["transactions"][0]["tx_hash"] if costs else None,
            "gas_used": costs["gas_used"] if costs else None,
            "cost_wei": costs["cost_wei"] if costs else None}


def _total(results: list[dict[str, Any]]) -> dict[str, int]:
    mined = [r for r in results if r["cost_wei"] is not None]
    return {"gas_used": sum(r["gas_used"] for r in mined), "cost_wei": sum(r["cost_wei"] for r in mined)}


def _word(r: dict[str, Any]) -> str:
    return {"confirmed": f"confirmed ({r['detail']})", "failed": f"reverted: {r['detail']}",
            "abandoned": f"abandoned: {r['detail']}"}.get(r["status"], f"still pending: {r['detail']}")


def configure(name: str, sp: argparse.ArgumentParser) -> None:
    add_rpc(sp)
    add_tx_options(sp)
    add_json(sp)
    sp.add_argument("--key", action="append", type=keyref, metavar="REF",
                    help="a party's key (a KEYREF: dev:N, env:VAR, keystore:PATH[?password-file=FILE]) "
                    "for replacing its stuck steps; "
                    "repeatable (the platform's own key is always used)")
    sp.epilog = KEYREF_HELP
    sp.set_defaults(func=cmd_resume)
