import json
import math

import mlflow
import pytest
from mlflow import MlflowClient

from fourds.config import PromotionConfig
from fourds.registry.aliases import alias_version
from fourds.registry.promotion import champion_metrics, decide_promotion, gate_metrics, promote_if_better
from fourds.registry.tracking import experiment_for_domain

MODEL = "fourds-student-usps"


def _metrics(accuracy=0.9, parity=1e-6, latency=2.0, size=5.0) -> dict[str, float]:
    return gate_metrics(test_accuracy=accuracy, parity_max_abs_diff=parity, latency_ms_batch1=latency, size_mb=size)


# --- the pure rule -------------------------------------------------------------------------


def test_first_challenger_passes_the_accuracy_gate_when_there_is_no_champion():
    decision = decide_promotion(_metrics(accuracy=0.3), None, PromotionConfig(), challenger_version="1")
    assert decision.promoted
    assert len(decision.reasons) == 4 and all(reason.startswith("PASS") for reason in decision.reasons)
    assert "no champion yet" in decision.reasons[0]


@pytest.mark.parametrize(
    ("challenger", "champion", "margin", "promoted"),
    [(0.91, 0.90, 0.0, True), (0.90, 0.90, 0.0, True), (0.90, 0.90, 0.01, False), (0.89, 0.90, 0.0, False)],
)
def test_accuracy_gate_compares_with_champion_plus_margin(challenger, champion, margin, promoted):
    decision = decide_promotion(
        _metrics(accuracy=challenger),
        _metrics(accuracy=champion),
        PromotionConfig(min_accuracy_gain=margin),
        champion_version="3",
    )
    assert decision.promoted is promoted
    assert decision.reasons[0].startswith("PASS" if promoted else "FAIL")
    assert f"{challenger:.4f}" in decision.reasons[0] and "champion v3" in decision.reasons[0]
    assert f"{champion + margin:.4f}" in decision.reasons[0]


def test_parity_gate_blocks_an_onnx_that_does_not_reproduce_pytorch():
    decision = decide_promotion(_metrics(accuracy=0.99, parity=2e-4), None, PromotionConfig(max_parity_abs_diff=1e-4))
    assert not decision.promoted
    assert decision.reasons[1] == "FAIL parity: onnx_parity_max_abs_diff 0.0002 > budget 0.0001"


def test_latency_and_size_budgets_apply_only_when_configured():
    unbounded = decide_promotion(_metrics(latency=500.0, size=900.0), None, PromotionConfig())
    assert unbounded.promoted and "no budget configured" in unbounded.reasons[2]

    budget = PromotionConfig(max_latency_ms=10.0, max_size_mb=8.0)
    slow = decide_promotion(_metrics(latency=12.5), None, budget)
    big = decide_promotion(_metrics(size=9.0), None, budget)
    assert not slow.promoted and slow.reasons[2] == "FAIL latency: onnx_latency_ms_batch1 12.50 ms > budget 10.00 ms"
    assert not big.promoted and big.reasons[3] == "FAIL size: onnx_size_mb 9.00 MB > budget 8.00 MB"
    assert decide_promotion(_metrics(latency=10.0, size=8.0), None, budget).promoted


def test_missing_or_non_finite_evidence_never_promotes():
    no_accuracy = decide_promotion({"onnx_parity_max_abs_diff": 0.0}, None, PromotionConfig())
    nan_accuracy = decide_promotion(_metrics(accuracy=math.nan), None, PromotionConfig())
    unknown_champion = decide_promotion(_metrics(), {}, PromotionConfig(), champion_version="2")
    no_latency = decide_promotion({"test_accuracy": 0.9, "onnx_parity_max_abs_diff": 0.0}, None,
                                  PromotionConfig(max_latency_ms=5.0))

    assert not no_accuracy.promoted and "no recorded test_accuracy" in no_accuracy.reasons[0]
    assert not nan_accuracy.promoted
    assert not unknown_champion.promoted and "champion v2 has no recorded" in unknown_champion.reasons[0]
    assert not no_latency.promoted and "FAIL latency" in no_latency.reasons[2]


