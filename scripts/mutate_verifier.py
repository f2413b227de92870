#!/usr/bin/env python3
"""Mutation score of the verification code: does a wrong verifier fail a test?

Mutates, one mutant at a time, the functions that decide whether evidence is true:
  verifier  ledger/evidence/bundle.py (the verification half), bundle_head.py,
            bundle_format.py, trust.py, the strict JSON reader (_internal/jsondoc.py) and
            `ledger verify`'s pin (cli/log.py verify_pin)
  merkle    ledger/_internal/merkle.py root_from_inclusion, verify_inclusion, verify_consistency
  salt      ledger/evidence/master_secret.py OrderKey
  leaf      ledger/evidence/leaf.py committed_object, committed_leaf, personal_commitment_of
The mutations: flip a comparison (== !=, < <=, > >=, in / not in, is / is not), and <-> or,
negate a condition, drop a `not`, swap + -, & |, << >>, add one to a number, change a byte
constant, drop a statement that appends, extends or adds to a list of failures, drop a
raise, delete an `if` (its check), replace a return value. Type annotations, f-strings,
logging calls, asserts and docstrings are left alone.

Each mutant is written into a private copy of the package (ledger/, tests/, pyproject.toml;
contracts/, build/, node_modules/, docs/ and README.md linked), never into the worktree, and the group's
focused tests run against it in a process forked from one that has already imported the
heavy libraries (pytest, web3, py-evm) but not `ledger`. A test failure, an error or a
time-out kills the mutant. Mutants listed in scripts/mutate_verifier_equivalent.txt (one
line each: id, then `  ## ` and why it cannot be told apart) count as equivalent.

usage: python scripts/mutate_verifier.py [--group verifier|merkle|salt|leaf ...] [--jobs 2]
                                         [--list] [--limit N] [--match TEXT] [--json]
Prints a table per module and the surviving mutants; writes bench-results/mutate_verifier.json.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchutil import machine, write_results  # scripts/benchutil.py

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT_FILE = ROOT / "scripts" / "mutate_verifier_equivalent.txt"
ALL = ("*",)


@dataclass(frozen=True)
class Group:
    files: dict[str, tuple[str, ...]]  # path -> qualified names of the functions to mutate (ALL: every one)
    tests: tuple[str, ...]  # fastest first: -x stops at the first failure


BUNDLE_VERIFY = ("RecordVerdict.ok", "Verdict.status", "Verdict.ok", "Verdict.to_json", "verify_records",
                 "_verify_one", "_wrong_salt", "_personal_failures", "_proof_failures", "_selection_failures",
                 "_member", "verify_bundle")
UNIT = "tests/unit/"
GROUPS: dict[str, Group] = {
    "verifier": Group(
        {"ledger/evidence/bundle.py": BUNDLE_VERIFY, "ledger/evidence/bundle_head.py": ALL,
         "ledger/evidence/bundle_format.py": ALL, "ledger/evidence/trust.py": ALL,
         "ledger/_internal/jsondoc.py": ("_pairs", "_constant", "load"),
         "ledger/cli/log.py": ("verify_pin",)},
        tuple(UNIT + t for t in ("evidence/test_trust.py", "cli/test_log.py", "evidence/test_bundle.py",
                                 "evidence/test_bundle_format.py", "evidence/test_bundle_head.py",
                                 "evidence/test_bundle_mutants.py"))),
    "merkle": Group({"ledger/_internal/merkle.py": ("root_from_inclusion", "verify_inclusion",
                                                    "verify_consistency")},
                    (UNIT + "_internal/test_merkle.py", UNIT + "evidence/test_bundle.py")),
    "salt": Group({"ledger/evidence/master_secret.py": ("OrderKey.__init__", "OrderKey._expand",
                                                        "OrderKey.record_salt", "OrderKey.personal_salt",
                                                        "OrderKey.salts")},
                  (UNIT + "evidence/test_master_secret.py", UNIT + "evidence/test_bundle.py")),
    "leaf": Group({"ledger/evidence/leaf.py": ("committed_object", "committed_leaf",
                                               "personal_commitment_of")},
                  (UNIT + "evidence/test_leaf.py", UNIT + "evidence/test_bundle.py")),
}


# --------------------------------------------------------------------------- mutants


@dataclass(frozen=True)
class Mutant:
    path: str
    qualname: str
    site: int  # position of the node in `_sites` order within the function
    kind: str
    before: str
    after: str
    line: int
    n: int = 0  # among mutants of the same function with the same kind, before and after

    @property
    def id(self) -> str:
        """Stable across unrelated edits (no line number)."""
        return f"{self.path}::{self.qualname}::{self.kind}::{self.before} -> {self.after}::{self.n}"


_COMPARE = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
            ast.GtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
          ast.RShift: ast.LShift, ast.LShift: ast.RShift}
_COLLECTING = {"append", "extend", "add", "update"}


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef]]:
    """Every function with its qualified name (Class.method)."""
    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.FunctionDef]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef):
                yield prefix + child.name, child
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, prefix + child.name + ".")
    yield from visit(tree, "")


def _left_alone(node: ast.AST) -> bool:
    """A `_logger.<level>(...)` statement (what it says is not what the code decides), or an
    assert (it narrows a type the document model already guarantees)."""
    if isinstance(node, ast.Assert):
        return True
    call = node.value if isinstance(node, ast.Expr) else None
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name) and call.func.value.id == "_logger")


def _sites(func: ast.FunctionDef) -> list[tuple[ast.AST, ast.AST, str, int | None]]:
    """(node, parent, field, index in the field's list) for every node of the function body,
    in a fixed order, without annotations, f-strings, logging, asserts or the docstring."""
    out: list[tuple[ast.AST, ast.AST, str, int | None]] = []

    def visit(node: ast.AST) -> None:
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "decorator_list") or isinstance(node, ast.JoinedStr):
                continue
            items = value if isinstance(value, list) else [value]
            for i, child in enumerate(items):
                if isinstance(child, ast.AST) and not _left_alone(child):
                    out.append((child, node, name, i if isinstance(value, list) else None))
                    visit(child)

    body = func.body
    start = 1 if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else 0
    for i, stmt in enumerate(body[start:], start):
        if not _left_alone(stmt):
            out.append((stmt, func, "body", i))
            visit(stmt)
    return out


def _snippet(node: ast.AST) -> str:
    text = ast.unparse(node).splitlines()[0]
    return text if len(text) <= 90 else text[:87] + "..."


def _constraint_sites(tree: ast.Module) -> list[tuple[ast.AST, ast.AST, str, int | None]]:
    """Every ``Annotated[T, Meta(...)]`` of the module (a document field's constraint: a hex
    pattern, a range, a minimum length), wherever it is written."""
    out: list[tuple[ast.AST, ast.AST, str, int | None]] = []
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if (isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name)
                    and value.value.id == "Annotated"):
                out.append((value, parent, name, None))
    return out


#: qualified name of the pseudo-function holding a module's `_constraint_sites`
CONSTRAINTS = "<constraints>"


def _units(tree: ast.Module) -> Iterator[tuple[str, list[tuple[ast.AST, ast.AST, str, int | None]], bool]]:
    """(qualified name, sites, whether it returns a list) of every function, and the module's
    constraints."""
    for qualname, func in _functions(tree):
        returns_list = func.returns is not None and "list[" in ast.unparse(func.returns)
        yield qualname, _sites(func), returns_list
    yield CONSTRAINTS, _constraint_sites(tree), False


def _variants(node: ast.AST, returns_list: bool = False) -> Iterator[tuple[str, Any]]:
    """(kind, replacement) for each way to mutate `node`; a replacement is a new node, or a
    callable that mutates a copy in place."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Annotated":
        yield "drop constraint", node.slice.elts[0]  # type: ignore[attr-defined]
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _COMPARE:
                yield "compare", _set_op(i, _COMPARE[type(op)]())
    elif isinstance(node, ast.BoolOp):
        yield "and/or", ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP:
        yield "operator", ast.BinOp(node.left, _BINOP[type(node.op)](), node.right)
        if isinstance(node.op, ast.Add):  # a sum of failure lists: one of them left out
            yield "drop operand", node.left
            yield "drop operand", node.right
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "drop not", node.operand
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        yield "number", ast.Constant(node.value + 1)
    elif isinstance(node, ast.Constant) and type(node.value) is bytes and node.value:
        yield "bytes", ast.Constant(node.value[:-1] + bytes(((node.value[-1] + 1) % 256,)))
    yield from _statement_variants(node, returns_list)


def _statement_variants(node: ast.AST, returns_list: bool) -> Iterator[tuple[str, Any]]:
    if isinstance(node, ast.If | ast.While):
        yield "negate", type(node)(ast.UnaryOp(ast.Not(), node.test), node.body, node.orelse)
    if isinstance(node, ast.If):
        yield "delete check", node.orelse or [ast.Pass()]
    elif isinstance(node, ast.IfExp):
        yield "negate", ast.IfExp(ast.UnaryOp(ast.Not(), node.test), node.body, node.orelse)
    elif isinstance(node, ast.Raise):
        yield "drop raise", ast.Pass()
    elif isinstance(node, ast.AugAssign) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute) and node.value.func.attr in _COLLECTING):
        yield "drop statement", ast.Pass()
    elif isinstance(node, ast.Return) and node.value is not None:
        value = node.value
        if isinstance(value, ast.Constant) and type(value.value) is bool:
            yield "return", ast.Return(ast.Constant(not value.value))
        elif isinstance(value, ast.List) and not value.elts:
            yield "return", ast.Return(ast.List([ast.Constant("mutant")], ast.Load()))
        elif not (isinstance(value, ast.Constant) and value.value is None):
            yield "return", ast.Return(ast.Constant(None))
        if returns_list and not (isinstance(value, ast.List) and not value.elts):
            yield "return", ast.Return(ast.List([], ast.Load()))  # the check finds nothing


