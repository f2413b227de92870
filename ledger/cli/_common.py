"""What every command module shares: the data dir, the store, the chain, output helpers.

Command modules import this module and never each other.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address
from rich.console import Console

from ledger._internal.rfc3339 import parse_time_ns, rfc3339
from ledger.chain.fees import eth
from ledger.chain.keys import key_reference_problem, resolve_signer
from ledger.chain.rpc import Chain, connect
from ledger.config import settings
from ledger.deploy import admin_timelock, escrow_client
from ledger.deploy.runner import refresh_configuration
from ledger.errors import ChainUnavailable, ConfigError
from ledger.escrow.admin import Admin, Submitted
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store

__all__ = [
    "UINT256_MAX", "Handler", "add_json", "add_rpc", "add_tx_options", "address", "address_of",
    "address_or_keyref",
    "KEYREF_HELP", "admin_for", "amount", "bounded", "console", "cost_text", "data_dir", "duration", "emit",
    "keyref", "mined_receipt", "note_admin_change", "open_chain", "open_store", "price", "progress_bar",
    "read_input", "rpc_url", "spinner", "submitted_out", "time_bound", "tx_costs", "tx_hash", "write_output",
]

#: a command's handler: takes the parsed arguments, returns the exit status
Handler = Callable[[argparse.Namespace], int]

RPC_HELP = "JSON-RPC URL (env LEDGER_RPC; default: the `ledger node` of the data dir)"


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False)


def add_rpc(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc", help=RPC_HELP)


DEFAULT_MAX_FEE_GWEI = 500


def add_tx_options(parser: argparse.ArgumentParser) -> None:
    """How long to wait for a transaction, how deep it must be, what a fee bump may bid."""
    parser.add_argument("--confirmations", type=bounded(0, 1000, "a number of blocks"), default=None,
                        help="blocks on top of (and including) a transaction's own before it counts "
                        "(env LEDGER_CONFIRMATIONS; default 1 on dev chains, 3 elsewhere)")
    parser.add_argument("--timeout", type=bounded(1, 86400, "seconds"), default=None, metavar="SECONDS",
                        help="how long to wait for each transaction (env LEDGER_TX_TIMEOUT; default 120); "
                        "one not settled by then stays stored for `ledger resume`")
    parser.add_argument("--max-fee", type=bounded(1, 1_000_000, "gwei"), default=None, metavar="GWEI",
                        help="the highest max fee per gas any transaction may bid, a replacement of a stuck "
                        f"one too (env LEDGER_MAX_FEE_GWEI; default {DEFAULT_MAX_FEE_GWEI})")


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
        try:
            return str(json.loads(node_file.read_text())["url"])
        except (OSError, ValueError, KeyError, TypeError):
            raise ChainUnavailable(f"{node_file} does not say where `ledger node` listens: start it "
                                   "again, or pass --rpc URL") from None
    raise ChainUnavailable(
        "no chain to talk to: start a local node with `ledger node` (in another terminal), "
        "or pass --rpc URL (or set LEDGER_RPC) for any Ethereum JSON-RPC endpoint"
    )


def open_chain(args: argparse.Namespace) -> Chain:
    """The chain of `args` (--rpc, LEDGER_RPC, or the data dir's node), with the transaction
    options (`add_tx_options`, else their environment variables), the data dir's per-key
    nonce locks, and waits reported on stderr."""
    env = settings()
    confirmations = getattr(args, "confirmations", None)
    if confirmations is None and env.confirmations is not None:
        confirmations = env.int_value("confirmations", 1)
    chain = connect(rpc_url(args), confirmations=confirmations)
    timeout = getattr(args, "timeout", None)
    chain.timeout = float(timeout if timeout is not None else env.int_value("tx_timeout", 120))
    max_fee = getattr(args, "max_fee", None)
    if max_fee is None:
        max_fee = env.int_value("max_fee_gwei", DEFAULT_MAX_FEE_GWEI)
    chain.max_fee = max_fee * 10**9
    chain.lock_dir = data_dir(args) / "locks"
    chain.progress = _say
    return chain


def _say(text: str) -> None:
    console(stderr=True).print(text, markup=False, soft_wrap=True)


def address_of(chain: Chain, ref: str) -> str:
    """An address given as is, or the address of a key reference (dev:N, env:VAR, keystore:PATH)."""
    ref = ref.strip()
    return to_checksum_address(ref) if is_address(ref) else str(resolve_signer(ref, chain).address)


def read_input(name: str, argument: str) -> bytes:
    """The bytes of a file named by a command-line `argument`, or of stdin for '-'."""
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{argument} {name}: cannot read it: {exc.strerror or exc}") from None


def write_output(name: str, text: str, argument: str) -> None:
    """Write the file named by a command-line `argument` (an error naming both if that fails)."""
    try:
        Path(name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{argument} {name}: cannot write it: {exc.strerror or exc}") from None


# --- argparse types: a bad value exits 2 naming the argument and why, before any work ----

UINT256_MAX = 2**256 - 1


def _integer(text: str, what: str, lo: int, hi: int, shown: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{what} must be an integer from {lo} to {shown}, not "
                                         f"{text[:80]!r}")
    return value


def amount(text: str) -> int:
    """A token amount in base units: 0 to 2^256 - 1 (an argparse type)."""
    return _integer(text, "an amount (in the token's base units)", 0, UINT256_MAX, "2^256 - 1")


def price(text: str) -> int:
    """A price in base units: 1 to 2^256 - 1 (an argparse type)."""
    return _integer(text, "a price (in the token's base units)", 1, UINT256_MAX, "2^256 - 1")


def bounded(lo: int, hi: int, what: str) -> Callable[[str], int]:
    """An argparse type for an integer from `lo` to `hi`."""
    return lambda text: _integer(text, what, lo, hi, str(hi))


#: the help epilog of every command that takes a KEYREF
KEYREF_HELP = (
    "KEYREF names where a key lives, never the key: dev:N (development account N of a local node), "
    "env:VAR (a private key in the environment variable VAR), keystore:PATH (an encrypted keystore; "
    "password from LEDGER_KEYSTORE_PASSWORD or LEDGER_KEYSTORE_PASSWORD_FILE), "
    "keystore:PATH?password-file=FILE (its own password, in FILE, mode 0600) or "
    "keystore:PATH?password-env=VAR (its own password, in the variable VAR)."
)


def keyref(text: str) -> str:
    """A key reference, dev:N, env:VAR or keystore:PATH[?password-file=FILE|?password-env=VAR]
    (an argparse type; never echoes what was given: it may be a key)."""
    problem = key_reference_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text.strip()


def address_or_keyref(text: str) -> str:
    """A 0x address or a key reference (an argparse type)."""
    if is_address(text.strip()):
        return text.strip()
    problem = key_reference_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{problem} (or a 0x address)")
    return text.strip()


def address(text: str) -> str:
    """A 0x address (an argparse type)."""
    if not is_address(text.strip()):
        raise argparse.ArgumentTypeError(f"not an address: {text[:80]!r} (0x and 40 hex digits)")
    return to_checksum_address(text.strip())


def time_bound(text: str) -> str:
    """An RFC 3339 time, checked and kept as given (an argparse type)."""
    try:
        parse_time_ns(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


_TX_HASH = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")


def tx_hash(text: str) -> str:
    """A transaction hash, 0x-prefixed on the way out (an argparse type)."""
    if not _TX_HASH.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"not a transaction hash: {text[:80]!r} (0x and 64 hex digits)")
    return "0x" + text.strip().removeprefix("0x")


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


# --- what a transaction cost ------------------------------------------------------------

def tx_costs(chain: Chain, receipts: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """What a command's transactions cost, for its --json output: ``gas_used`` and ``cost_wei``
    (gas used x the effective gas price, in wei) summed over `receipts`, and ``transactions``:
    each one's ``tx_hash``, ``gas_used``, ``effective_gas_price`` and ``cost_wei``."""
    costs = [chain.cost(r) for r in receipts if r is not None]
    return {"gas_used": sum(c.gas_used for c in costs), "cost_wei": sum(c.cost_wei for c in costs),
            "transactions": [c.to_json() for c in costs]}


def cost_text(costs: dict[str, Any]) -> str:
    """`tx_costs` for people: 'gas 52,113, cost 0.000097 ETH'."""
    return f"gas {costs['gas_used']:,}, cost {eth(costs['cost_wei'])}"


def mined_receipt(chain: Chain, hashes: Iterable[bytes]) -> dict[str, Any] | None:
    """The receipt of whichever of a stored transaction's attempts was mined (None: none)."""
    return next((r for r in map(chain.receipt, hashes) if r is not None), None)


# --- admin changes (ledger admin, ledger carrier, ledger token) ----------------------------

def admin_for(args: argparse.Namespace) -> Admin:
    """The deployment's admin side, signing with `--as` (default: the platform key)."""
    chain = open_chain(args)
    ddir = data_dir(args)
    client = escrow_client(chain, ddir)
    found = admin_timelock(chain, ddir)
    sender = resolve_signer(args.as_, chain) if getattr(args, "as_", None) else chain.default_account
    timelock, block = found if found else (None, 0)
    return Admin(client, timelock, sender, from_block=block)


def note_admin_change(args: argparse.Namespace, chain: Chain, what: str, tx_hashes: list[str]) -> None:
    """An admin change took effect: the manifest's configuration is read again from the chain
    and the change noted in its history (so `ledger deploy --check` tells it from drift)."""
    refresh_configuration(chain, data_dir(args), "admin change", what, tx_hashes)


def submitted_out(args: argparse.Namespace, done: Submitted, extra: dict[str, Any] | None = None,
                  *, chain: Chain) -> int:
    if done.executed:
        note_admin_change(args, chain, "; ".join(done.calls), done.tx_hashes)
    costs = tx_costs(chain, done.receipts)
    payload: dict[str, Any] = {"executed": done.executed, "calls": done.calls,
                               "tx_hashes": done.tx_hashes, **costs, **(extra or {})}
    if done.operation is not None:
        payload["operation"] = done.operation.to_json()
    lines = [f"  {c}" for c in done.calls]
    if done.executed:
        text = "executed at once (sent, not scheduled):\n" + "\n".join(lines)
    else:
        op = done.operation
        assert op is not None
        text = (f"scheduled operation 0x{op.id.hex()}, executable from {rfc3339(op.ready_at)}:\n"
                + "\n".join(lines)
                + f"\nrun `ledger admin execute 0x{op.id.hex()}` then (anyone watching the timelock "
                "sees it now)")
    text += f"\n{len(done.receipts)} transaction(s): {cost_text(costs)}"
    for key in ("next", "warning"):
        if key in payload:
            text += f"\n{key}: {payload[key]}"
    emit(args, payload, text)
    return 0
