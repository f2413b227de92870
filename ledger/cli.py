"""The `ledger` command line. Every command has `--json` for machines where it reports."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.errors import ChainUnavailable, ConfigError, LedgerError, StoreError, ValidationError

DEFAULT_DATA_DIR = ".ledger"


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get("LEDGER_HOME") or DEFAULT_DATA_DIR)


def open_store(args: argparse.Namespace) -> Any:
    from ledger.secrets import MasterSecret
    from ledger.store import Store

    return Store(data_dir(args) / "evidence.sqlite3", MasterSecret.from_env())


def rpc_url(args: argparse.Namespace) -> str:
    if getattr(args, "rpc", None):
        return str(args.rpc)
    if os.environ.get("LEDGER_RPC"):
        return os.environ["LEDGER_RPC"]
    node_file = data_dir(args) / "node.json"
    if node_file.exists():
        return str(json.loads(node_file.read_text())["url"])
    raise ChainUnavailable(
        "no chain to talk to: start a local node with `ledger node` (in another terminal), "
        "or pass --rpc URL (or set LEDGER_RPC) for any Ethereum JSON-RPC endpoint"
    )


def open_chain(args: argparse.Namespace) -> Any:
    from ledger import chain

    c = chain.connect(rpc_url(args), confirmations=getattr(args, "confirmations", None))
    return c


@contextmanager
def progress_bar(enabled: bool, description: str, total: int | None) -> Iterator[Any]:
    """A rich progress bar on stderr (or a no-op): yields advance(n)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=_console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def spinner(enabled: bool, message: str) -> Iterator[None]:
    """A rich status spinner on stderr for a step of unknown length (or a no-op)."""
    if not enabled:
        yield
        return
    with _console(stderr=True).status(message):
        yield


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        _console().print(text)


# ----------------------------------------------------------------------------- commands


def cmd_compile(args: argparse.Namespace) -> int:
    from ledger._internal import solc

    t = time.perf_counter()
    arts = solc.compile_all(force=args.force)
    if not args.quiet:
        emit(args, {"contracts": sorted(arts)},
             f"compiled {', '.join(sorted(arts))} with solc {solc.SOLC_VERSION} "
             f"(evm {solc.EVM_VERSION}) in {time.perf_counter() - t:.2f}s")
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    import signal
    import subprocess
    import threading

    from ledger.node import anvil_command, wait_for_rpc

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    ddir = data_dir(args)
    state_dir = ddir / "anvil"
    state_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{args.port}"
    cmd = anvil_command(args.port, state_dir / "state.json", block_time=args.block_time)
    # SIGTERM (kill, systemd, containers) stops the node like Ctrl-C instead of orphaning anvil.
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, interrupt) if on_main else None
    proc = subprocess.Popen(cmd)
    try:
        wait_for_rpc(url, proc)
        (ddir / "node.json").write_text(json.dumps({"url": url, "pid": proc.pid}) + "\n")
        _console(stderr=True).print(
            f"anvil running at {url} (state in {state_dir}); Ctrl-C stops it and saves the state"
        )
        return proc.wait()
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches anvil too, but a signal sent to this process alone
        # does not: pass SIGINT on (anvil saves its --state on it) and wait for anvil to exit.
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return 0
    finally:
        if on_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.terminate()
        try:
            (ddir / "node.json").unlink()
        except FileNotFoundError:
            pass