def _set_op(i: int, op: ast.cmpop) -> Any:
    def apply(node: ast.Compare) -> ast.Compare:
        new = copy.copy(node)
        new.ops = [*node.ops[:i], op, *node.ops[i + 1:]]
        return new
    return apply


def _replacement(node: ast.AST, variant: Any) -> Any:
    return variant(node) if callable(variant) else variant


def mutants_of(path: str, names: tuple[str, ...]) -> list[Mutant]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    out: list[Mutant] = []
    seen: Counter[tuple[str, str, str, str]] = Counter()
    for qualname, sites, returns_list in _units(tree):
        if names != ALL and qualname not in names:
            continue
        for site, (node, _, _, _) in enumerate(sites):
            for kind, variant in _variants(node, returns_list):
                after = _after(_replacement(node, variant))
                key = (qualname, kind, _snippet(node), after)
                out.append(Mutant(path, qualname, site, kind, key[2], after, getattr(node, "lineno", 0),
                                  seen[key]))
                seen[key] += 1
    return out


def _after(new: Any) -> str:
    return "(deleted)" if isinstance(new, list | ast.Pass) else _snippet(new)


def mutated_source(m: Mutant) -> str:
    """The module's source with mutant `m` applied (comments and layout are not kept)."""
    tree = ast.parse((ROOT / m.path).read_text(encoding="utf-8"))
    sites, returns_list = next((s, r) for q, s, r in _units(tree) if q == m.qualname)
    node, parent, name, index = sites[m.site]
    new = next(_replacement(node, v) for k, v in _variants(node, returns_list)
               if k == m.kind and _after(_replacement(node, v)) == m.after)
    if index is None:
        setattr(parent, name, new)
    else:
        items = getattr(parent, name)
        items[index:index + 1] = new if isinstance(new, list) else [new]
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


