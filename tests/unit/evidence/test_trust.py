"""The trust file: both directions of its serialisation, every malformed file refused with a
`TrustRootError` naming the file and the field, and what a pin pins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.errors import TrustRootError
from ledger.evidence.trust import (
    TRUST_FORMAT,
    Pin,
    TrustRoot,
    dumps_trust_root,
    load_trust_root,
    read_trust_root,
)
from tests.document_edits import Malformed, edit

ROOT = TrustRoot(format=TRUST_FORMAT, chain_id=31337, contract="0x5FbDB2315678afecb367f032d93F642f64180aa3",
                 deployment_block=1, deployment_tx="0x" + "ab" * 32,
                 deployer="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
TEXT = dumps_trust_root(ROOT)


def test_model_to_text_to_model_and_back() -> None:
    assert load_trust_root(TEXT) == ROOT
    assert dumps_trust_root(load_trust_root(TEXT)) == TEXT
    assert TEXT == json.dumps(json.loads(TEXT), indent=2, sort_keys=True) + "\n"


def test_the_deployer_is_optional() -> None:
    bare = TrustRoot(format=TRUST_FORMAT, chain_id=1, contract=ROOT.contract, deployment_block=9,
                     deployment_tx=ROOT.deployment_tx)
    text = dumps_trust_root(bare)
    assert "deployer" not in json.loads(text) and load_trust_root(text) == bare


MALFORMED: Malformed = {
    "duplicate key": (lambda t: t.replace('"chain_id": ', '"chain_id": 1, "chain_id": ', 1),
                      "duplicate key 'chain_id'"),
    "unknown field": (edit(lambda d: d.update(note="trust me")), "unknown field `note`"),
    "wrong format": (edit(lambda d: d.update(format="evidence-escrow/bundle/v1")),
                     "is not a trust file (format must be 'evidence-escrow/trust/v1')"),
    "chain id as a string": (edit(lambda d: d.update(chain_id="31337")), "`$.chain_id`"),
    "contract in lower case": (edit(lambda d: d.update(contract=d["contract"].lower())),
                               "contract 0x5fbdb2315678afecb367f032d93f642f64180aa3 is not in its EIP-55"),
    "deployer in lower case": (edit(lambda d: d.update(deployer=d["deployer"].lower())),
                               "deployer 0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266 is not in its EIP-55"),
    "deployment tx missing": (edit(lambda d: d.pop("deployment_tx")),
                              "missing required field `deployment_tx`"),
    "deployment tx without 0x": (edit(lambda d: d.update(deployment_tx="ab" * 32)), "`$.deployment_tx`"),
    "deployment block negative": (edit(lambda d: d.update(deployment_block=-1)), "`$.deployment_block`"),
    "a byte order mark": (lambda t: "\ufeff" + t, "Unexpected UTF-8 BOM"),
    "NaN": (lambda t: t.replace('"deployment_block": 1', '"deployment_block": NaN', 1), "NaN is not JSON"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_trust_files_are_refused_naming_the_field(name: str, tmp_path: Path) -> None:
    mutate, expected = MALFORMED[name]
    path = tmp_path / "trust.json"
    path.write_text(mutate(TEXT), encoding="utf-8")
    with pytest.raises(TrustRootError) as caught:
        read_trust_root(path)
    assert str(caught.value).startswith(str(path)) and expected in str(caught.value)


def test_a_missing_trust_file_is_a_trust_root_error(tmp_path: Path) -> None:
    with pytest.raises(TrustRootError, match="cannot read the trust file"):
        read_trust_root(tmp_path / "none.json")


def test_a_pin_is_complete_only_with_both_chain_and_contract() -> None:
    assert Pin.of(ROOT) == Pin(31337, ROOT.contract, ROOT) and Pin.of(ROOT).complete
    assert Pin(31337, ROOT.contract).complete
    assert not Pin(31337).complete and not Pin(None, ROOT.contract).complete and not Pin().complete