def cmd_deploy(args: argparse.Namespace) -> int:
    from ledger.deploy import deploy_escrow, deploy_evidence_log, manifest_path

    chain = open_chain(args)
    ddir = data_dir(args)
    deployments = [deploy_evidence_log(chain, ddir, redeploy=args.redeploy)]
    if not args.log_only:
        if args.panel:
            panel = [_address_of(chain, ref) for ref in args.panel.split(",")]
        elif chain.kind in ("anvil", "embedded"):
            panel = [_address_of(chain, f"dev:{i}") for i in (7, 8, 9)]
        else:
            raise ConfigError(
                "deploying the escrow on this network needs --panel ADDR,ADDR,... (the "
                "arbitration panel) and --threshold N; or pass --log-only"
            )
        threshold = args.threshold or len(panel) // 2 + 1
        esc = deploy_escrow(
            chain, ddir, panel=panel, threshold=threshold, arbitration_cost=args.arbitration_cost,
            treasury=args.treasury, deposit_ratio_bps=args.deposit_ratio, redeploy=args.redeploy,
        )  # fmt: skip
        deployments += [esc.arbitrator, esc.escrow]
    payload = {
        "manifest": str(manifest_path(ddir, chain.chain_id)),
        "contracts": {d.name: {"reused": d.reused, **d.to_json()} for d in deployments},
        # the log's fields at the top level, as before the escrow existed
        "reused": deployments[0].reused, **deployments[0].to_json(),
    }
    lines = [
        f"{d.name} {'already deployed' if d.reused else 'deployed'} at {d.address} on chain "
        f"{chain.chain_id} (tx {d.tx_hash}, block {d.block_number})"
        for d in deployments
    ]
    emit(args, payload, "\n".join(lines))
    return 0


def _address_of(chain: Any, ref: str) -> str:
    from eth_utils import is_address, to_checksum_address

    from ledger.chain import resolve_signer

    ref = ref.strip()
    return to_checksum_address(ref) if is_address(ref) else str(resolve_signer(ref, chain).address)


def cmd_ingest(args: argparse.Namespace) -> int:
    from ledger import records

    results = []
    show = not args.json and sys.stderr.isatty()
    with open_store(args) as store:
        # Validate every file before storing any: one bad file stores nothing.
        parsed = []
        problems = []
        for name in args.files:
            path = Path(name)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise LedgerError(f"cannot read {name}: {exc.strerror}") from None
            try:
                parsed.append((name, records.parse_jsonl(data, source=name)))
            except ValidationError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ValidationError(problems)
        for name, recs in parsed:
            with progress_bar(show, f"ingest {name}", len(recs)) as advance:
                results.append(store.ingest(recs, source=name, progress=advance))
        size = store.size
    payload = {"files": [r.__dict__ for r in results], "log_size": size}
    lines = [f"{r.source}: stored {r.stored}, already present {r.skipped}" for r in results]
    emit(args, payload, "\n".join(lines + [f"log size now {size}"]))
    return 0


