import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image

from fourds.config import ConfigError, DataConfig, PromotionConfig, load_config
from fourds.data.datasets import ImageTableDataset, build_transforms
from fourds.evaluation.metrics import evaluate_classifier
from fourds.inference import ImagePreprocessing, eval_transform
from fourds.lineage.record import LineageRecord
from fourds.models.weights import save_classifier
from fourds.models.zoo import build_classifier
from fourds.registry.aliases import alias_version, move_alias
from fourds.registry.champion import score_champion
from fourds.registry.versions import load_student, register_student
from fourds.registry.promotion import (
    ChampionScore,
    champion_metrics,
    decide_promotion,
    default_min_accuracy,
    gate_metrics,
    promote_if_better,
)
from fourds.tracking.store import experiment_for_domain

MODEL = "fourds-student-usps"


def _metrics(accuracy=0.9, teacher=0.2, parity=1e-6, latency=2.0, size=5.0) -> dict[str, float]:
    return gate_metrics(test_accuracy=accuracy, source_teacher_accuracy=teacher, parity_max_abs_diff=parity,
                        latency_ms_batch1=latency, size_mb=size)


def _decide(metrics, config=None, *, num_classes=10, champion=None, version=None):
    return decide_promotion(metrics, config or PromotionConfig(), num_classes=num_classes, champion=champion,
                            challenger_version=version)


# --- the pure rule -------------------------------------------------------------------------


def test_a_first_challenger_near_chance_is_not_promoted():
    """The first version of a domain has no champion to beat, but still a minimum and the source teacher."""
    decision = _decide(_metrics(accuracy=0.3, teacher=0.2), version="1")

    assert not decision.promoted
    assert decision.reasons[0] == "FAIL minimum: 0.3000 < 0.5500 (default (1 + 1/10) / 2)"
    assert decision.reasons[1].startswith("PASS source teacher: 0.3000 > 0.2000")
    assert decision.reasons[2] == "PASS champion: 0.3000, and the domain has no champion yet"
    assert len(decision.reasons) == 6 and all(r.startswith("PASS") for r in decision.reasons[1:])
    assert (decision.min_accuracy, decision.challenger_accuracy, decision.source_teacher_accuracy) == (0.55, 0.3, 0.2)


def test_a_first_challenger_that_does_not_beat_the_source_teacher_is_not_promoted():
    below = _decide(_metrics(accuracy=0.8, teacher=0.85))
    tie = _decide(_metrics(accuracy=0.8, teacher=0.8))
    above = _decide(_metrics(accuracy=0.8, teacher=0.79))

    assert not below.promoted and below.reasons[1] == (
        "FAIL source teacher: 0.8000 <= 0.8500, the source teacher on the same test split")
    assert not tie.promoted and tie.reasons[1].startswith("FAIL source teacher")
    assert above.promoted and all(reason.startswith("PASS") for reason in above.reasons)


@pytest.mark.parametrize(("num_classes", "minimum"), [(2, 0.75), (3, 2 / 3), (10, 0.55), (100, 0.505)])
def test_the_default_minimum_is_halfway_between_chance_and_one(num_classes, minimum):
    assert default_min_accuracy(num_classes) == pytest.approx(minimum)
    just_below = _decide(_metrics(accuracy=minimum - 1e-3, teacher=0.0), num_classes=num_classes)
    at = _decide(_metrics(accuracy=minimum + 1e-12, teacher=0.0), num_classes=num_classes)
    assert not just_below.promoted and at.promoted


def test_a_configured_minimum_replaces_the_default():
    low = PromotionConfig(min_accuracy=0.25)
    decision = _decide(_metrics(accuracy=0.3, teacher=0.2), low)

    assert decision.promoted
    assert decision.reasons[0] == "PASS minimum: 0.3000 >= 0.2500 (promotion.min_accuracy)"
    # An explicit minimum needs no class count; the default does.
    assert _decide(_metrics(accuracy=0.3, teacher=0.2), low, num_classes=None).promoted
    unknown = _decide(_metrics(accuracy=0.99, teacher=0.2), num_classes=None)
    assert not unknown.promoted and "set promotion.min_accuracy" in unknown.reasons[0]


