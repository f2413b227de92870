"""What a replay found, step by step (`ledger.investigate.replay`; shape in docs/replay.md)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ReplayResult", "StepResult"]


@dataclass
class StepResult:
    n: int
    function: str
    time: int
    original_status: str
    original_error: str | None
    replay_status: str  # confirmed | failed | dropped
    replay_error: str | None
    original_events: list[dict[str, Any]]
    replay_events: list[dict[str, Any]]
    evidence: str | None  # what the step cites, or None
    evidence_ok: bool | None  # None when the step cites nothing
    evidence_detail: str
    overridden: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return (
            self.original_status == self.replay_status
            and self.original_error == self.replay_error
            and self.original_events == self.replay_events
        )


@dataclass
class ReplayResult:
    order_id: str
    chain: str
    steps: list[StepResult]
    original_state: str
    replay_state: str
    record_failures: dict[str, list[str]]
    event_log: list[dict[str, Any]]

    @property
    def matches(self) -> bool:
        return self.original_state == self.replay_state and all(s.matches for s in self.steps)

    @property
    def verified(self) -> bool:
        """The evidence every effective step cited is a verified leaf of the anchored head.

        Steps the escrow refused on the original chain changed nothing; what they cited is
        shown but does not count (an attacker's rejected call may cite anything)."""
        return self.first_verification_failure is None and not self.record_failures

    @property
    def ok(self) -> bool:
        """The replay reproduces the original and every piece of evidence verifies."""
        return self.matches and self.verified

    @property
    def first_divergence(self) -> int | None:
        return next((s.n for s in self.steps if not s.matches), None)

    @property
    def first_verification_failure(self) -> int | None:
        return next((s.n for s in self.steps
                     if s.evidence_ok is False and s.original_status == "confirmed"), None)

    @property
    def event_log_digest(self) -> str:
        text = json.dumps(self.event_log, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id, "chain": self.chain, "ok": self.ok,
            "matches": self.matches, "verified": self.verified,
            "original_state": self.original_state, "replay_state": self.replay_state,
            "first_divergence": self.first_divergence,
            "first_verification_failure": self.first_verification_failure,
            "event_log_digest": self.event_log_digest, "record_failures": self.record_failures,
            "steps": [{
                "n": s.n, "function": s.function, "time": s.time, "matches": s.matches,
                "original": {"status": s.original_status, "error": s.original_error,
                             "events": s.original_events},
                "replay": {"status": s.replay_status, "error": s.replay_error, "events": s.replay_events},
                "evidence": s.evidence, "evidence_ok": s.evidence_ok,
                "evidence_detail": s.evidence_detail, "overridden": s.overridden,
            } for s in self.steps],
            "event_log": self.event_log,
        }  # fmt: skip