def cmd_anchor(args: argparse.Namespace) -> int:
    from ledger.anchor import Anchorer
    from ledger.deploy import evidence_log

    chain = open_chain(args)
    with open_store(args) as store:
        log = evidence_log(chain, data_dir(args))
        need = args.confirmations if args.confirmations is not None else chain.confirmations
        with spinner(not args.json and sys.stderr.isatty(),
                     f"anchoring {store.size:,} records: tree, consistency proof, transaction, "
                     f"{need} confirmation(s)…"):
            outcome = Anchorer(store, chain, log).anchor(confirmations=args.confirmations)
    if outcome.head is None:
        emit(args, {"anchored": False, "size": outcome.previous.size, "resumed": outcome.resumed},
             f"nothing new to anchor (head size {outcome.previous.size} already anchored)")
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
    }
    emit(args, payload,
         f"anchored head size {outcome.head.size} root {outcome.head.root.hex()[:16]}… "
         f"(from {outcome.previous.size}) in block {outcome.block_number}, gas {outcome.gas_used}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        size = store.size
        anchors = store.anchors()
        counts = store.counts()
    confirmed = [a for a in anchors if a.status == "confirmed"]
    latest = max(confirmed, key=lambda a: a.size) if confirmed else None
    payload = {
        "log_size": size,
        "records_by_kind": counts,
        "latest_anchor": None if latest is None else {
            "size": latest.size, "root": latest.root.hex(), "chain_id": latest.chain_id,
            "contract": latest.contract, "tx_hash": "0x" + latest.tx_hash.hex(),
        },
        "pending_anchors": sum(1 for a in anchors if a.status == "sent"),
        "unanchored_records": size - (latest.size if latest else 0),
    }
    text = (f"log size {size} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})\n"
            + (f"latest anchored head: size {latest.size} on chain {latest.chain_id} at {latest.contract}"
               if latest else "nothing anchored yet")
            + f"\nunanchored records: {payload['unanchored_records']}, pending anchor txs: "
            f"{payload['pending_anchors']}")
    emit(args, payload, text)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ledger.bundle import export_bundle

    with open_store(args) as store:
        chain_id, contract = _anchor_target(args, store)
        bundle, skipped = export_bundle(
            store, chain_id, contract, order_id=args.order, merchant_id=args.merchant,
            since=args.since, until=args.until, disclose_personal=args.disclose_personal,
        )
    text = json.dumps(bundle, indent=2, sort_keys=True) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    msg = f"wrote {len(bundle['records'])} record(s) to {args.output}"
    if skipped:
        msg += f"; {len(skipped)} newer record(s) not yet anchored were left out: run `ledger anchor`"
    if args.output != "-":
        emit(args, {"output": args.output, "records": len(bundle["records"]),
                    "unanchored_left_out": skipped}, msg)
    else:
        _console(stderr=True).print(msg)
    return 0


def _anchor_target(args: argparse.Namespace, store: Any) -> tuple[int, str]:
    """(chain id, contract) of the store's latest confirmed anchor."""
    confirmed = store.anchors(status="confirmed")
    if not confirmed:
        raise StoreError("nothing is anchored yet: run `ledger anchor` first")
    latest = max(confirmed, key=lambda a: a.id)
    return latest.chain_id, latest.contract


def cmd_verify(args: argparse.Namespace) -> int:
    from ledger import bundle as bundle_mod
    from ledger.chain import connect

    text = Path(args.bundle).read_bytes() if args.bundle != "-" else sys.stdin.buffer.read()
    data = bundle_mod.load_bundle(text, args.bundle)
    chain = connect(rpc_url(args))
    show = not args.json and sys.stderr.isatty()
    with progress_bar(show, f"verify {args.bundle}", len(data["records"])) as advance:
        verdict = bundle_mod.verify_bundle(data, chain.w3, progress=advance)
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2))
    else:
        print_verdict(verdict)
    return 0 if verdict.ok else 1


