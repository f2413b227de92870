"""`ledger ingest|anchor|status|export|verify`: the evidence log from the command line."""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, BinaryIO

from eth_utils import is_address, to_checksum_address
from rich.console import Console

from ledger.chain.rpc import Chain, connect
from ledger.cli._common import (
    add_json,
    add_rpc,
    add_tx_options,
    console,
    cost_text,
    data_dir,
    emit,
    mined_receipt,
    open_chain,
    open_store,
    progress_bar,
    read_input,
    rpc_url,
    spinner,
    time_bound,
    tx_costs,
    write_output,
)
from ledger.deploy import evidence_log
from ledger.errors import (
    ChainUnavailable,
    ConfigError,
    DeploymentError,
    StoreError,
    TrustRootError,
    ValidationError,
)
from ledger.evidence.anchor import Anchorer
from ledger.evidence.anchor_check import AnchorChange, Recheck, recheck_chain
from ledger.evidence.bundle import Verdict, export_bundle, verify_bundle
from ledger.evidence.bundle_format import Bundle, dumps_bundle, load_bundle
from ledger.evidence.completeness import extends_failures
from ledger.evidence.journal import AnchorRow
from ledger.evidence.records import PackedRecords, read_jsonl
from ledger.evidence.store import Batch, Store
from ledger.evidence.trust import Pin, read_trust_root

__all__ = ["VERIFY_EXIT", "configure", "print_verdict", "verify_pin"]


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.files.count("-") > 1:
        raise ConfigError("'-' (stdin) can be given only once")
    show = not args.json and sys.stderr.isatty()
    with open_store(args) as store:
        # Validate every file before storing any, then store them all in one transaction:
        # a problem anywhere stores nothing.
        batches, problems = [], []
        for name in args.files:
            try:
                batches.append(Batch(_source(name), _validated(name, show)))
            except ValidationError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ValidationError(problems)
        total = sum(len(b.records) for b in batches)
        with progress_bar(show, f"store {len(batches)} file(s)", total) as advance:
            results = store.ingest_batches(batches, progress=advance)
        size = store.size
    payload = {"files": [r.__dict__ for r in results], "log_size": size}
    lines = [f"{r.source}: stored {r.stored}, already present {r.skipped}" for r in results]
    emit(args, payload, "\n".join(lines + [f"log size now {size}"]))
    return 0


def _source(name: str) -> str:
    return "<stdin>" if name == "-" else name


def _size(f: BinaryIO) -> int | None:
    """The size of a regular file, for the progress bar; None for a pipe or a terminal."""
    try:
        st = os.fstat(f.fileno())
    except io.UnsupportedOperation:  # a stream without a file descriptor
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _validated(name: str, show: bool) -> PackedRecords:
    """One input file (or stdin, '-'), validated line by line as it is read: the records
    are kept, packed, never the file."""
    try:
        with nullcontext(sys.stdin.buffer) if name == "-" else open(name, "rb") as f:
            with progress_bar(show, f"validate {_source(name)}", _size(f), in_bytes=True) as advance:
                return read_jsonl(f, source=_source(name), progress=advance)
    except OSError as exc:
        raise ConfigError(f"FILE.jsonl {name}: cannot read it: {exc.strerror or exc}") from None