def test_promotion_settings_reject_a_negative_gain_and_an_impossible_minimum():
    for bad in ({"min_accuracy_gain": -0.01}, {"min_accuracy": 1.5}, {"min_accuracy": -0.1}):
        with pytest.raises(ConfigError, match="promotion"):
            load_config(overrides={"promotion": bad})


@pytest.mark.parametrize(
    ("challenger", "champion", "margin", "promoted"),
    [(0.91, 0.90, 0.0, True), (0.90, 0.90, 0.0, True), (0.90, 0.90, 0.01, False), (0.89, 0.90, 0.0, False)],
)
def test_champion_gate_compares_with_the_rescored_champion_plus_margin(challenger, champion, margin, promoted):
    decision = _decide(
        _metrics(accuracy=challenger),
        PromotionConfig(min_accuracy_gain=margin),
        champion=ChampionScore("3", accuracy=champion, recorded_accuracy=0.99),
    )
    assert decision.promoted is promoted
    assert decision.reasons[2].startswith("PASS" if promoted else "FAIL")
    assert f"{challenger:.4f}" in decision.reasons[2] and f"champion v3 {champion:.4f}" in decision.reasons[2]
    assert f"= {champion + margin:.4f}" in decision.reasons[2]
    assert "re-scored on this run's test split; 0.9900 recorded at its registration" in decision.reasons[2]
    assert (decision.champion_accuracy, decision.champion_recorded_accuracy) == (champion, 0.99)


def test_a_champion_that_could_not_be_rescored_blocks_promotion():
    unscored = ChampionScore("2", accuracy=None, recorded_accuracy=0.5, problem="it predicts other classes")
    decision = _decide(_metrics(accuracy=0.99), champion=unscored)

    assert not decision.promoted
    assert decision.reasons[2] == (
        "FAIL champion: the champion v2 could not be scored on this run's test split (it predicts other classes); "
        "promote by hand if this challenger should replace it")


def test_parity_gate_blocks_an_onnx_that_does_not_reproduce_pytorch():
    decision = _decide(_metrics(accuracy=0.99, parity=2e-4), PromotionConfig(max_parity_abs_diff=1e-4))
    assert not decision.promoted
    assert decision.reasons[3] == "FAIL parity: onnx_parity_max_abs_diff 0.0002 > budget 0.0001"


def test_latency_and_size_budgets_apply_only_when_configured():
    unbounded = _decide(_metrics(latency=500.0, size=900.0))
    assert unbounded.promoted and "no budget configured" in unbounded.reasons[4]

    budget = PromotionConfig(max_latency_ms=10.0, max_size_mb=8.0)
    slow = _decide(_metrics(latency=12.5), budget)
    big = _decide(_metrics(size=9.0), budget)
    assert not slow.promoted and slow.reasons[4] == "FAIL latency: onnx_latency_ms_batch1 12.50 ms > budget 10.00 ms"
    assert not big.promoted and big.reasons[5] == "FAIL size: onnx_size_mb 9.00 MB > budget 8.00 MB"
    assert _decide(_metrics(latency=10.0, size=8.0), budget).promoted


def test_missing_or_non_finite_evidence_never_promotes():
    no_accuracy = _decide({"onnx_parity_max_abs_diff": 0.0, "source_teacher_test_accuracy": 0.1})
    nan_accuracy = _decide(_metrics(accuracy=math.nan))
    no_teacher = _decide(gate_metrics(test_accuracy=0.9, source_teacher_accuracy=None, parity_max_abs_diff=0.0,
                                      latency_ms_batch1=1.0, size_mb=1.0))
    no_latency = _decide({"test_accuracy": 0.9, "source_teacher_test_accuracy": 0.1, "onnx_parity_max_abs_diff": 0.0},
                         PromotionConfig(max_latency_ms=5.0))

    assert not no_accuracy.promoted and "no recorded test_accuracy" in no_accuracy.reasons[0]
    assert not nan_accuracy.promoted
    assert not no_teacher.promoted and "no source_teacher_test_accuracy recorded" in no_teacher.reasons[1]
    assert not no_latency.promoted and "FAIL latency" in no_latency.reasons[4]


# --- applied to the registry -----------------------------------------------------------------


