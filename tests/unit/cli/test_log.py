"""`ledger verify`'s options: what they pin, how they clash, and one exit status per verdict."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ledger.cli.log import VERIFY_EXIT, verify_pin
from ledger.cli.main import build_parser
from ledger.errors import TrustRootError
from ledger.evidence.bundle import STATUSES
from ledger.evidence.trust import TRUST_FORMAT, Pin, TrustRoot, dumps_trust_root

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _args(*argv: str) -> argparse.Namespace:
    return build_parser("verify").parse_args(["verify", "bundle.json", *argv])


def test_no_pin_is_none() -> None:
    assert verify_pin(_args()) is None


def test_a_trust_file_pins_chain_contract_and_deployment(tmp_path: Path) -> None:
    root = TrustRoot(format=TRUST_FORMAT, chain_id=31337, contract=CONTRACT, deployment_block=1,
                     deployment_tx="0x" + "ab" * 32)
    path = tmp_path / "trust.json"
    path.write_text(dumps_trust_root(root))
    assert verify_pin(_args("--trust", str(path))) == Pin(31337, CONTRACT, root)


def test_flags_pin_what_they_name_in_checksum_case() -> None:
    assert verify_pin(_args("--expect-contract", CONTRACT.lower())) == Pin(None, CONTRACT)
    assert verify_pin(_args("--expect-chain-id", "5", "--expect-contract", CONTRACT)) == Pin(5, CONTRACT)
    assert verify_pin(_args("--expect-chain-id", "5")) == Pin(5, None)


def test_a_pin_that_is_not_an_address_or_pinned_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrustRootError, match="'0x1234' is not an address"):
        verify_pin(_args("--expect-contract", "0x1234"))
    with pytest.raises(TrustRootError, match="not both"):
        verify_pin(_args("--trust", str(tmp_path / "t.json"), "--expect-contract", CONTRACT))


def test_one_exit_status_per_verdict_and_2_is_left_to_errors() -> None:
    assert set(VERIFY_EXIT) == set(STATUSES)
    assert VERIFY_EXIT == {"verified": 0, "not_verified": 1, "head_unchecked": 3, "unpinned": 3}


def test_the_help_documents_the_exit_statuses() -> None:
    sub = next(a for a in build_parser("verify")._actions if a.dest == "command")  # noqa: SLF001
    text = " ".join(sub.choices["verify"].format_help().split())  # type: ignore[index]
    for phrase in ("0 verified", "1 not verified", "2 unusable input", "3 the head was not checked",
                   "unpinned", "--offline", "--trust FILE", "--expect-chain-id N",
                   "--expect-contract ADDRESS"):
        assert phrase in text