# --------------------------------------------------------------------------- running


@dataclass
class Slot:
    """A private copy of the package to run one mutant at a time in."""

    dir: Path
    pid: int | None = None
    mutant: Mutant | None = None
    started: float = 0.0
    deadline: float = 0.0


def make_slot(base: Path, n: int) -> Slot:
    d = base / f"slot{n}"
    d.mkdir()
    for name in ("ledger", "tests"):
        shutil.copytree(ROOT / name, d / name, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
    shutil.copy(ROOT / "pyproject.toml", d / "pyproject.toml")
    for name in ("contracts", "build", "node_modules", "docs", "README.md"):
        (d / name).symlink_to((ROOT / name).resolve())
    return Slot(d)


def fork_tests(slot: Slot, tests: tuple[str, ...], log: Path) -> int:
    """Run `tests` in `slot` in a child process; its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: only ever leaves through os._exit
        import pytest

        os.setpgid(0, 0)
        sys.dont_write_bytecode = True  # a stale .pyc of the previous mutant must never run
        os.environ["LEDGER_TEST_CHAINS"] = "embedded"
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir(slot.dir)
        sys.path.insert(0, str(slot.dir))
        code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--no-header",
                            "-o", "addopts=", *tests])
        os._exit(int(code))
    except BaseException:  # noqa: BLE001 - anything else is a broken mutant
        os._exit(99)


def preimport() -> None:
    """What every child would import: loaded once here, so each fork starts warm."""
    import eth_tester  # noqa: F401
    import hypothesis  # noqa: F401
    import msgspec  # noqa: F401
    import pytest  # noqa: F401
    import rfc8785  # noqa: F401
    import web3  # noqa: F401
    from eth_tester import PyEVMBackend  # noqa: F401


@dataclass
class Result:
    mutant: Mutant
    outcome: str  # killed | survived | timeout | equivalent
    seconds: float
    detail: str = ""


@dataclass
class Runner:
    slots: list[Slot]
    timeout: float
    logs: Path
    results: list[Result] = field(default_factory=list)

    def start(self, slot: Slot, m: Mutant, tests: tuple[str, ...]) -> None:
        (slot.dir / m.path).write_text(mutated_source(m), encoding="utf-8")
        slot.mutant, slot.started, slot.deadline = m, time.monotonic(), time.monotonic() + self.timeout
        slot.pid = fork_tests(slot, tests, self.logs / f"{slot.dir.name}.log")

    def reap(self, slot: Slot, block: bool) -> bool:
        """Collect the slot's child if it has ended (or overran); True when the slot is free."""
        assert slot.pid is not None and slot.mutant is not None
        pid, status = os.waitpid(slot.pid, 0 if block else os.WNOHANG)
        outcome = None
        if pid:
            outcome = "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
        elif time.monotonic() > slot.deadline:
            os.killpg(slot.pid, signal.SIGKILL)
            os.waitpid(slot.pid, 0)
            outcome = "timeout"
        if outcome is None:
            return False
        detail = _first_failure(self.logs / f"{slot.dir.name}.log") if outcome == "killed" else ""
        self.results.append(Result(slot.mutant, outcome, time.monotonic() - slot.started, detail))
        shutil.copy(ROOT / slot.mutant.path, slot.dir / slot.mutant.path)
        slot.pid = slot.mutant = None
        return True

    def run(self, work: list[tuple[Mutant, tuple[str, ...]]], progress: Any) -> None:
        pending = list(work)
        while pending or any(s.pid for s in self.slots):
            for slot in self.slots:
                if slot.pid is not None and self.reap(slot, block=False):
                    progress(self.results[-1])
                if slot.pid is None and pending:
                    self.start(slot, *pending.pop(0))
            time.sleep(0.05)


def _first_failure(log: Path) -> str:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0][:160]
    return ""


