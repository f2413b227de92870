"""One error root for everything `ledger` raises on purpose.

Every error carries a user-facing message; the CLI catches only `LedgerError` and
prints `diagnostics()`. Subclasses also inherit the builtin they stand in for, so
callers that expect ``ValueError`` keep working.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of all deliberate errors raised by this package."""

    #: the command line's exit status for it: 2 (refused, nothing done), or 75 (EX_TEMPFAIL:
    #: a stored transaction is not settled yet; `ledger resume` finishes it)
    exit_code = 2

    def diagnostics(self) -> str:
        """A message for a person: what failed and, where known, what to do."""
        return str(self)


class ConfigError(LedgerError, ValueError):
    """Bad configuration: a missing secret, an unreadable keystore, a bad option."""


class CompileError(LedgerError):
    """The Solidity compiler rejected the sources; the message is solc's own."""


class ChainUnavailable(LedgerError, ConnectionError):
    """No chain answered where one was expected."""


class ContractRevert(LedgerError):
    """A transaction or call reverted; the custom error is decoded against the ABI."""

    def __init__(self, error_name: str, args: dict[str, object], message: str) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = args


class DeploymentError(LedgerError):
    """A deployment manifest does not match the chain."""


class ValidationError(LedgerError, ValueError):
    """One or more input records are invalid.

    ``problems`` lists every problem found, each as a `RecordProblem`.
    """

    def __init__(self, problems: list[RecordProblem]) -> None:
        self.problems = problems
        head = f"{len(problems)} invalid record problem(s); nothing was stored"
        super().__init__(head + "\n" + "\n".join(p.describe() for p in problems))


class RecordProblem:
    """One problem in one input record: where it is and what is wrong."""

    __slots__ = ("source", "line", "record_id", "field", "reason")

    def __init__(
        self,
        source: str,
        line: int | None,
        record_id: str | None,
        field: str | None,
        reason: str,
    ) -> None:
        self.source = source
        self.line = line
        self.record_id = record_id
        self.field = field
        self.reason = reason

    def describe(self) -> str:
        where = self.source + (f":{self.line}" if self.line is not None else "")
        rid = f" record {self.record_id!r}" if self.record_id is not None else ""
        fld = f" field {self.field!r}" if self.field is not None else ""
        return f"{where}:{rid}{fld}: {self.reason}"

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "line": self.line,
            "record_id": self.record_id,
            "field": self.field,
            "reason": self.reason,
        }

    def __repr__(self) -> str:
        return f"RecordProblem({self.describe()!r})"


class ConflictError(LedgerError, ValueError):
    """Input records contradict the log or each other: a record id already in the log arrived
    with different content (possible tampering), or a record's order belongs to another merchant."""

    def __init__(self, problems: list[RecordProblem]) -> None:
        self.problems = problems
        super().__init__(
            f"{len(problems)} conflicting record(s); nothing was stored\n"
            + "\n".join(p.describe() for p in problems)
        )


class ProofError(LedgerError, ValueError):
    """A Merkle proof does not verify. Carries expected and computed hashes."""

    def __init__(self, message: str, expected: bytes | None = None, computed: bytes | None = None):
        detail = message
        if expected is not None and computed is not None:
            detail += f" (expected {expected.hex()}, computed {computed.hex()})"
        super().__init__(detail)
        self.expected = expected
        self.computed = computed


class InclusionProofError(ProofError):
    """An inclusion proof does not lead to the claimed root."""


class ConsistencyProofError(ProofError):
    """A consistency proof does not show that the new tree extends the old one."""


class StoreError(LedgerError):
    """The evidence store is missing, locked or inconsistent."""


class BundleError(LedgerError, ValueError):
    """An evidence bundle is malformed (not a verification failure: those are reported)."""


class CryptoError(LedgerError):
    """Decryption failed: wrong key or tampered ciphertext."""


class AuditError(LedgerError, ValueError):
    """An audit cannot be made as asked (unknown order or merchant, a bad time bound)."""


class CaseError(LedgerError, ValueError):
    """A case file is malformed or cannot be built."""


class TrustRootError(LedgerError, ValueError):
    """A trust file is malformed or unreadable, or a pin given on the command line is unusable
    (not an address, or given beside a trust file)."""