# --- applied to the registry -----------------------------------------------------------------


def test_better_challengers_become_champion_and_worse_ones_stay_challengers(workspace, bare_version, capsys):
    config = PromotionConfig()
    first = bare_version(MODEL, _metrics(accuracy=0.80))
    assert promote_if_better(MODEL, first, config).promoted
    assert alias_version(MODEL, "champion") == first

    better = bare_version(MODEL, _metrics(accuracy=0.85))
    decision = promote_if_better(MODEL, better, config)
    assert decision.promoted and decision.champion_version_before == first and decision.champion_version == better
    assert alias_version(MODEL, "champion") == better

    worse = bare_version(MODEL, _metrics(accuracy=0.82))
    decision = promote_if_better(MODEL, worse, config)
    assert not decision.promoted and decision.champion_version == better
    assert decision.reason == "; ".join(decision.reasons) and decision.reason.startswith("FAIL accuracy")
    assert alias_version(MODEL, "champion") == better

    tags = MlflowClient().get_model_version(MODEL, worse).tags
    assert tags["fourds.promotion.decision"] == "rejected"
    assert "FAIL accuracy: 0.8200 < champion v2 0.8500" in tags["fourds.promotion.reasons"]
    assert tags["fourds.promotion.champion_before"] == better
    printed = capsys.readouterr().out
    assert f"{MODEL} version {worse}: not promoted" in printed and "FAIL accuracy" in printed


def test_gate_failures_in_the_registry_block_promotion(workspace, bare_version):
    champion = bare_version(MODEL, _metrics(accuracy=0.5))
    promote_if_better(MODEL, champion, PromotionConfig(), echo=False)
    budget = PromotionConfig(max_latency_ms=5.0, max_size_mb=10.0)

    for metrics in (_metrics(accuracy=0.99, parity=1e-3), _metrics(accuracy=0.99, latency=6.0),
                    _metrics(accuracy=0.99, size=11.0)):
        candidate = bare_version(MODEL, metrics)
        assert not promote_if_better(MODEL, candidate, budget, echo=False).promoted
    assert alias_version(MODEL, "champion") == champion


def test_decision_is_logged_to_the_active_run(workspace, bare_version):
    version = bare_version(MODEL, _metrics())
    experiment_for_domain("usps")
    with mlflow.start_run() as run:
        promote_if_better(MODEL, version, PromotionConfig(), echo=False)

    client = MlflowClient()
    data = client.get_run(run.info.run_id).data
    assert data.tags["fourds.promotion.decision"] == "promoted"
    assert data.tags["fourds.promotion.model"] == f"{MODEL}/{version}"
    assert data.metrics["promotion/promoted"] == 1.0
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=f"promotion/{MODEL}-v{version}.json")
    logged = json.loads(open(path).read())
    assert logged["promoted"] is True and logged["challenger_version"] == version and len(logged["reasons"]) == 4


def test_promoting_the_champion_again_changes_nothing(workspace, bare_version):
    version = bare_version(MODEL, _metrics())
    promote_if_better(MODEL, version, PromotionConfig(), echo=False)
    again = promote_if_better(MODEL, version, PromotionConfig(), echo=False)
    assert not again.promoted and "already the champion" in again.reasons[0]


def test_champion_metrics_for_reports(workspace, bare_version):
    assert champion_metrics(MODEL) is None  # not registered yet
    version = bare_version(MODEL, _metrics(accuracy=0.75))
    assert champion_metrics(MODEL) is None  # registered, no champion yet
    promote_if_better(MODEL, version, PromotionConfig(), echo=False)
    assert champion_metrics(MODEL) == (version, _metrics(accuracy=0.75))
