"""`ledger deploy`'s work on the embedded chain: roles separated at deployment, a re-run that
changes nothing or refuses, per-contract redeploys, a moved log, the manifest's configuration
and history, and `--check` finding drift made outside the tool.

Attacks tried: a second run quietly ignoring a new treasury (the operator believes it set);
a redeploy of one contract that also moves the evidence log; an anchorer role granted behind
the operator's back; a deployment that fails half-way without saying what it already spent;
operations run against a contract whose ABI the local build no longer matches.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from ledger._internal import solc
from ledger.chain import rpc
from ledger.chain.rpc import Chain
from ledger.deploy import deployed, manifest_path, read_manifest, trust_root_path
from ledger.deploy.manifest import retired_trust_path
from ledger.deploy.plan import DeployPlan
from ledger.deploy.runner import check_deployment, run_plan
from ledger.errors import ConfigError, DeploymentError


@pytest.fixture
def chain() -> Chain:
    return rpc.embedded()


def _addr(chain: Chain, n: int) -> str:
    return chain.accounts[n].address


def _plan(chain: Chain, **kw: object) -> DeployPlan:
    base: dict[str, object] = {"panel": [_addr(chain, i) for i in (7, 8, 9)]}
    base.update(kw)
    return DeployPlan(**base)  # type: ignore[arg-type]


def test_roles_are_separated_at_deployment_and_recorded(chain: Chain, tmp_path: Path) -> None:
    me = chain.default_account.address
    result = run_plan(chain, tmp_path, _plan(chain, anchorer=_addr(chain, 2), log_admin=_addr(chain, 3),
                                             admin=_addr(chain, 4), treasury=_addr(chain, 5)))
    config = result.configuration
    assert config is not None
    assert config.roles["EvidenceLog"] == {"admin": sorted([me, _addr(chain, 3)]),
                                           "anchorer": [_addr(chain, 2)]}
    assert config.roles["FulfillmentEscrow"]["admin"] == sorted([me, _addr(chain, 4)])  # until it accepts
    assert config.treasury == _addr(chain, 5) and config.panel is not None and config.panel.threshold == 2
    assert config.terms is not None and config.terms_id == 1
    assert config.terms["deposit_ratio_bps"] == 2000
    assert result.gas_used > 0 and result.cost_wei > 0
    assert len(result.tx_hashes) == 5  # 2 anchorer + 3 admin grants
    manifest = read_manifest(tmp_path, chain.chain_id)
    assert manifest is not None and manifest.configuration == config
    assert [e.event for e in manifest.history] == ["deployed"] * 5 + ["configured"]
    assert all(e.code_sha256 and e.abi_sha256 and e.gas_used for e in manifest.contracts.values())
    assert check_deployment(chain, tmp_path) == []


def test_a_re_run_changes_nothing_or_refuses_naming_what_differs(chain: Chain, tmp_path: Path) -> None:
    run_plan(chain, tmp_path, _plan(chain))
    block = chain.w3.eth.block_number
    again = run_plan(chain, tmp_path, _plan(chain))
    assert all(d.reused for d in again.deployments) and again.gas_used == 0
    with pytest.raises(DeploymentError) as err:
        run_plan(chain, tmp_path, _plan(chain, treasury=_addr(chain, 5), threshold=3))
    text = str(err.value)
    assert "nothing was sent" in text and f"`ledger admin treasury {_addr(chain, 5)}`" in text
    assert "threshold: the deployment has 2, this run asks for 3" in text
    assert chain.w3.eth.block_number == block  # neither the re-run nor the refused run sent anything


def test_one_contract_is_redeployed_alone_and_the_log_moves_only_when_asked(chain: Chain,
                                                                            tmp_path: Path) -> None:
    first = {d.name: d.address for d in run_plan(chain, tmp_path, _plan(chain)).deployments}
    again = run_plan(chain, tmp_path, _plan(chain, redeploy=["EscrowBatcher"]))
    now = {d.name: d.address for d in again.deployments}
    assert now["EscrowBatcher"] != first["EscrowBatcher"]
    assert {n: a for n, a in now.items() if n != "EscrowBatcher"} == \
        {n: a for n, a in first.items() if n != "EscrowBatcher"}
    manifest = read_manifest(tmp_path, chain.chain_id)
    assert manifest is not None and [r.address for r in manifest.retired] == [first["EscrowBatcher"]]
    assert any(e.event == "redeployed" and e.contract == "EscrowBatcher" for e in manifest.history)

    old_trust = trust_root_path(tmp_path, chain.chain_id).read_text()
    moved = run_plan(chain, tmp_path, _plan(chain, redeploy=["EvidenceLog"], move_log=True))
    log = moved.deployments[0]
    assert log.name == "EvidenceLog" and not log.reused and log.address != first["EvidenceLog"]
    assert retired_trust_path(tmp_path, chain.chain_id, first["EvidenceLog"]).read_text() == old_trust
    assert json.loads(trust_root_path(tmp_path, chain.chain_id).read_text())["contract"] == log.address
    assert check_deployment(chain, tmp_path) == []


def test_check_reports_roles_and_settings_changed_outside_the_tool(chain: Chain, tmp_path: Path) -> None:
    run_plan(chain, tmp_path, _plan(chain))
    log = deployed(chain, tmp_path, "EvidenceLog")
    intruder = _addr(chain, 6)
    chain.transact(log.functions.grantRole(keccak(text="ANCHORER_ROLE"), intruder))
    escrow = deployed(chain, tmp_path, "FulfillmentEscrow")
    chain.transact(escrow.functions.setTreasury(intruder))
    drift = check_deployment(chain, tmp_path)
    assert f"EvidenceLog anchorer: {intruder} holds the role on chain, the manifest does not list it" in drift
    assert any(d.startswith("treasury: the manifest says") and d.endswith(intruder) for d in drift), drift
    assert len(drift) == 2


def test_operations_match_the_deployed_code_and_abi_not_the_local_build(chain: Chain, tmp_path: Path) -> None:
    run_plan(chain, tmp_path, _plan(chain, log_only=True))
    path = manifest_path(tmp_path, chain.chain_id)
    doc = json.loads(path.read_text())
    # A source edit that changes no ABI (a comment, another optimisation): the build's hash
    # moves, the deployed code is what it was, and operations go on.
    doc["contracts"]["EvidenceLog"]["runtime_sha256"] = "00" * 32
    path.write_text(json.dumps(doc))
    assert deployed(chain, tmp_path, "EvidenceLog").address == doc["contracts"]["EvidenceLog"]["address"]
    doc["contracts"]["EvidenceLog"]["abi_sha256"] = "11" * 32
    path.write_text(json.dumps(doc))
    with pytest.raises(DeploymentError, match="the local build's ABI of EvidenceLog differs"):
        deployed(chain, tmp_path, "EvidenceLog")
    doc["contracts"]["EvidenceLog"]["abi_sha256"] = None
    doc["contracts"]["EvidenceLog"]["code_sha256"] = "22" * 32
    path.write_text(json.dumps(doc))
    with pytest.raises(DeploymentError, match="other code than was deployed there"):
        deployed(chain, tmp_path, "EvidenceLog")


def test_a_source_edit_that_keeps_the_abi_does_not_stop_operations(chain: Chain, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-line comment changes the build's metadata hash, so its runtime code differs from
    what is deployed: operations still find the contract (the chain holds the code the manifest
    recorded, and the ABI is the same), and `--check` has nothing to report."""
    run_plan(chain, tmp_path, _plan(chain, log_only=True))
    arts = dict(solc.artifacts())
    art = arts["EvidenceLog"]
    edited = dataclasses.replace(art, runtime_bytecode=art.runtime_bytecode[:-1] + b"\x00")
    code = bytes(chain.w3.eth.get_code(deployed(chain, tmp_path, "EvidenceLog").address))
    assert art.matches_deployed(code) and not edited.matches_deployed(code)
    monkeypatch.setattr(solc, "artifacts", lambda: {**arts, "EvidenceLog": edited})
    assert deployed(chain, tmp_path, "EvidenceLog")
    assert check_deployment(chain, tmp_path) == []