def test_a_first_version_below_the_minimum_or_the_source_teacher_stays_challenger(workspace, bare_version, capsys):
    near_chance = bare_version(MODEL, _metrics(accuracy=0.14, teacher=0.165))
    decision = promote_if_better(MODEL, near_chance, PromotionConfig())

    assert not decision.promoted and alias_version(MODEL, "champion") is None
    printed = capsys.readouterr().out
    assert f"{MODEL} version {near_chance}: not promoted (champion before: none)" in printed
    assert "FAIL minimum: 0.1400 < 0.5500" in printed and "FAIL source teacher: 0.1400 <= 0.1650" in printed

    below_teacher = bare_version(MODEL, _metrics(accuracy=0.7, teacher=0.75))
    assert not promote_if_better(MODEL, below_teacher, PromotionConfig(), echo=False).promoted
    good = bare_version(MODEL, _metrics(accuracy=0.7, teacher=0.3))
    assert promote_if_better(MODEL, good, PromotionConfig(), echo=False).promoted
    assert alias_version(MODEL, "champion") == good

    tags = MlflowClient().get_model_version(MODEL, near_chance).tags
    assert tags["fourds.promotion.decision"] == "rejected"
    assert float(tags["fourds.promotion.min_accuracy"]) == 0.55
    assert float(tags["fourds.promotion.source_teacher_accuracy"]) == 0.165


def test_better_challengers_become_champion_and_worse_ones_stay_challengers(workspace, bare_version, capsys):
    config = PromotionConfig()
    first = bare_version(MODEL, _metrics(accuracy=0.80))
    assert promote_if_better(MODEL, first, config).promoted
    assert alias_version(MODEL, "champion") == first

    # The champion scored 0.83 on the new run's test split (0.80 on its own, older one).
    better = bare_version(MODEL, _metrics(accuracy=0.85))
    decision = promote_if_better(MODEL, better, config, champion_score=ChampionScore(first, 0.83, 0.80))
    assert decision.promoted and decision.champion_version_before == first and decision.champion_version == better
    assert alias_version(MODEL, "champion") == better

    worse = bare_version(MODEL, _metrics(accuracy=0.82))
    decision = promote_if_better(MODEL, worse, config, champion_score=ChampionScore(better, 0.84, 0.85))
    assert not decision.promoted and decision.champion_version == better
    assert decision.reason == "; ".join(decision.reasons) and decision.reasons[2].startswith("FAIL champion")
    assert alias_version(MODEL, "champion") == better

    tags = MlflowClient().get_model_version(MODEL, worse).tags
    assert tags["fourds.promotion.decision"] == "rejected"
    assert "FAIL champion: 0.8200 < champion v2 0.8400" in tags["fourds.promotion.reasons"]
    assert tags["fourds.promotion.champion_before"] == better
    # Both figures of the champion are on the version: the one compared and the one recorded at its registration.
    assert (float(tags["fourds.promotion.champion_accuracy"]),
            float(tags["fourds.promotion.champion_recorded_accuracy"])) == (0.84, 0.85)
    printed = capsys.readouterr().out
    assert f"{MODEL} version {worse}: not promoted" in printed and "FAIL champion" in printed


def test_without_a_rescored_champion_the_champion_gate_fails(workspace, bare_version):
    first = bare_version(MODEL, _metrics(accuracy=0.80))
    promote_if_better(MODEL, first, PromotionConfig(), echo=False)
    challenger = bare_version(MODEL, _metrics(accuracy=0.95))

    unscored = promote_if_better(MODEL, challenger, PromotionConfig(), echo=False)
    stale = promote_if_better(MODEL, challenger, PromotionConfig(), champion_score=ChampionScore("7", 0.1, 0.1),
                              echo=False)

    assert not unscored.promoted and "it was not scored on this challenger's test split" in unscored.reasons[2]
    assert not stale.promoted and "scored v7" in stale.reasons[2] and "champion has moved" in stale.reasons[2]
    assert alias_version(MODEL, "champion") == first


def test_gate_failures_in_the_registry_block_promotion(workspace, bare_version):
    champion = bare_version(MODEL, _metrics(accuracy=0.6))
    promote_if_better(MODEL, champion, PromotionConfig(), echo=False)
    budget = PromotionConfig(max_latency_ms=5.0, max_size_mb=10.0)
    rescored = ChampionScore(champion, 0.6, 0.6)

    for metrics in (_metrics(accuracy=0.99, parity=1e-3), _metrics(accuracy=0.99, latency=6.0),
                    _metrics(accuracy=0.99, size=11.0)):
        candidate = bare_version(MODEL, metrics)
        assert not promote_if_better(MODEL, candidate, budget, champion_score=rescored, echo=False).promoted
    assert alias_version(MODEL, "champion") == champion


