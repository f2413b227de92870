"""What every command module shares: the data dir, the store, the chain, output helpers.

Command modules import this module and never each other.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address
from rich.console import Console

from ledger.chain.keys import resolve_signer
from ledger.chain.rpc import Chain, connect
from ledger.config import settings
from ledger.errors import ChainUnavailable
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store

__all__ = [
    "Handler", "add_json", "add_rpc", "address_of", "console", "data_dir", "duration", "emit",
    "open_chain", "open_store", "progress_bar", "rpc_url", "spinner",
]

#: a command's handler: takes the parsed arguments, returns the exit status
Handler = Callable[[argparse.Namespace], int]

RPC_HELP = "JSON-RPC URL (env LEDGER_RPC; default: the `ledger node` of the data dir)"


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False)


def add_rpc(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc", help=RPC_HELP)


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if getattr(args, "data_dir", None) else settings().data_dir


def open_store(args: argparse.Namespace) -> Store:
    return Store(data_dir(args) / "evidence.sqlite3", MasterSecret.from_env())


def rpc_url(args: argparse.Namespace) -> str:
    if getattr(args, "rpc", None):
        return str(args.rpc)
    url = settings().rpc
    if url:
        return url
    node_file = data_dir(args) / "node.json"
    if node_file.exists():
        return str(json.loads(node_file.read_text())["url"])
    raise ChainUnavailable(
        "no chain to talk to: start a local node with `ledger node` (in another terminal), "
        "or pass --rpc URL (or set LEDGER_RPC) for any Ethereum JSON-RPC endpoint"
    )


def open_chain(args: argparse.Namespace) -> Chain:
    return connect(rpc_url(args), confirmations=getattr(args, "confirmations", None))


def address_of(chain: Chain, ref: str) -> str:
    """An address given as is, or the address of a key reference (dev:N, env:VAR, keystore:PATH)."""
    ref = ref.strip()
    return to_checksum_address(ref) if is_address(ref) else str(resolve_signer(ref, chain).address)


_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> int:
    """Seconds from '90', '90s', '15m', '12h' or '3d' (an argparse type)."""
    m = _DURATION.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 3600, 15m, 12h, 3d)")
    return int(m.group(1)) * _UNITS[m.group(2)]


@contextmanager
def progress_bar(
    enabled: bool, description: str, total: int | None, *, in_bytes: bool = False
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (or a no-op): yields advance(n); n counts items, or
    bytes (shown as such) with `in_bytes`."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(),
        DownloadColumn() if in_bytes else MofNCompleteColumn(),
        TimeElapsedColumn(), console=console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def spinner(enabled: bool, message: str) -> Iterator[None]:
    """A rich status spinner on stderr for a step of unknown length (or a no-op)."""
    if not enabled:
        yield
        return
    with console(stderr=True).status(message):
        yield


def emit(args: argparse.Namespace, payload: Any, text: Any) -> None:
    """`payload` as JSON on stdout with --json, else `text` (a string or a rich renderable)."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        console().print(text)
