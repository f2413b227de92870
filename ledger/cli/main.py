"""The `ledger` command line: one entry point and a table of commands.

Each command lives in a module of this package (`COMMANDS`), imported only when that command
runs, so `ledger --help` and every command start without loading what they do not use. A
command module has one function, ``configure(name, parser)``, that adds the command's
arguments and sets ``func``, its handler. Every command has ``--json`` for machines where it
reports. The only error caught here is `LedgerError`: its diagnosis is printed and the exit
status is its ``exit_code``: 2, or 75 when a stored transaction is not settled yet.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ledger import __version__
from ledger._internal import logs
from ledger.config import DEFAULT_DATA_DIR, VARIABLES, settings
from ledger.errors import LedgerError

__all__ = ["COMMANDS", "build_parser", "main"]

_logger = logging.getLogger(__name__)

#: command -> (module that implements it, one-line summary); in the order `--help` lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "compile": ("ledger.cli.deploy", "compile the contracts (cached by sources, compiler and settings)"),
    "node": ("ledger.cli.dev", "run a local anvil node whose state persists in the data dir"),
    "deploy": ("ledger.cli.deploy", "deploy EvidenceLog, PanelArbitrator and FulfillmentEscrow "
               "(idempotent); write the chain's deployment manifest"),
    "ingest": ("ledger.cli.log", "validate and append JSONL record files to the log (atomic, idempotent)"),
    "anchor": ("ledger.cli.log", "anchor the current tree head on chain (resumes pending anchors first)"),
    "resume": ("ledger.cli.resume", "finish or abandon every anchor and escrow step an earlier command left "
               "pending: re-send, replace at a higher fee, re-sign, or abandon with the reason"),
    "status": ("ledger.cli.log", "log size, anchoring state (anchors re-checked against the chain)"),
    "export": ("ledger.cli.log", "export a self-contained evidence bundle (JSON)"),
    "verify": ("ledger.cli.log", "verify an evidence bundle against the chain and a trust root (exit 0 only "
               "if all verified)"),
    "erase": ("ledger.cli.erase", "erase an order's content and key (GDPR art. 17, PIPL art. 47); its leaves "
              "stay provable and the erasure is itself a record of the log"),
    "order": ("ledger.cli.escrow", "escrowed orders: offer (to sign in a wallet), open, ship, deliver, "
              "confirm, release, refund, cancel, returns, show"),
    "dispute": ("ledger.cli.escrow", "disputes: open, evidence, vote (panel), default, timeout"),
    "pledge": ("ledger.cli.escrow", "pledge an order's payout to a lender (once), or show who it is "
               "pledged to"),
    "deposit": ("ledger.cli.escrow", "merchant security deposits: add, withdraw, show"),
    "withdraw": ("ledger.cli.escrow", "withdraw an account's credit (payouts, refunds, compensation)"),
    "carrier": ("ledger.cli.escrow", "register or remove a carrier's signing address (admin)"),
    "token": ("ledger.cli.escrow", "allow or disallow an ERC-20 for new orders (admin)"),
    "admin": ("ledger.cli.admin", "admin changes (terms, deposit ratio, treasury, fees, arbitrator panel, "
              "carriers, tokens, roles and their two-step handover, sweep): at once, or scheduled and "
              "executed through the admin timelock"),
    "escrow": ("ledger.cli.escrow", "the escrow's books for a token (they must equal its balance) and terms"),
    "advance": ("ledger.cli.dev", "advance a development chain's clock (embedded, or anvil with chain id "
                "31337; for tests and replays)"),
    "audit": ("ledger.cli.audit", "audit an order (verified timeline of records and escrow events) or a "
              "merchant (sales, refunds, returns, disputes, deposit coverage, pledges); exit 1 if "
              "anything does not check out"),
    "case": ("ledger.cli.replay", "export an order's case file (evidence, set-up, every transaction) for "
             "replay"),
    "replay": ("ledger.cli.replay", "replay a case on a fresh chain at its original times; exit 0 only "
               "if it reproduces and every piece of evidence verifies"),
    "trace": ("ledger.cli.replay", "a transaction's call trace on a node that supports "
              "debug_traceTransaction, with decoded calls and custom errors"),
    "demo": ("ledger.cli.dev", "the whole flow on the embedded chain: sale → log → anchors → bundle → "
             "verify → escrow settlements"),
}


def _add_global_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir",
                   help=f"store, manifests and node state (env LEDGER_HOME; default {DEFAULT_DATA_DIR})")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log what happens on stderr: -v steps, -vv details (env LEDGER_LOG_LEVEL)")
    p.add_argument("--log-json", action="store_true", help="log as JSON lines (with -v)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; `command`'s own arguments are added only for that command (its module is
    imported then), which is all one invocation needs."""
    p = argparse.ArgumentParser(
        prog="ledger",
        description="evidence-escrow: provable live-commerce evidence on an anchored RFC 9162 log.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        sp = sub.add_parser(name, help=summary, description=summary)
        if name == command:
            importlib.import_module(module).configure(name, sp)
    return p


def _command_of(argv: Sequence[str]) -> str | None:
    """The command named in `argv` (after the global options), if any."""
    pre = argparse.ArgumentParser(add_help=False)
    _add_global_options(pre)
    pre.add_argument("command", nargs="?")
    known, _ = pre.parse_known_args(argv)
    return known.command if known.command in COMMANDS else None


def _secrets() -> list[str]:
    """The secret values this process was given, for the log filter."""
    s = settings()
    return [str(getattr(s, v.attribute)) for v in VARIABLES if v.secret and getattr(s, v.attribute)]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    level = logs.level_for(args.verbose, settings().log_level)
    logs.configure(level, as_json=args.log_json, secrets=_secrets())
    _logger.debug("ledger %s", args.command)
    try:
        return int(args.func(args))
    except LedgerError as exc:
        _logger.info("%s: %s", type(exc).__name__, exc)
        if getattr(args, "json", False):
            payload: dict[str, Any] = {"error": type(exc).__name__, "message": exc.diagnostics()}
            problems = getattr(exc, "problems", None)
            if problems is not None:
                payload["problems"] = [p.to_json() for p in problems]
            print(json.dumps(payload, indent=2), file=sys.stdout)
        else:
            from rich.console import Console
            from rich.markup import escape

            Console(stderr=True, highlight=False).print(
                f"[red]error:[/red] {escape(exc.diagnostics())}", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
