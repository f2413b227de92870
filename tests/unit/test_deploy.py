"""The deployment manifest: written as before, read back as a typed model, both directions of
its serialisation, and a malformed manifest refused with a `DeploymentError` naming the file
and the field; and the trust file written beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger._internal import jsondoc
from ledger.chain import rpc
from ledger.chain.rpc import Chain
from ledger.deploy import (
    MANIFEST_FORMAT,
    DeploymentManifest,
    deploy_evidence_log,
    deployed,
    manifest_path,
    read_manifest,
    trust_root,
    trust_root_path,
)
from ledger.errors import DeploymentError
from ledger.evidence.trust import read_trust_root
from tests.document_edits import Malformed, edit


@pytest.fixture(scope="module")
def chain() -> Chain:
    return rpc.embedded()


@pytest.fixture(scope="module")
def data_dir(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ddir = tmp_path_factory.mktemp("data")
    deploy_evidence_log(chain, ddir)
    return ddir


@pytest.fixture
def text(chain: Chain, data_dir: Path) -> str:
    return manifest_path(data_dir, chain.chain_id).read_text()


def test_written_as_before_and_read_as_the_model(chain: Chain, data_dir: Path, text: str) -> None:
    manifest = read_manifest(data_dir, chain.chain_id)
    assert manifest is not None and manifest.format == MANIFEST_FORMAT
    entry = manifest.contracts["EvidenceLog"]
    assert entry.name == "EvidenceLog" and entry.block_number > 0 and entry.tx_hash.startswith("0x")
    as_dict = json.loads(text)
    assert text == json.dumps(as_dict, indent=2, sort_keys=True) + "\n"
    assert as_dict == jsondoc.to_json(manifest)


def test_text_to_model_to_text(text: str) -> None:
    manifest = jsondoc.load(text, DeploymentManifest, source="m", what="a manifest", fmt=MANIFEST_FORMAT,
                            error=DeploymentError)
    assert jsondoc.dumps(manifest, indent=2) == text


def test_model_to_text_to_model(chain: Chain, data_dir: Path) -> None:
    manifest = read_manifest(data_dir, chain.chain_id)
    again = jsondoc.load(jsondoc.dumps(manifest, indent=2), DeploymentManifest, source="m",
                         what="a manifest", fmt=MANIFEST_FORMAT, error=DeploymentError)
    assert again == manifest


def test_a_second_deployment_is_recognised_and_the_manifest_kept(chain: Chain, data_dir: Path,
                                                                    text: str) -> None:
    again = deploy_evidence_log(chain, data_dir)
    assert again.reused
    assert again.to_json() == json.loads(text)["contracts"]["EvidenceLog"]
    assert manifest_path(data_dir, chain.chain_id).read_text() == text
    assert deployed(chain, data_dir, "EvidenceLog").address == again.address


def test_deploying_the_log_writes_its_trust_file(chain: Chain, data_dir: Path) -> None:
    """The auditor's pin: the same contract, deployment and deployer as the manifest."""
    entry = read_manifest(data_dir, chain.chain_id).contracts["EvidenceLog"]  # type: ignore[union-attr]
    path = trust_root_path(data_dir, chain.chain_id)
    root = read_trust_root(path)
    assert root == trust_root(chain.chain_id, deploy_evidence_log(chain, data_dir))
    assert (root.chain_id, root.contract, root.deployment_block, root.deployment_tx, root.deployer) == (
        chain.chain_id, entry.address, entry.block_number, entry.tx_hash, entry.deployer)
    assert not path.with_suffix(".tmp").exists()


def test_no_manifest_is_none(chain: Chain, tmp_path: Path) -> None:
    assert read_manifest(tmp_path, chain.chain_id) is None


def _log(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["contracts"]["EvidenceLog"]
    return entry


MALFORMED: Malformed = {
    "duplicate key": (lambda t: t.replace('"address": ', '"address": "0x0", "address": ', 1),
                      "duplicate key 'address'"),
    "unknown field": (edit(lambda d: _log(d).update(proxy=True)),
                      "unknown field `proxy` - at `$.contracts[...]`"),
    "wrong type": (edit(lambda d: _log(d).update(block_number="5")),
                   "`$.contracts[...].block_number`"),
    "missing field": (edit(lambda d: _log(d).pop("address")), "missing required field `address`"),
    "contracts not an object": (edit(lambda d: d.update(contracts=[])), "`$.contracts`"),
    "wrong format": (edit(lambda d: d.update(format="evidence-escrow/deployment/v0")),
                     "is not a deployment manifest (format must be"),
    "another chain's manifest": (edit(lambda d: d.update(chain_id=d["chain_id"] + 1)),
                                 "is the deployment manifest of chain"),
    "NaN": (lambda t: t.replace('"block_number": ', '"block_number": NaN, "x": ', 1), "NaN is not JSON"),
    "truncated": (lambda t: t[:-10], "is not JSON"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_manifests_are_refused_naming_the_field(name: str, chain: Chain, text: str,
                                                          tmp_path: Path) -> None:
    mutate, expected = MALFORMED[name]
    path = manifest_path(tmp_path, chain.chain_id)
    path.parent.mkdir(parents=True)
    path.write_text(mutate(text))
    with pytest.raises(DeploymentError) as caught:
        read_manifest(tmp_path, chain.chain_id)
    assert str(path) in str(caught.value) and expected in str(caught.value)
    with pytest.raises(DeploymentError):
        deployed(chain, tmp_path, "EvidenceLog")