def cmd_anchor(args: argparse.Namespace) -> int:
    chain = open_chain(args)
    with open_store(args) as store:
        found = [c for r in recheck_chain(store, chain) for c in r.changes]  # every EvidenceLog's
        try:
            log = evidence_log(chain, data_dir(args))
        except DeploymentError as exc:
            if found:
                raise DeploymentError("\n".join([*(c.text() for c in found), str(exc)])) from None
            raise
        need = args.confirmations if args.confirmations is not None else chain.confirmations
        with spinner(not args.json and sys.stderr.isatty(),
                     f"anchoring {store.size:,} records: tree, consistency proof, transaction, "
                     f"{need} confirmation(s)…"):
            outcome = Anchorer(store, chain, log).anchor(confirmations=args.confirmations)
        current = store.latest_confirmed(chain.chain_id, log.address)
    resumed = [_resumed_json(a, chain) for a in outcome.settled]
    found += outcome.rechecked
    changed = _changes_json(found)
    lines = [_change_text(c, outcome.head is not None) for c in found]
    lines += [_resumed_text(a) for a in outcome.settled]
    if outcome.head is None:
        where = (f" in block {current.block_number} (tx 0x{current.tx_hash.hex()})"
                 if current is not None and current.size == outcome.previous.size else "")
        lines.append(f"nothing new to anchor: head size {outcome.previous.size} is anchored{where}")
        emit(args, {"anchored": False, "size": outcome.previous.size, "resumed": outcome.resumed,
                    "resumed_anchors": resumed, **changed,
                    "block_number": current.block_number if where and current else None},
             "\n".join(lines))
        return 0
    payload = {
        "anchored": True,
        "size": outcome.head.size,
        "root": outcome.head.root.hex(),
        "previous_size": outcome.previous.size,
        "tx_hash": "0x" + (outcome.tx_hash or b"").hex(),
        "block_number": outcome.block_number,
        "gas_used": outcome.gas_used,
        "resumed": outcome.resumed,
        "resumed_anchors": resumed,
        **changed,
    }
    receipt = mined_receipt(chain, [outcome.tx_hash]) if outcome.tx_hash else None
    costs = tx_costs(chain, [receipt]) if receipt is not None else None
    if costs is not None:
        payload.update(cost_wei=costs["cost_wei"],
                       effective_gas_price=costs["transactions"][0]["effective_gas_price"])
    lines.append(f"anchored head size {outcome.head.size} root {outcome.head.root.hex()[:16]}… "
                 f"(from {outcome.previous.size}) in block {outcome.block_number}, "
                 + (cost_text(costs) if costs is not None else f"gas {outcome.gas_used}"))
    emit(args, payload, "\n".join(lines))
    return 0


def _changes_json(changes: Sequence[AnchorChange]) -> dict[str, list[dict[str, object]]]:
    """What a re-check against the chain found, by kind: anchors the chain no longer holds
    (``lost``: status lost, failed, or sent again when the node holds the transaction pending),
    and anchors a reorg re-mined in another block (``moved``; ``restored``: on chain again)."""
    return {"lost": [c.to_json() for c in changes if c.kind in ("lost", "failed")],
            "moved": [c.to_json() for c in changes if c.kind == "moved"],
            "restored": [c.to_json() for c in changes if c.kind == "restored"]}


def _change_text(c: AnchorChange, reanchored: bool) -> str:
    if c.kind in ("lost", "failed") and c.row.status != "sent":
        return c.text() + ("; re-anchoring" if reanchored else "")
    return c.text()


def _resumed_json(a: AnchorRow, chain: Chain) -> dict[str, object]:
    """A resumed anchor as it ended, with what it cost if it was mined (confirmed or reverted)."""
    receipt = mined_receipt(chain, a.tx_hashes) if a.block_number is not None else None
    costs = tx_costs(chain, [receipt]) if receipt is not None else {"gas_used": None, "cost_wei": None}
    return {"size": a.size, "root": a.root.hex(), "tx_hash": "0x" + a.tx_hash.hex(), "status": a.status,
            "block_number": a.block_number, "error": a.error, "gas_used": costs["gas_used"],
            "cost_wei": costs["cost_wei"]}


def _resumed_text(a: AnchorRow) -> str:
    """What became of an anchor an earlier run left pending."""
    what = f"resumed the pending anchor of head size {a.size} (tx 0x{a.tx_hash.hex()})"
    if a.status == "confirmed":
        return f"{what}: confirmed in block {a.block_number}"
    return f"{what}: {a.status}" + (f" ({a.error})" if a.error else "")