def baseline(slot: Slot, tests: tuple[str, ...], logs: Path) -> float:
    """The group's tests pass on the unmutated copy; how long they take."""
    t = time.monotonic()
    pid = fork_tests(slot, tests, logs / "baseline.log")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        tail = "\n".join((logs / "baseline.log").read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"the tests fail without a mutant:\n{tail}")
    return time.monotonic() - t


# --------------------------------------------------------------------------- report


def equivalents() -> dict[str, str]:
    """id -> why the mutant cannot be told apart from the original."""
    out = {}
    for line in EQUIVALENT_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            mid, _, why = line.partition("  ## ")
            out[mid.strip()] = why.strip()
    return out


def summarise(results: list[Result], groups: dict[str, Group]) -> dict[str, Any]:
    by_module: dict[str, Counter[str]] = {}
    for r in results:
        outcome = "killed" if r.outcome == "timeout" else r.outcome
        by_module.setdefault(r.mutant.path, Counter())[outcome] += 1
    out: dict[str, Any] = {}
    for name, group in groups.items():
        modules = {p: dict(by_module.get(p, Counter())) for p in group.files}
        total = Counter[str]()
        for counts in modules.values():
            total.update(counts)
        out[name] = {"modules": {p: _score(c) for p, c in modules.items()}, **_score(dict(total))}
    return out


def _score(c: dict[str, int]) -> dict[str, Any]:
    killed, survived, equivalent = c.get("killed", 0), c.get("survived", 0), c.get("equivalent", 0)
    counted = killed + survived
    return {"mutants": counted + equivalent, "killed": killed, "survived": survived, "equivalent": equivalent,
            "score": round(100 * killed / counted, 1) if counted else None}


def _percent(s: dict[str, Any]) -> str:
    return "-" if s["score"] is None else f"{s['score']}%"


