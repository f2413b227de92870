"""`ledger node`, `ledger advance` and `ledger demo`: a local chain, its clock, the whole flow."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import threading
from pathlib import Path

from ledger.chain.anvil import anvil_command, check_port_free, wait_for_rpc
from ledger.cli._common import add_json, add_rpc, bounded, console, data_dir, duration, emit, open_chain
from ledger.dev.demo import run_demo
from ledger.errors import ChainUnavailable

__all__ = ["configure"]


def cmd_node(args: argparse.Namespace) -> int:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    ddir = data_dir(args)
    state_dir = ddir / "anvil"
    state_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{args.port}"
    cmd = anvil_command(args.port, state_dir / "state.json", block_time=args.block_time)
    check_port_free(args.port)
    # SIGTERM (kill, systemd, containers) stops the node like Ctrl-C instead of orphaning anvil;
    # SIGINT gets the same handler explicitly, since a node started from a background job or a
    # script inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    on_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGINT)} if on_main else {}
    proc = subprocess.Popen(cmd)
    try:
        wait_for_rpc(url, proc)
        if proc.poll() is not None:  # what answered was another process on the port
            raise ChainUnavailable(f"anvil exited with code {proc.returncode} on port {args.port}")
        (ddir / "node.json").write_text(json.dumps({"url": url, "pid": proc.pid}) + "\n")
        console(stderr=True).print(
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
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            proc.terminate()
        try:
            (ddir / "node.json").unlink()
        except FileNotFoundError:
            pass


def cmd_advance(args: argparse.Namespace) -> int:
    chain = open_chain(args)
    before = chain.timestamp()
    chain.time_travel(args.duration)
    after = chain.timestamp()
    emit(args, {"from": before, "to": after}, f"chain time advanced by {args.duration}s: {before} -> {after}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(
        orders=args.orders, merchants=args.merchants, seed=args.seed, batches=args.batches,
        out_dir=Path(args.out), as_json=args.json,
    )


def _forward(text: str) -> int:
    """A duration of at least a second (an argparse type): the clock only moves forward."""
    seconds = duration(text)
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"the clock only moves forward: give at least 1s, not {text!r}")
    return seconds


def _seconds(text: str) -> float:
    """A positive number of seconds (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"seconds per block must be a number above 0 and below "
                                         f"86400, not {text[:40]!r}")
    return value


def configure(name: str, sp: argparse.ArgumentParser) -> None:
    if name == "node":
        sp.add_argument("--port", type=bounded(1, 65535, "a TCP port"), default=8545)
        sp.add_argument("--block-time", type=_seconds, default=None,
                        help="seconds per block (default: mine on demand)")
        sp.set_defaults(func=cmd_node)
    elif name == "advance":
        add_rpc(sp)
        add_json(sp)
        sp.add_argument("duration", type=_forward, help="e.g. 3d, 12h")
        sp.set_defaults(func=cmd_advance)
    elif name == "demo":
        add_json(sp)
        sp.add_argument("--orders", type=bounded(1, 1_000_000, "a number of orders"), default=400)
        sp.add_argument("--merchants", type=bounded(1, 1000, "a number of merchants"), default=5)
        sp.add_argument("--seed", type=bounded(0, 2**63 - 1, "a seed"), default=11)
        sp.add_argument("--batches", type=bounded(1, 1000, "a number of batches"), default=4,
                        help="ingest+anchor rounds")
        sp.add_argument("--out", default="demo-output", help="where the bundle files go")
        sp.set_defaults(func=cmd_demo)
