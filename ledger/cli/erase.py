"""`ledger erase`: destroy an order's content and key, keeping its leaves provable (docs/erasure.md)."""

from __future__ import annotations

import argparse
import getpass

from ledger.cli._common import add_json, emit, open_store
from ledger.errors import ConfigError
from ledger.evidence.erasure import Erasure

__all__ = ["configure"]

EPILOG = """The order's records keep their leaves (index, id, kind, order, merchant, time, leaf hash): every
other order's proofs and the log's consistency are untouched. Their public fields, personal fields and
commitments are deleted, the order's key is destroyed, and an erasure record (what, when, why, by whom;
never the erased content) is appended: run `ledger anchor` to anchor it. An order erased before is
reported as such (exit 0). Bundles disclosed earlier, and backups taken before, still hold what they
held: see docs/erasure.md."""


def _operator(args: argparse.Namespace) -> str:
    if args.operator:
        return str(args.operator)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise ConfigError("--operator: no login name to default to; say who erases (--operator NAME)") \
            from None


def cmd_erase(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        done = store.erase(args.order, reason=args.reason, operator=_operator(args))
    emit(args, {**done.to_json(), "next": None if done.already else "ledger anchor"}, _text(done))
    return 0


def _text(done: Erasure) -> str:
    leaves = ", ".join(str(i) for i, _ in done.erased)
    where = f"leaf {done.erasure_index}" if done.erasure_index is not None else "not in the log"
    if done.already:
        lines = [f"order {done.order_id} was already erased on {done.erased_at} (erasure record "
                 f"{done.erasure_id}, {where}): nothing more to erase"]
    else:
        lines = [f"erased order {done.order_id}: {len(done.erased)} record(s) lost their content "
                 f"(leaves {leaves})",
                 f"erasure record {done.erasure_id} is {where}, erased on {done.erased_at}: run `ledger "
                 "anchor` to anchor it (until then no bundle of the order can be exported)"]
    if done.key_version == 2:
        lines.append("its order key (version 2, random) is destroyed: the erased records' salts cannot be "
                     "recovered by anyone, the master secret's holder included")
    else:
        lines.append("its order key was version 1 (derived from the master secret): whoever holds the master "
                     "secret and a leaf hash could still test guesses of an erased record (docs/erasure.md)")
    lines.append("the store file was rebuilt (VACUUM) and its WAL emptied" if done.forgotten else
                 f"{done.not_forgotten}: the store's files may still hold erased pages; run `ledger erase` "
                 "again once that is resolved (it erases nothing more, and makes SQLite forget)")
    return "\n".join(lines)


def configure(name: str, sp: argparse.ArgumentParser) -> None:
    sp.epilog = EPILOG
    add_json(sp)
    sp.add_argument("--order", required=True, metavar="ID", help="the order to erase")
    sp.add_argument("--reason", required=True, metavar="TEXT",
                    help="why (e.g. the request it answers; up to 500 characters; it is logged, so never "
                    "personal data)")
    sp.add_argument("--operator", metavar="NAME",
                    help="who erases (up to 200 characters; default: the login name running the command)")
    sp.set_defaults(func=cmd_erase)
