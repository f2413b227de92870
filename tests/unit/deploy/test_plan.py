"""A deployment request is checked in full before the first transaction; a re-run that asks
for another configuration is refused with the admin command that changes it.

Attacks tried: a typo'd zero address given a role or the treasury; a panel naming one member
twice (two votes) or more members than the arbitrator allows; a threshold one member can
reach alone; an admin named beside a timelock (which would bypass it); moving the evidence
log without saying so; redeploying the arbitrator under a live escrow that names the old one.
"""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address as cs

from ledger.deploy.manifest import Configuration, DeploymentManifest, ManifestEntry, PanelConfig
from ledger.deploy.plan import DeployPlan, check_plan, conflicts, redeploy_set
from ledger.errors import ConfigError, DeploymentError

A, B, C, D = ("0x" + f"{n:02x}" * 20 for n in (0xA1, 0xB2, 0xC3, 0xD4))
ZERO = "0x" + "00" * 20


@pytest.mark.parametrize(("plan", "needle"), [
    (DeployPlan(treasury=ZERO), "--treasury: the zero address"),
    (DeployPlan(anchorer=ZERO), "--anchorer: the zero address"),
    (DeployPlan(admin_delay=60, proposers=[ZERO]), "--proposer: the zero address"),
    (DeployPlan(panel=[A, B, A]), "is named twice"),
    (DeployPlan(panel=[A, ZERO, B]), "--panel: the zero address"),
    (DeployPlan(panel=[]), "--panel: name at least one member"),
    (DeployPlan(panel=["0x" + f"{n:040x}" for n in range(1, 34)]), "33 members, at most 32"),
    (DeployPlan(panel=[A, B, C], threshold=1), "--threshold 1: a panel of 3 needs a strict majority (2..3)"),
    (DeployPlan(panel=[A, B, C], threshold=4), "--threshold 4"),
    (DeployPlan(admin_delay=60, admin=A), "with --admin-delay the AdminTimelock is the admin"),
    (DeployPlan(proposers=[A]), "--proposer/--executor need a timelock"),
    (DeployPlan(redeploy=["Escrow"]), "--redeploy Escrow: no such contract"),
    (DeployPlan(redeploy=["EvidenceLog"]), "pass --move-log as well"),
])
def test_a_bad_request_is_refused_naming_the_option(plan: DeployPlan, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_plan(plan)
    assert needle in str(err.value)


def test_a_good_request_passes() -> None:
    check_plan(DeployPlan(panel=[A, B, C], threshold=2, treasury=D, admin_delay=86400, proposers=[A],
                          executors=[B], anchorer=C, log_admin=D, redeploy=["EvidenceLog"], move_log=True))


def _live() -> Configuration:
    """A live deployment: panel A, B, C (2 of 3, free), treasury A, anchorer C, admin B."""
    return Configuration(
        block_number=9, treasury=cs(A), panel=PanelConfig(1, [cs(A), cs(B), cs(C)], 2, 0), terms_id=1,
        terms={"deposit_ratio_bps": 2000},
        roles={"EvidenceLog": {"admin": [cs(B)], "anchorer": [cs(C)]},
               "FulfillmentEscrow": {"admin": [cs(B)]}, "PanelArbitrator": {"admin": [cs(B)]}})


def test_a_re_run_asking_for_another_configuration_names_each_difference_and_its_command() -> None:
    live = _live()
    assert conflicts(DeployPlan(panel=[A, B, C], threshold=2, treasury=A, anchorer=C), live) == []
    found = conflicts(DeployPlan(panel=[A, B, D], threshold=3, arbitration_cost=5, treasury=D,
                                 deposit_ratio_bps=1000, anchorer=D), live)
    text = "\n".join(found)
    assert len(found) == 6, text
    assert "panel: the deployment has" in text and "`ledger admin arbitrator --panel" in text
    assert "threshold: the deployment has 2, this run asks for 3" in text
    assert "arbitration cost: the deployment has 0, this run asks for 5" in text
    assert f"treasury: the deployment has {cs(A)}, this run asks for {cs(D)}" in text
    assert f"`ledger admin treasury {cs(D)}`" in text
    assert "deposit ratio: the deployment has 2000, this run asks for 1000" in text
    assert "`ledger admin deposit-ratio 1000`" in text
    assert f"EvidenceLog anchorer: the deployment has {cs(C)}" in text and "ledger admin role grant" in text


def test_redeploys_that_would_break_the_deployment_are_refused() -> None:
    entry = ManifestEntry("FulfillmentEscrow", A, "0x", 1, "0x", A, "c", "h")
    manifest = DeploymentManifest("evidence-escrow/deployment/v2", 1, {"FulfillmentEscrow": entry})
    live = {"EvidenceLog": True, "FulfillmentEscrow": True, "PanelArbitrator": True, "AdminTimelock": True,
            "EscrowTermsRules": True, "EscrowBatcher": False}
    with pytest.raises(DeploymentError, match="pointing at the old one"):
        redeploy_set(DeployPlan(redeploy=["PanelArbitrator"]), live, manifest)
    with pytest.raises(DeploymentError, match="holds the admin roles"):
        redeploy_set(DeployPlan(redeploy=["AdminTimelock"]), live, manifest)
    with pytest.raises(DeploymentError, match="needs --move-log"):
        redeploy_set(DeployPlan(redeploy=["EvidenceLog"]), live, manifest)
    names, _ = redeploy_set(DeployPlan(redeploy=["*"]), live, manifest)
    assert names == {"EscrowBatcher"}  # only what is gone; never the live log
    names, _ = redeploy_set(DeployPlan(redeploy=["PanelArbitrator", "FulfillmentEscrow"]), live, manifest)
    assert names == {"PanelArbitrator", "FulfillmentEscrow"}
    names, notes = redeploy_set(DeployPlan(redeploy=["*"]), {**live, "EvidenceLog": False}, manifest)
    assert "EvidenceLog" in names and "has no code" in notes[0]