def print_table(summary: dict[str, Any], results: list[Result], console: Console) -> None:
    table = Table(title="mutation score (killed / (mutants - equivalent))")
    for col in ("group", "module", "mutants", "killed", "survived", "equivalent", "score"):
        table.add_column(col, justify="left" if col in ("group", "module") else "right", no_wrap=True)
    for name, g in summary.items():
        for path, s in g["modules"].items():
            table.add_row(name, path.removeprefix("ledger/"),
                          *(str(s[k]) for k in ("mutants", "killed", "survived", "equivalent")), _percent(s))
        table.add_row(f"[bold]{name}[/bold]", "[bold]all[/bold]",
                      *(str(g[k]) for k in ("mutants", "killed", "survived", "equivalent")),
                      f"[bold]{_percent(g)}[/bold]", end_section=True)
    console.print(table)
    survivors = [r for r in results if r.outcome == "survived"]
    console.print(f"surviving mutants: {len(survivors)}")
    for r in survivors:
        console.print(f"  {r.mutant.path}:{r.mutant.line} {r.mutant.id}", soft_wrap=True, markup=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", action="append", choices=sorted(GROUPS), help="default: all")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    ap.add_argument("--limit", type=int, help="only the first N mutants of each group (a smoke run)")
    ap.add_argument("--match", metavar="TEXT", help="only the mutants whose id contains TEXT (triage)")
    ap.add_argument("--out", default=str(ROOT / "bench-results" / "mutate_verifier.json"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    console = Console(stderr=args.json, highlight=False, width=max(100, shutil.get_terminal_size().columns))
    groups = {g: GROUPS[g] for g in (args.group or GROUPS)}
    known = equivalents()
    work: list[tuple[Mutant, tuple[str, ...]]] = []
    for group in groups.values():
        ms = [m for path, names in group.files.items() for m in mutants_of(path, names)]
        work += [(m, group.tests) for m in ms[: args.limit] if args.match is None or args.match in m.id]
    if args.list:
        for m, _ in work:
            console.print(f"{m.path}:{m.line} {m.id}", soft_wrap=True, markup=False)
        return 0
    return run_all(args, console, groups, known, work)


def run_all(args: argparse.Namespace, console: Console, groups: dict[str, Group], known: dict[str, str],
            work: list[tuple[Mutant, tuple[str, ...]]]) -> int:
    t0 = time.monotonic()
    whole = not (args.limit or args.group or args.match)
    stale = sorted(set(known) - {m.id for m, _ in work}) if whole else []
    equivalent = [Result(m, "equivalent", 0.0, known[m.id]) for m, _ in work if m.id in known]
    work = [(m, tests) for m, tests in work if m.id not in known]
    preimport()
    with tempfile.TemporaryDirectory(prefix="mutate-verifier-") as tmp:
        base = Path(tmp)
        logs = base / "logs"
        logs.mkdir()
        slots = [make_slot(base, i) for i in range(max(1, args.jobs))]
        longest = max(baseline(slots[0], g.tests, logs) for g in groups.values())
        console.print(f"{len(work)} mutants to run ({len(equivalent)} known equivalent), {len(slots)} at a "
                      f"time; the slowest group's tests take {longest:.1f}s unmutated")
        runner = Runner(slots, timeout=max(60.0, 4 * longest), logs=logs)
        done = Counter[str]()

        def progress(r: Result) -> None:
            done[r.outcome] += 1
            if sum(done.values()) % 25 == 0:
                console.print(f"  {sum(done.values())}/{len(work)}: {dict(done)}")

        runner.run(work, progress)
    results = runner.results + equivalent
    summary = summarise(results, groups)
    print_table(summary, results, console)
    if stale:
        console.print(f"[yellow]{len(stale)} entries of {EQUIVALENT_FILE.name} match no mutant:[/yellow]")
        for mid in stale:
            console.print(f"  {mid}", soft_wrap=True, markup=False)
    payload = {"machine": machine(), "seconds": round(time.monotonic() - t0, 1), "groups": summary,
               "survivors": [{"line": r.mutant.line, **asdict(r.mutant), "id": r.mutant.id}
                             for r in results if r.outcome == "survived"],
               "equivalent": [{"id": r.mutant.id, "why": r.detail} for r in equivalent],
               "timeouts": [r.mutant.id for r in results if r.outcome == "timeout"],
               "killed_by": {r.mutant.id: r.detail for r in results if r.outcome == "killed"}}
    write_results(payload, args.out, console, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