def test_decision_is_logged_to_the_active_run_and_described_on_the_version(workspace, bare_version):
    version = bare_version(MODEL, {**_metrics(accuracy=0.9, teacher=0.4)})
    client = MlflowClient()
    client.set_model_version_tag(MODEL, version, "fourds.domain", "usps")
    client.set_model_version_tag(MODEL, version, "fourds.method", "4ds")
    experiment_for_domain("usps")
    with mlflow.start_run() as run:
        promote_if_better(MODEL, version, PromotionConfig(), echo=False)

    data = client.get_run(run.info.run_id).data
    assert data.tags["fourds.promotion.decision"] == "promoted"
    assert data.tags["fourds.promotion.model"] == f"{MODEL}/{version}"
    assert data.metrics["promotion/promoted"] == 1.0
    assert data.metrics["promotion/source_teacher_accuracy"] == 0.4 and data.metrics["promotion/min_accuracy"] == 0.55
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=f"promotion/{MODEL}-v{version}.json")
    logged = json.loads(open(path).read())
    assert logged["promoted"] is True and logged["challenger_version"] == version and len(logged["reasons"]) == 6
    description = client.get_model_version(MODEL, version).description
    assert description.startswith("**usps** student, method **4ds**")
    assert "test accuracy **0.9000**, source teacher 0.4000" in description
    assert "Promotion: **promoted to champion**" in description and "- PASS minimum" in description


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


# --- the champion re-scored on a run's test split ---------------------------------------------------


CLASSES = ["zero", "one", "two"]  # those of the make_onnx classifiers


def _image_split(folder, count=12) -> pd.DataFrame:
    """``count`` random 9x7 images with labels cycling through CLASSES."""
    rng = np.random.default_rng(3)
    rows = []
    for index in range(count):
        name = f"{index:02d}.png"
        Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(folder / name)
        rows.append({"path": name, "label": CLASSES[index % 3]})
    return pd.DataFrame(rows)


def test_the_champion_is_rescored_on_this_runs_test_split_and_the_decision_uses_that_figure(
    workspace, make_onnx, tmp_path
):
    # A real registered champion: weights and an ONNX file recording a 4-pixel preprocessing.
    torch.manual_seed(0)
    weights = save_classifier(build_classifier("resnet18", 3, stem="small_input"), tmp_path / "champion.safetensors",
                              arch="resnet18", classes=CLASSES, stem="small_input")
    exported = make_onnx()
    lineage = LineageRecord(method="4ds", gx_success=True)
    experiment_for_domain("usps")
    with mlflow.start_run():
        champion = register_student("usps", onnx_path=exported.path, weights_path=weights, lineage=lineage,
                                    metrics={"test_accuracy": 0.99})  # as recorded on its own, older split
    move_alias(MODEL, "champion", champion.version, who="test", reason="set up a champion")

    images = tmp_path / "images"
    images.mkdir()
    # This run's test split, with this run's (8-pixel) transform: the champion is scored with its own (4-pixel).
    test_set = ImageTableDataset(images, _image_split(images), CLASSES,
                                 build_transforms(DataConfig(image_size=8, resize_size=None), train=False))
    score = score_champion(MODEL, test_set, CLASSES, batch_size=5)

    champion_preprocessing = ImagePreprocessing(image_size=4, resize_size=4, mean=(0.5,) * 3, std=(0.25,) * 3)
    reference = ImageTableDataset(images, _image_split(images), CLASSES, eval_transform(champion_preprocessing))
    champion_model = load_student(f"{MODEL}@champion").model
    expected = evaluate_classifier(champion_model, reference, CLASSES).accuracy
    with_this_runs_transform = evaluate_classifier(champion_model, test_set, CLASSES).accuracy
    assert with_this_runs_transform != expected, "premise: the two preprocessings must score differently"
    assert score == ChampionScore(champion.version, expected, 0.99)

    # A challenger below the champion's recorded 0.99 but above its re-scored figure is promoted on that figure.
    with mlflow.start_run():
        challenger = register_student("usps", onnx_path=exported.path, weights_path=weights, lineage=lineage,
                                      metrics=_metrics(accuracy=0.95, teacher=0.0))
    decision = promote_if_better(MODEL, challenger.version, PromotionConfig(min_accuracy=0.0), champion_score=score,
                                 echo=False)
    assert expected < 0.95 < 0.99, "premise: the untrained champion scores low on the new split"
    assert decision.champion_accuracy == expected and decision.champion_recorded_accuracy == 0.99
    assert decision.promoted and decision.reasons[2].startswith(f"PASS champion: 0.9500 >= champion v1 {expected:.4f}")
    tags = MlflowClient().get_model_version(MODEL, challenger.version).tags
    assert float(tags["fourds.promotion.champion_accuracy"]) == expected
    assert float(tags["fourds.promotion.champion_recorded_accuracy"]) == 0.99