def cmd_status(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        rechecks, chain_id, unchecked = _recheck(args, store)
        size = store.size
        anchors = store.anchors()
        counts = store.counts()
    confirmed = [a for a in anchors if a.status == "confirmed"]
    latest = max(confirmed, key=lambda a: (a.size, a.id)) if confirmed else None
    changes = [c for r in rechecks for c in r.changes]
    if latest is not None and not unchecked and latest.chain_id != chain_id:
        unchecked = f"the node is chain {chain_id}, not chain {latest.chain_id}"
    uncovered = list({(a.contract, a.size): a for a in anchors  # the latest of each head
                      if a.status in ("lost", "failed") and a.size > (latest.size if latest else 0)}.values())
    payload = {
        "log_size": size,
        "records_by_kind": counts,
        "latest_anchor": None if latest is None else {
            "size": latest.size, "root": latest.root.hex(), "chain_id": latest.chain_id,
            "contract": latest.contract, "tx_hash": "0x" + latest.tx_hash.hex(),
            "block_number": latest.block_number, "block_hash": "0x" + (latest.block_hash or b"").hex(),
        },
        "pending_anchors": sum(1 for a in anchors if a.status == "sent"),
        "unanchored_records": size - (latest.size if latest else 0),
        "anchors": [_anchor_json(a) for a in anchors],
        "rechecked_at_block": {str(r.contract): r.head_block for r in rechecks},
        "recheck_error": unchecked,
        **_changes_json(changes),
    }
    if latest is None:
        head = "nothing anchored yet"
    else:
        head = (f"latest anchored head: size {latest.size} on chain {latest.chain_id} at {latest.contract}, "
                f"block {latest.block_number}, tx 0x{latest.tx_hash.hex()} "
                + (f"(as stored: NOT re-checked against the chain: {unchecked})" if unchecked
                   else "(re-checked against the chain now)"))
    lines = [f"log size {size} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"]
    lines += [c.text() for c in changes]
    lines.append(head)
    said = {c.row.id for c in changes}
    lines += [f"{a.status} anchor: head size {a.size} (tx 0x{a.tx_hash.hex()}): {a.error}"
              for a in uncovered if a.id not in said]
    if uncovered and not unchecked:
        lines.append("run `ledger anchor` to anchor the log again (after `ledger deploy --redeploy` if the "
                     "EvidenceLog itself is gone)")
    lines.append(f"unanchored records: {payload['unanchored_records']}, pending anchor txs: "
                 f"{payload['pending_anchors']}")
    emit(args, payload, "\n".join(lines))
    return 0


def _recheck(args: argparse.Namespace, store: Store, *, required: bool = False,
             ) -> tuple[list[Recheck], int | None, str | None]:
    """Re-check the store's anchors on the node's chain against it (`ledger.evidence.anchor_check`):
    (the re-checks, the chain id, None); without a node, ([], None, why not), or the error
    when `required`."""
    try:
        chain = open_chain(args)
        return recheck_chain(store, chain), chain.chain_id, None
    except (ChainUnavailable, ConfigError) as exc:
        if required:
            raise ChainUnavailable(f"{exc}\n(the anchor a bundle cites is re-checked against the chain "
                                   "first: this needs the node)") from None
        return [], None, str(exc).splitlines()[0]


def _anchor_json(a: AnchorRow) -> dict[str, object]:
    return {"size": a.size, "root": a.root.hex(), "status": a.status, "chain_id": a.chain_id,
            "contract": a.contract, "tx_hash": "0x" + a.tx_hash.hex(), "block_number": a.block_number,
            "block_hash": None if a.block_hash is None else "0x" + a.block_hash.hex(),
            "reason": a.error if a.status != "confirmed" else None}


def cmd_export(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        _, node_chain, _ = _recheck(args, store, required=True)
        chain_id, contract = _anchor_target(store, node_chain)
        bundle, skipped = export_bundle(
            store, chain_id, contract, order_id=args.order, merchant_id=args.merchant,
            since=args.since, until=args.until, disclose_personal=args.disclose_personal, paths=args.paths,
        )
    text = dumps_bundle(bundle)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        write_output(args.output, text, "--output")
    msg = f"wrote {len(bundle.records)} record(s) to {args.output}"
    msg += ("; completeness proven against the anchored index (bundle v2)" if bundle.completeness is not None
            else "; completeness not proven (bundle v1: the head was anchored without an index, or the "
            "selection is not one order or one merchant)")
    if skipped:
        msg += f"; {len(skipped)} newer record(s) not yet anchored were left out: run `ledger anchor`"
    if args.output != "-":
        emit(args, {"output": args.output, "records": len(bundle.records), "format": bundle.format,
                    "unanchored_left_out": skipped}, msg)
    else:
        console(stderr=True).print(msg)
    return 0


def _anchor_target(store: Store, chain_id: int | None) -> tuple[int, str]:
    """(chain id, contract) of the store's latest confirmed anchor on the node's chain (its
    anchors re-checked by the caller)."""
    confirmed = store.anchors(chain_id, status="confirmed")
    if not confirmed:
        lost = [a for a in store.anchors(chain_id) if a.status in ("lost", "failed")]
        why = f" (head size {lost[-1].size} was anchored, but {lost[-1].error})" if lost else ""
        raise StoreError(f"nothing is anchored on chain {chain_id} as it is now: run `ledger anchor` "
                         f"first{why}")
    latest = max(confirmed, key=lambda a: a.id)
    return latest.chain_id, latest.contract


#: `ledger verify`'s exit status per `Verdict.status` (2 is a malformed bundle or trust file, or
#: no node when one is needed: a `LedgerError`, as for every command)
VERIFY_EXIT = {"verified": 0, "not_verified": 1, "head_unchecked": 3, "unpinned": 3}

VERIFY_EPILOG = """exit status: 0 verified (every record, and the head on the pinned contract); 1 not
verified (something in the bundle is false, each failure named); 2 unusable input (a malformed
bundle or trust file, no node when one is needed); 3 the head was not checked (--offline), or
the anchor contract was not pinned (no --trust, or not both --expect-chain-id and
--expect-contract). --json prints "status": verified | not_verified | head_unchecked | unpinned."""

_STATUS_LINE = {
    "verified": "[green]VERIFIED[/green]",
    "not_verified": "[red]NOT VERIFIED[/red]",
    "head_unchecked": "[yellow]HEAD NOT CHECKED[/yellow] (offline: the records match the head the "
                      "bundle states; whether that head is anchored was not asked)",
    "unpinned": "[yellow]ANCHOR CONTRACT NOT PINNED[/yellow] (the head is anchored by the contract the "
                "bundle names, but anyone can deploy an EvidenceLog: pass --trust FILE)",
}


def verify_pin(args: argparse.Namespace) -> Pin | None:
    """What `ledger verify` was told to trust: a trust file, or --expect-* flags."""
    expected = args.expect_chain_id is not None or args.expect_contract is not None
    if args.trust and expected:
        raise TrustRootError("pin the anchor with --trust FILE or with --expect-chain-id/--expect-contract, "
                             "not both")
    if args.trust:
        return Pin.of(read_trust_root(Path(args.trust)))
    if not expected:
        return None
    contract = args.expect_contract
    if contract is not None and not is_address(contract):
        raise TrustRootError(f"--expect-contract {contract!r} is not an address")
    return Pin(args.expect_chain_id, None if contract is None else to_checksum_address(contract))


def cmd_verify(args: argparse.Namespace) -> int:
    if args.offline and args.rpc:
        raise ConfigError("--offline asks no node: drop --rpc")
    bundle = load_bundle(read_input(args.bundle, "BUNDLE"), args.bundle)
    pin = verify_pin(args)
    if args.figures and args.offline:
        raise ConfigError("--figures reads the escrow's events from the chain: drop --offline")
    if not args.figures and (args.since or args.until or args.escrow):
        raise ConfigError("--since, --until and --escrow go with --figures")
    chain = None if args.offline else connect(rpc_url(args))
    w3 = None if chain is None else chain.w3
    show = not args.json and sys.stderr.isatty()
    with progress_bar(show, f"verify {args.bundle}", len(bundle.records)) as advance:
        verdict = verify_bundle(bundle, w3, progress=advance, pin=pin)
    extends = None if args.extends is None else _extends(args.extends, bundle, w3, pin)
    if args.figures:
        assert chain is not None
        return _figures(args, bundle, verdict, chain, pin)
    if args.json:
        out = verdict.to_json() if extends is None else {**verdict.to_json(), "extends": extends}
        print(json.dumps(out, indent=2))
    else:
        print_verdict(verdict)
        if extends is not None:
            for f in extends["failures"]:
                console().print(f"[red]NOT EXTENDED[/red] {f}")
            if not extends["failures"]:
                console().print(f"[green]EXTENDS[/green] {args.extends}: nothing committed at its head "
                                f"(size {extends['earlier_tree_size']}) vanished or changed")
    status = verdict.status if extends is None or not extends["failures"] else "not_verified"
    return VERIFY_EXIT[status]


def _figures(args: argparse.Namespace, bundle: Bundle, verdict: Verdict, chain: Chain,
             pin: Pin | None) -> int:
    """`--figures`: the merchant report `ledger audit --merchant` would print, from the bundle."""
    from ledger.deploy import escrow_client
    from ledger.escrow.client import EscrowClient
    from ledger.investigate import audit
    from ledger.investigate.bundle_figures import bundle_figures

    if args.escrow is not None and not is_address(args.escrow):
        raise ConfigError(f"--escrow {args.escrow!r} is not an address")
    client = (EscrowClient.at(chain, to_checksum_address(args.escrow)) if args.escrow
              else escrow_client(chain, data_dir(args)))
    start = pin.root.deployment_block if pin is not None and pin.root is not None else 0
    report = bundle_figures(bundle, verdict, client, since=args.since, until=args.until, from_block=start)
    if args.json:
        sys.stdout.write(audit.render_json(report))
    else:
        print_verdict(verdict)
        Console(highlight=False).print(audit.render_text(report))
    return 0 if report.ok else 1


def _extends(path: str, later: Bundle, w3: Any, pin: Pin | None) -> dict[str, Any]:
    """`--extends EARLIER`: the earlier bundle verified the same way, and the later one extends it."""
    earlier = load_bundle(read_input(path, "--extends"), path)
    verdict = verify_bundle(earlier, w3, pin=pin)
    failures = [f"{path} is itself not verified (run `ledger verify {path}`)"] \
        if verdict.status == "not_verified" else []
    failures += extends_failures(earlier, later)
    return {"bundle": path, "status": verdict.status, "earlier_tree_size": earlier.anchor.tree_size,
            "failures": failures}


def print_verdict(verdict: Verdict, out: Console | None = None) -> None:
    out = out or console()
    for f in verdict.head_failures:
        out.print(f"[red]HEAD FAIL[/red] {f}")
    for r in verdict.records:
        if r.ok and r.erased_at is not None:
            out.print(f"[cyan]ERASED[/cyan] leaf {r.index} {r.record_id}: erased on {r.erased_at} (its "
                      "content is gone; its existence and position are proven)")
        elif r.ok:
            out.print(f"[green]OK[/green]   leaf {r.index} {r.record_id}")
        else:
            for f in r.failures:
                out.print(f"[red]FAIL[/red] leaf {r.index} {r.record_id}: {f}")
    for f in verdict.completeness_failures or []:
        out.print(f"[red]INCOMPLETE[/red] {f}")
    if verdict.completeness == "proven":
        out.print(f"[green]COMPLETE[/green] these are all the records of the selection as of head size "
                  f"{verdict.tree_size} (as committed by the anchored index)")
    elif verdict.completeness == "not proven":
        out.print("[yellow]COMPLETENESS NOT PROVEN[/yellow] (a v1 bundle: each record is in the log; "
                  "whether others were left out is not shown)")
    good = sum(r.ok for r in verdict.records)
    out.print(
        f"{_STATUS_LINE[verdict.status]}: {good}/{len(verdict.records)} records; head size "
        f"{verdict.tree_size} on chain {verdict.chain_id} contract {verdict.contract}"
    )


def configure(name: str, sp: argparse.ArgumentParser) -> None:
    if name in ("anchor", "verify", "status", "export"):
        add_rpc(sp)
    add_json(sp)
    if name == "ingest":
        sp.add_argument("files", nargs="+", metavar="FILE.jsonl",
                        help="JSONL record files, or - for stdin; all are stored, or none")
        sp.set_defaults(func=cmd_ingest)
    elif name == "anchor":
        add_tx_options(sp)
        sp.set_defaults(func=cmd_anchor)
    elif name == "status":
        sp.set_defaults(func=cmd_status)
    elif name == "export":
        who = sp.add_mutually_exclusive_group(required=True)
        who.add_argument("--order", metavar="ID", help="every record of one order")
        who.add_argument("--merchant", metavar="ID", help="every record of one merchant")
        who.add_argument("--all", action="store_true", help="every record (with --since/--until)")
        sp.add_argument("--since", metavar="TS", type=time_bound,
                        help="RFC 3339 lower bound (inclusive) on record ts")
        sp.add_argument("--until", metavar="TS", type=time_bound,
                        help="RFC 3339 upper bound (exclusive) on record ts")
        sp.add_argument("--disclose-personal", action="store_true",
                        help="include decrypted personal fields and their salts (default: commitments only)")
        sp.add_argument("--paths", action="store_true",
                        help="also give each record's RFC 9162 inclusion path (a v2 bundle binds each record "
                        "through the anchored index without them)")
        sp.add_argument("-o", "--output", default="-", help="bundle file (default stdout)")
        sp.set_defaults(func=cmd_export)
    elif name == "verify":
        sp.epilog = VERIFY_EPILOG
        sp.add_argument("bundle", metavar="BUNDLE", help="bundle file, or - for stdin")
        sp.add_argument("--trust", metavar="FILE",
                        help="trust file pinning the chain and the EvidenceLog (`ledger deploy` writes "
                        "<data dir>/trust/<chain id>.json)")
        sp.add_argument("--expect-chain-id", type=int, metavar="N", help="pin the chain id (without --trust)")
        sp.add_argument("--expect-contract", metavar="ADDRESS",
                        help="pin the EvidenceLog's address (without --trust)")
        sp.add_argument("--offline", action="store_true",
                        help="check records and proofs against the bundle's own head; ask no node "
                        "(exit 3 when they hold: the head is not checked)")
        sp.add_argument("--extends", metavar="EARLIER",
                        help="an earlier v2 bundle of the same order or merchant: check that nothing it "
                        "committed vanished or changed (exit 1 if something did)")
        sp.add_argument("--figures", action="store_true",
                        help="a v2 merchant bundle: recompute the lender's figures (as `ledger audit "
                        "--merchant --json`) from the bundle and the chain alone")
        sp.add_argument("--escrow", metavar="ADDRESS",
                        help="--figures: the FulfillmentEscrow (default: the data dir's deployment manifest)")
        sp.add_argument("--since", metavar="TS", type=time_bound,
                        help="--figures: orders whose order record is at or after TS (default: the "
                        "bundle's since)")
        sp.add_argument("--until", metavar="TS", type=time_bound,
                        help="--figures: orders whose order record is before TS")
        sp.set_defaults(func=cmd_verify)