def print_verdict(verdict: Any, console: Any = None) -> None:
    console = console or _console()
    for f in verdict.head_failures:
        console.print(f"[red]HEAD FAIL[/red] {f}")
    for r in verdict.records:
        if r.ok:
            console.print(f"[green]OK[/green]   leaf {r.index} {r.record_id}")
        else:
            for f in r.failures:
                console.print(f"[red]FAIL[/red] leaf {r.index} {r.record_id}: {f}")
    good = sum(r.ok for r in verdict.records)
    status = "[green]VERIFIED[/green]" if verdict.ok else "[red]NOT VERIFIED[/red]"
    console.print(
        f"{status}: {good}/{len(verdict.records)} records; head size {verdict.tree_size} on chain "
        f"{verdict.chain_id} contract {verdict.contract}"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from ledger.demo import run_demo

    return run_demo(
        orders=args.orders, merchants=args.merchants, seed=args.seed, batches=args.batches,
        out_dir=Path(args.out), as_json=args.json,
    )


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ledger",
        description="evidence-escrow: provable live-commerce evidence on an anchored RFC 9162 log.",
    )
    p.add_argument("--data-dir",
                   help=f"store, manifests and node state (env LEDGER_HOME; default {DEFAULT_DATA_DIR})")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str, *, chain: bool = False, json_: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        if chain:
            sp.add_argument("--rpc",
                            help="JSON-RPC URL (env LEDGER_RPC; default: the `ledger node` of the data dir)")
        if json_:
            sp.add_argument("--json", action="store_true", help="machine-readable output")
        return sp

    sp = add("compile", "compile the contracts (cached by sources, compiler and settings)")
    sp.add_argument("--force", action="store_true", help="ignore the cache")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_compile)

    sp = add("node", "run a local anvil node whose state persists in the data dir", json_=False)
    sp.add_argument("--port", type=int, default=8545)
    sp.add_argument("--block-time", type=float, default=None,
                    help="seconds per block (default: mine on demand)")
    sp.set_defaults(func=cmd_node)

    sp = add("deploy", "deploy EvidenceLog, PanelArbitrator and FulfillmentEscrow (idempotent); "
             "write the chain's deployment manifest", chain=True)
    sp.add_argument("--redeploy", action="store_true",
                    help="deploy anew even if a matching deployment is live")
    sp.add_argument("--log-only", action="store_true", help="only the evidence log")
    sp.add_argument("--panel", help="arbitration panel: addresses or KEYREFs, comma-separated "
                    "(default on a local node: dev:7,dev:8,dev:9)")
    sp.add_argument("--threshold", type=int, help="votes for a final ruling (default: a majority)")
    sp.add_argument("--arbitration-cost", type=int, default=0, help="wei paid to open a dispute")
    sp.add_argument("--treasury", help="where platform fees go (default: the deployer)")
    sp.add_argument("--deposit-ratio", type=int, default=2_000,
                    help="merchant deposit required, in basis points of open exposure (default 2000)")
    sp.set_defaults(func=cmd_deploy)

    sp = add("ingest", "validate and append JSONL record files to the log (atomic, idempotent)")
    sp.add_argument("files", nargs="+", metavar="FILE.jsonl")
    sp.set_defaults(func=cmd_ingest)

    sp = add("anchor", "anchor the current tree head on chain (resumes pending anchors first)", chain=True)
    sp.add_argument("--confirmations", type=int, default=None,
                    help="blocks to wait (default 1 on dev chains, 3 elsewhere)")
    sp.set_defaults(func=cmd_anchor)

    sp = add("status", "log size, anchoring state")
    sp.set_defaults(func=cmd_status)

    sp = add("export", "export a self-contained evidence bundle (JSON)", json_=True)
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--order", metavar="ID", help="every record of one order")
    who.add_argument("--merchant", metavar="ID", help="every record of one merchant")
    who.add_argument("--all", action="store_true", help="every record (with --since/--until)")
    sp.add_argument("--since", metavar="TS", help="RFC 3339 lower bound (inclusive) on record ts")
    sp.add_argument("--until", metavar="TS", help="RFC 3339 upper bound (exclusive) on record ts")
    sp.add_argument("--disclose-personal", action="store_true",
                    help="include decrypted personal fields and their salts (default: commitments only)")
    sp.add_argument("-o", "--output", default="-", help="bundle file (default stdout)")
    sp.set_defaults(func=cmd_export)

    sp = add("verify", "verify an evidence bundle against the chain; exit 0 only if all verified", chain=True)
    sp.add_argument("bundle", metavar="BUNDLE", help="bundle file, or - for stdin")
    sp.set_defaults(func=cmd_verify)

    from ledger import cli_escrow

    cli_escrow.register(add)
    from ledger import cli_audit

    cli_audit.register(add)
    from ledger import cli_replay

    cli_replay.register(add)

    sp = add("demo", "the whole flow on the embedded chain: sale → log → anchors → bundle → verify "
             "→ escrow settlements")
    sp.add_argument("--orders", type=int, default=400)
    sp.add_argument("--merchants", type=int, default=5)
    sp.add_argument("--seed", type=int, default=11)
    sp.add_argument("--batches", type=int, default=4, help="ingest+anchor rounds")
    sp.add_argument("--out", default="demo-output", help="where the bundle files go")
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except LedgerError as exc:
        if getattr(args, "json", False):
            payload: dict[str, Any] = {"error": type(exc).__name__, "message": exc.diagnostics()}
            if hasattr(exc, "problems"):
                payload["problems"] = [p.to_json() for p in exc.problems]
            print(json.dumps(payload, indent=2), file=sys.stdout)
        else:
            from rich.markup import escape

            _console(stderr=True).print(f"[red]error:[/red] {escape(exc.diagnostics())}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