def _registered_champion(make_onnx, tmp_path):
    """A registered version of the usps domain (ResNet-18 weights, test accuracy 0.9) made champion, and its weights."""
    weights = save_classifier(build_classifier("resnet18", 3, stem="small_input"), tmp_path / "w.safetensors",
                              arch="resnet18", classes=CLASSES, stem="small_input")
    experiment_for_domain("usps")
    with mlflow.start_run():
        champion = register_student("usps", onnx_path=make_onnx().path, weights_path=weights,
                                    lineage=LineageRecord(gx_success=True), metrics={"test_accuracy": 0.9})
    move_alias(MODEL, "champion", champion.version, who="test", reason="set up a champion")
    return champion, weights


def test_a_champion_with_other_classes_cannot_be_rescored(workspace, make_onnx, tmp_path):
    champion, weights = _registered_champion(make_onnx, tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    other = ["zero", "one", "three"]
    table = _image_split(images).replace({"label": {"two": "three"}})

    score = score_champion(MODEL, ImageTableDataset(images, table, other), other)

    assert score.version == champion.version and score.accuracy is None and score.recorded_accuracy == 0.9
    assert "['zero', 'one', 'two']" in score.problem and "['zero', 'one', 'three']" in score.problem


@pytest.mark.parametrize("damage, problem", [
    ("delete_weights", "fourds-student-usps version 1 should hold exactly one *.safetensors file; found: none"),
    ("corrupt_weights", "fourds-student-usps version 1 is not a readable safetensors file"),  # not a scratch path
    ("download_fails", "artifact store unreachable"),
])
def test_a_champion_that_cannot_be_loaded_fails_the_champion_gate_with_the_reason(
    workspace, make_onnx, tmp_path, monkeypatch, damage, problem
):
    """Missing or unreadable champion files do not fail the run: the champion gate fails, saying why."""
    from mlflow.exceptions import MlflowException

    import fourds.registry.versions

    champion, weights = _registered_champion(make_onnx, tmp_path)
    stored = MlflowClient().get_model_version_download_uri(MODEL, champion.version).removeprefix("file://")
    stored_weights = next((Path(stored) / "data").rglob("student.safetensors"))
    if damage == "delete_weights":
        stored_weights.unlink()
    elif damage == "corrupt_weights":
        stored_weights.write_bytes(b"not safetensors")
    else:  # what MLflow raises when the artifact store cannot be reached
        def unreachable(version, scratch):
            raise MlflowException(f"artifact store unreachable: {stored}")

        monkeypatch.setattr(fourds.registry.versions, "_download_version", unreachable)
    images = tmp_path / "images"
    images.mkdir()

    score = score_champion(MODEL, ImageTableDataset(images, _image_split(images), CLASSES), CLASSES)

    assert (score.version, score.accuracy, score.recorded_accuracy) == (champion.version, None, 0.9)
    assert score.problem.startswith("it could not be loaded: ") and problem in score.problem, score.problem
    with mlflow.start_run():
        challenger = register_student("usps", onnx_path=make_onnx().path, weights_path=weights,
                                      lineage=LineageRecord(gx_success=True), metrics=_metrics(accuracy=0.95))
    decision = promote_if_better(MODEL, challenger.version, PromotionConfig(), champion_score=score, echo=False)
    assert not decision.promoted
    assert decision.reasons[2].startswith(f"FAIL champion: the champion v{champion.version} could not be scored on "
                                          "this run's test split (it could not be loaded: ")
