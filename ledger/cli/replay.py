"""`ledger case`, `ledger replay` and `ledger trace`: investigate a disputed order."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ledger.chain.rpc import connect
from ledger.cli._common import (
    add_json,
    add_rpc,
    data_dir,
    emit,
    open_chain,
    open_store,
    read_input,
    rpc_url,
    tx_hash,
    write_output,
)
from ledger.deploy import escrow_client, evidence_log
from ledger.errors import ConfigError
from ledger.investigate.case import Case, build_case, dumps_case, load_case
from ledger.investigate.overrides import Override
from ledger.investigate.replay import ReplayResult, replay
from ledger.investigate.trace import render_trace, trace_transaction

__all__ = ["configure"]


def _case_from_order(args: argparse.Namespace, order_id: str, rpc: str | None) -> Case:
    chain = connect(rpc or rpc_url(argparse.Namespace(**{**vars(args), "rpc": None})))
    with open_store(args) as store:
        log = evidence_log(chain, data_dir(args))
        extra = [bytes.fromhex(h[2:]) for h in getattr(args, "extra_tx", None) or []]
        client = escrow_client(chain, data_dir(args))
        return build_case(store, client, order_id, log_address=log.address, extra_txs=extra)


def cmd_case(args: argparse.Namespace) -> int:
    case = _case_from_order(args, args.order, args.rpc)
    text = dumps_case(case)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    write_output(args.output, text, "--output")
    emit(args, {"output": args.output, "actions": len(case.actions),
                    "records": len(case.evidence.records), "state": case.outcome.state},
             f"wrote the case of order {args.order} to {args.output}: {len(case.actions)} "
             f"transaction(s), {len(case.evidence.records)} evidence record(s), final state "
             f"{case.outcome.state}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    path = Path(args.case)
    if args.case == "-" or path.exists():
        case = load_case(read_input(args.case, "CASE"), args.case)
    elif path.suffix == ".json" or "/" in args.case:
        raise ConfigError(f"CASE {args.case}: no such case file (nor an order id: those have no "
                          "'/' and no .json)")
    else:  # an order id: build its case from the data dir's store and the live chain
        case = _case_from_order(args, args.case, args.from_rpc)
    overrides = [Override.parse(o) for o in args.override or []]
    t = time.perf_counter()
    result = replay(case, chain="anvil" if args.anvil else "embedded", rpc=args.rpc, overrides=overrides)
    elapsed = time.perf_counter() - t
    if args.json:
        print(json.dumps({**result.to_json(), "overrides": [str(o) for o in overrides],
                          "seconds": round(elapsed, 3)}, indent=2))
    else:
        print_replay(result, case, overrides)
    return 0 if result.ok else 1


def _events_text(events: list[dict[str, Any]]) -> str:
    return "\n".join(e["name"] for e in events) or "—"


def print_replay(result: ReplayResult, case: Case, overrides: list[Override]) -> None:
    console = Console(highlight=False)
    start = min(a.time for a in case.actions)
    title = f"replay of order {result.order_id} on a fresh {result.chain} chain"
    if overrides:
        title += " with " + ", ".join(str(o) for o in overrides)
    table = Table(title=title, show_lines=True)
    for col in ("#", "step", "time", "original", "replayed", "evidence", "same"):
        table.add_column(col, overflow="fold")
    for s in result.steps:
        orig = s.original_status if s.original_error is None else f"failed: {s.original_error}"
        rep = s.replay_status if s.replay_error is None else f"failed: {s.replay_error}"
        ev = "—" if s.evidence_ok is None else ("[green]verified[/green]" if s.evidence_ok
                                                 else f"[red]FAILED[/red]: {escape(s.evidence_detail)}")
        step = s.function + ("".join(f"\n[yellow]{escape(o)}[/yellow]" for o in s.overridden))
        table.add_row(
            str(s.n), step, f"+{(s.time - start) / 3600:.1f}h",
            escape(orig) + "\n" + escape(_events_text(s.original_events)),
            escape(rep) + "\n" + escape(_events_text(s.replay_events)),
            ev, "[green]yes[/green]" if s.matches else "[red]NO[/red]",
        )
    console.print(table)
    console.print(f"outcome: original [bold]{result.original_state}[/bold], replayed "
                  f"[bold]{result.replay_state}[/bold]; event log digest {result.event_log_digest[:16]}…")
    if result.first_divergence is not None:
        s = result.steps[result.first_divergence]
        console.print(f"[red]first divergence at step {s.n} ({s.function})[/red]")
    if result.first_verification_failure is not None:
        s = result.steps[result.first_verification_failure]
        console.print(f"[red]first evidence verification failure at step {s.n} ({s.function}):[/red] "
                      f"{escape(s.evidence_detail)}")
    for rid, problems in result.record_failures.items():
        console.print(f"[red]record {escape(str(rid))}[/red]: {escape('; '.join(problems))}")
    verdict = "[green]REPRODUCED[/green]" if result.ok else "[red]NOT REPRODUCED[/red]"
    console.print(f"{verdict}: {sum(s.matches for s in result.steps)}/{len(result.steps)} steps match")


def cmd_trace(args: argparse.Namespace) -> int:
    chain = open_chain(args)
    frames = trace_transaction(chain, args.tx)
    if args.json:
        print(json.dumps(frames, indent=2))
    else:
        Console(highlight=False).print(render_trace(frames))
    return 0


def configure(name: str, sp: argparse.ArgumentParser) -> None:
    if name != "replay":
        add_rpc(sp)
    add_json(sp)
    if name == "case":
        _case_args(sp)
    elif name == "replay":
        _replay_args(sp)
    else:
        sp.add_argument("tx", metavar="TX_HASH", type=tx_hash)
        sp.set_defaults(func=cmd_trace)


def _case_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("order", metavar="ORDER")
    sp.add_argument("-o", "--output", default="-", help="case file (default stdout)")
    sp.add_argument("--extra-tx", action="append", metavar="HASH", type=tx_hash,
                    help="another transaction on the order to include (e.g. a fraud attempt); repeatable")
    sp.set_defaults(func=cmd_case)


def _replay_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("case", metavar="CASE", help="a case file (or -), or an order id of the data dir's store")
    sp.add_argument("--anvil", action="store_true", help="replay on a fresh local anvil (default: embedded)")
    sp.add_argument("--rpc", help="replay on this dev node instead (its clock must be before the case)")
    sp.add_argument("--from-rpc", metavar="URL",
                    help="for an order id: the live chain it ran on (default: LEDGER_RPC or `ledger node`)")
    sp.add_argument("--override", action="append", metavar="CHANGE",
                    help="what-if: drop:FUNC[#N], time:FUNC[#N]=+3d, arg:FUNC[#N].NAME=JSON, "
                    "record:RECORD_ID.FIELD=JSON; repeatable")
    sp.set_defaults(func=cmd_replay)