def test_a_v1_manifest_is_read_and_upgraded_by_the_next_deploy(chain: Chain, tmp_path: Path) -> None:
    run_plan(chain, tmp_path, _plan(chain, log_only=True))
    path = manifest_path(tmp_path, chain.chain_id)
    doc = json.loads(path.read_text())
    v1 = {"format": "evidence-escrow/deployment/v1", "chain_id": doc["chain_id"], "contracts": {
        n: {k: v for k, v in e.items() if k not in ("code_sha256", "abi_sha256", "gas_used", "cost_wei")}
        for n, e in doc["contracts"].items()}}
    path.write_text(json.dumps(v1))
    manifest = read_manifest(tmp_path, chain.chain_id)
    assert manifest is not None and manifest.configuration is None and manifest.history == []
    assert "records no configuration" in check_deployment(chain, tmp_path)[0]
    assert deployed(chain, tmp_path, "EvidenceLog")  # matched against the build, as v1 did
    run_plan(chain, tmp_path, _plan(chain, log_only=True))
    assert json.loads(path.read_text())["format"] == "evidence-escrow/deployment/v2"
    assert check_deployment(chain, tmp_path) == []


def test_a_failure_after_the_first_transaction_names_what_was_deployed(
        chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = chain.deploy_with_receipt

    def broken(name: str, *args: object, **kw: object) -> object:
        if name == "FulfillmentEscrow":
            raise DeploymentError("the node refused the escrow")
        return real(name, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(chain, "deploy_with_receipt", broken)
    with pytest.raises(DeploymentError) as err:
        run_plan(chain, tmp_path, _plan(chain))
    text = str(err.value)
    assert text.startswith("the node refused the escrow\nAlready deployed by this run, and recorded in the "
                           "manifest")
    for name in ("EvidenceLog", "EscrowTermsRules", "EscrowBatcher", "PanelArbitrator"):
        assert name in text
    monkeypatch.undo()
    again = run_plan(chain, tmp_path, _plan(chain))  # finishes the rest, reusing what is there
    assert [d.name for d in again.deployments if not d.reused] == ["FulfillmentEscrow"]


def test_a_deployer_without_ether_is_refused_before_anything_is_sent(chain: Chain, tmp_path: Path) -> None:
    chain.accounts.insert(0, Account.create())  # the deployer: a fresh key, never funded
    block = chain.w3.eth.block_number
    with pytest.raises(DeploymentError, match="has no ether on chain"):
        run_plan(chain, tmp_path, _plan(chain, log_only=True))
    assert chain.w3.eth.block_number == block and read_manifest(tmp_path, chain.chain_id) is None


def test_deploying_the_panel_without_members_is_refused_before_anything_is_sent(chain: Chain,
                                                                                tmp_path: Path) -> None:
    """A re-run that deploys the PanelArbitrator (the escrow's first deployment after a log-only
    one, or one whose arbitrator is gone) needs its members: refused before the first
    transaction, not half-way with a revert."""
    run_plan(chain, tmp_path, _plan(chain, log_only=True))
    block = chain.w3.eth.block_number
    with pytest.raises(ConfigError, match="this run deploys the PanelArbitrator: it needs --panel"):
        run_plan(chain, tmp_path, DeployPlan())
    assert chain.w3.eth.block_number == block


def test_check_finds_an_impostor_with_the_same_code(chain: Chain, tmp_path: Path) -> None:
    """Someone deploys the very same EvidenceLog (anchorer: themselves) and edits the manifest
    to name it: the code matches, so only the deployment transaction tells them apart."""
    run_plan(chain, tmp_path / "ours", _plan(chain, log_only=True))
    theirs = run_plan(chain, tmp_path / "theirs", _plan(chain, log_only=True)).deployments[0]
    path = manifest_path(tmp_path / "ours", chain.chain_id)
    doc = json.loads(path.read_text())
    doc["contracts"]["EvidenceLog"]["address"] = theirs.address
    path.write_text(json.dumps(doc))
    assert deployed(chain, tmp_path / "ours", "EvidenceLog").address == theirs.address  # same code
    assert check_deployment(chain, tmp_path / "ours") == [
        f"EvidenceLog at {theirs.address}: the manifest's deployment transaction "
        f"{doc['contracts']['EvidenceLog']['tx_hash']} did not create it in block "
        f"{doc['contracts']['EvidenceLog']['block_number']}"]
