"""The promotion policy: when a challenger student becomes its domain's champion.

A challenger is promoted only if it passes every gate of ``PromotionConfig``, on the
target test split of the run that produced it:

* minimum: test accuracy >= ``min_accuracy`` (default, None: halfway between chance and
  1, ``(1 + 1/num_classes) / 2``: 0.55 for 10 classes, 0.75 for 2);
* source teacher: test accuracy > the frozen source teacher's accuracy on the same split
  (a student that does no better than the teacher it came from closes no gap);
* champion: test accuracy >= the current champion's accuracy + ``min_accuracy_gain``,
  the champion being **re-scored on this run's test split** (:func:`score_champion`; its
  accuracy recorded at its own registration, on an older split, is shown beside it but
  never decides). Passes when the domain has no champion yet;
* parity: ONNX-vs-PyTorch max abs logit difference <= ``max_parity_abs_diff``;
* latency: ONNX batch-1 CPU median latency <= ``max_latency_ms`` (when set);
* size: ONNX file size <= ``max_size_mb`` (when set).

These apply to every challenger, a domain's first version included. A figure a gate
needs but the version lacks fails that gate: the policy never promotes on missing
evidence. :func:`decide_promotion` is the pure rule; :func:`promote_if_better` applies
it to the registry and records the decision (tags, description, MLflow run).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fourds.config import PromotionConfig
from fourds.lineage.record import LineageRecord
from fourds.registry.aliases import CHAMPION, alias_version, current_user, get_model_version, move_alias
from fourds.registry.tags import CLASSES_TAG

ACCURACY_METRIC = "test_accuracy"
SOURCE_TEACHER_METRIC = "source_teacher_test_accuracy"
PARITY_METRIC = "onnx_parity_max_abs_diff"
LATENCY_METRIC = "onnx_latency_ms_batch1"
SIZE_METRIC = "onnx_size_mb"
DECISION_TAG = "fourds.promotion.decision"
RUN_DESCRIPTION_TAG = "mlflow.note.content"
"""The tag MLflow's UI shows as a run's description."""
PROMOTION_TAG_PREFIX = "fourds.promotion."


def gate_metrics(
    *,
    test_accuracy: float,
    source_teacher_accuracy: float | None,
    parity_max_abs_diff: float,
    latency_ms_batch1: float,
    size_mb: float,
) -> dict[str, float]:
    """The metrics the gates read, under the names they are recorded with (``fourds.metric.<name>`` tags).

    ``source_teacher_accuracy``: the frozen source teacher on the same target test split
    (None when unknown: the source-teacher gate then fails).
    """
    metrics = {
        ACCURACY_METRIC: test_accuracy,
        PARITY_METRIC: parity_max_abs_diff,
        LATENCY_METRIC: latency_ms_batch1,
        SIZE_METRIC: size_mb,
    }
    if source_teacher_accuracy is not None:
        metrics[SOURCE_TEACHER_METRIC] = source_teacher_accuracy
    return metrics


def default_min_accuracy(num_classes: int) -> float:
    """Halfway between chance (``1/num_classes``) and a perfect score."""
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    return (1 + 1 / num_classes) / 2


@dataclass(frozen=True)
class ChampionScore:
    """The domain's champion, scored on the challenger's test split (or why it could not be)."""

    version: str
    accuracy: float | None
    """Its accuracy on the challenger's test split; None when it could not be scored (see ``problem``)."""
    recorded_accuracy: float | None = None
    """Its ``test_accuracy`` as recorded at its registration, on the test split of its own run."""
    problem: str | None = None


@dataclass
class PromotionDecision:
    """Whether the challenger became champion, with one reason per gate and the figures compared."""

    promoted: bool
    reasons: list[str]
    champion_version_before: str | None
    challenger_version: str | None
    model_name: str | None = None
    challenger_accuracy: float | None = None
    source_teacher_accuracy: float | None = None
    min_accuracy: float | None = None
    champion_accuracy: float | None = None
    """The champion re-scored on the challenger's test split (what the champion gate compared)."""
    champion_recorded_accuracy: float | None = None
    """The champion's accuracy as recorded at its own registration (for the record only)."""
    decided_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def reason(self) -> str:
        """All gate reasons on one line."""
        return "; ".join(self.reasons)

    @property
    def champion_version(self) -> str | None:
        """The champion after the decision."""
        return self.challenger_version if self.promoted else self.champion_version_before

    def summary(self) -> str:
        who = f"{self.model_name} version {self.challenger_version}" if self.model_name else "challenger"
        verdict = "promoted to champion" if self.promoted else "not promoted"
        before = f"v{self.champion_version_before}" if self.champion_version_before else "none"
        return f"{who}: {verdict} (champion before: {before})\n" + "\n".join(f"  {r}" for r in self.reasons)

    def to_dict(self) -> dict:
        return asdict(self)


def decide_promotion(
    challenger: dict[str, float],
    config: PromotionConfig,
    *,
    num_classes: int | None,
    champion: ChampionScore | None = None,
    challenger_version: str | None = None,
) -> PromotionDecision:
    """Apply every gate to the challenger's metrics.

    ``num_classes`` gives the default minimum accuracy (None: only an explicit
    ``config.min_accuracy`` can pass the minimum gate). ``champion``: the current
    champion scored on the challenger's test split; None when the domain has none.
    """
    minimum = config.min_accuracy
    if minimum is None and num_classes is not None and num_classes >= 2:
        minimum = default_min_accuracy(num_classes)
    gates = [
        _minimum_gate(challenger, minimum, config.min_accuracy is None, num_classes),
        _source_teacher_gate(challenger),
        _champion_gate(challenger, champion, config.min_accuracy_gain),
        _upper_bound_gate("parity", challenger, PARITY_METRIC, config.max_parity_abs_diff, "{:.3g}"),
        _upper_bound_gate("latency", challenger, LATENCY_METRIC, config.max_latency_ms, "{:.2f} ms"),
        _upper_bound_gate("size", challenger, SIZE_METRIC, config.max_size_mb, "{:.2f} MB"),
    ]
    return PromotionDecision(
        promoted=all(passed for passed, _ in gates),
        reasons=[reason for _, reason in gates],
        champion_version_before=champion.version if champion else None,
        challenger_version=challenger_version,
        challenger_accuracy=finite_metric(challenger, ACCURACY_METRIC),
        source_teacher_accuracy=finite_metric(challenger, SOURCE_TEACHER_METRIC),
        min_accuracy=minimum,
        champion_accuracy=champion.accuracy if champion else None,
        champion_recorded_accuracy=champion.recorded_accuracy if champion else None,
    )


def champion_metrics(model_name: str) -> tuple[str, dict[str, float]] | None:
    """The domain's current champion version and its recorded metrics, for comparison in reports.

    None when the model is not registered yet or has no champion (a domain's first run).
    """
    try:
        champion = MlflowClient().get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return str(champion.version), _metrics_of(champion.tags)


def promote_if_better(
    model_name: str,
    version: str | int,
    config: PromotionConfig,
    *,
    champion_score: ChampionScore | None = None,
    echo: bool = True,
) -> PromotionDecision:
    """Decide on ``version`` against the current champion, move ``champion`` if it passes, record why.

    ``champion_score``: the current champion scored on this challenger's test split
    (:func:`score_champion`, done by the pipeline's evaluation step). Without it, or when
    it scored another version than the one that is champion now, the champion gate
    fails: accuracies measured on different test splits are never compared. The
    decision is written as tags and the description of the version
    (``fourds.promotion.*``), to the active MLflow run if there is one (tags,
    ``promotion/*`` metrics and a JSON artifact), and printed unless ``echo`` is False.
    """
    version = str(version)
    challenger = get_model_version(model_name, version)
    champion_version = alias_version(model_name, CHAMPION)

    if champion_version == version:
        decision = PromotionDecision(
            promoted=False,
            reasons=[f"version {version} is already the champion: nothing to decide"],
            champion_version_before=champion_version,
            challenger_version=version,
        )
    else:
        champion = None
        if champion_version is not None:
            recorded = finite_metric(_metrics_of(get_model_version(model_name, champion_version).tags), ACCURACY_METRIC)
            if champion_score is None:
                champion = ChampionScore(champion_version, None, recorded,
                                         problem="it was not scored on this challenger's test split")
            elif champion_score.version != champion_version:
                champion = ChampionScore(champion_version, None, recorded, problem=(
                    f"the evaluation scored v{champion_score.version}, which was champion then; "
                    "the champion has moved since"))
            else:
                champion = champion_score
        decision = decide_promotion(
            _metrics_of(challenger.tags),
            config,
            num_classes=_num_classes(challenger.tags),
            champion=champion,
            challenger_version=version,
        )
    decision.model_name = model_name

    if decision.promoted:
        move_alias(
            model_name,
            CHAMPION,
            version,
            who=f"promotion policy (run by {current_user()})",
            reason="passed every promotion gate: " + "; ".join(decision.reasons),
            action="promote",
        )
    _record(decision, model_name, version)
    if echo:
        print(decision.summary())
    return decision


def _record(decision: PromotionDecision, model_name: str, version: str) -> None:
    client = MlflowClient()
    figures = {
        "challenger_accuracy": decision.challenger_accuracy,
        "source_teacher_accuracy": decision.source_teacher_accuracy,
        "min_accuracy": decision.min_accuracy,
        "champion_accuracy": decision.champion_accuracy,
        "champion_recorded_accuracy": decision.champion_recorded_accuracy,
    }
    tags = {
        DECISION_TAG: "promoted" if decision.promoted else "rejected",
        f"{PROMOTION_TAG_PREFIX}reasons": "\n".join(decision.reasons),
        f"{PROMOTION_TAG_PREFIX}champion_before": decision.champion_version_before or "none",
        f"{PROMOTION_TAG_PREFIX}decided_at": decision.decided_at,
        **{f"{PROMOTION_TAG_PREFIX}{name}": repr(value) for name, value in figures.items() if value is not None},
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    _describe_version(client, model_name, version, decision)
    if mlflow.active_run() is not None:
        mlflow.set_tags({**tags, f"{PROMOTION_TAG_PREFIX}model": f"{model_name}/{version}"})
        mlflow.log_metric("promotion/promoted", 1.0 if decision.promoted else 0.0)
        mlflow.log_metrics({f"promotion/{name}": value for name, value in figures.items() if value is not None})
        mlflow.log_text(json.dumps(decision.to_dict(), indent=2), f"promotion/{model_name}-v{version}.json")


def version_description(tags: dict[str, str], decision: PromotionDecision | None = None) -> str:
    """What a model version's page says first: domain, method, test accuracy against the source teacher
    and the champion, and the promotion decision (markdown, as MLflow renders descriptions)."""
    record = LineageRecord.from_tags(tags)
    metrics = record.metrics
    method = record.method or "?"
    kept = record.student_method
    made_by = method if kept in (None, method) else f"{kept} (the scratch guard kept it over {method})"
    paragraphs = [f"**{record.domain or '?'}** student, method **{made_by}**"]
    accuracy = finite_metric(metrics, ACCURACY_METRIC)
    if accuracy is not None:
        parts = [f"test accuracy **{accuracy:.4f}**"]
        teacher = finite_metric(metrics, SOURCE_TEACHER_METRIC)
        if teacher is not None:
            parts.append(f"source teacher {teacher:.4f}")
        if decision is not None and decision.champion_accuracy is not None:
            parts.append(f"champion v{decision.champion_version_before} {decision.champion_accuracy:.4f}")
        paragraphs.append(", ".join(parts) + " (all on this run's target test split)")
    if decision is None:
        paragraphs.append("Promotion: not decided yet")
        return "\n\n".join(paragraphs)
    verdict = "**promoted to champion**" if decision.promoted else "**not promoted** (stays challenger)"
    paragraphs.append(f"Promotion: {verdict}")
    return "\n\n".join(paragraphs) + "\n\n" + "\n".join(f"- {reason}" for reason in decision.reasons)


def _describe_version(client: MlflowClient, model_name: str, version: str, decision: PromotionDecision) -> None:
    """The version's description, and the same text as the description of the run that produced it (the run
    page showed "No description")."""
    registered = client.get_model_version(model_name, version)
    description = version_description(registered.tags, decision)
    client.update_model_version(model_name, version, description=description)
    if registered.run_id:
        client.set_tag(registered.run_id, RUN_DESCRIPTION_TAG, description)


def _metrics_of(tags: dict[str, str]) -> dict[str, float]:
    return LineageRecord.from_tags(tags).metrics


def _num_classes(tags: dict[str, str]) -> int | None:
    try:
        classes = json.loads(tags[CLASSES_TAG])
    except (KeyError, json.JSONDecodeError):
        return None
    return len(classes) if isinstance(classes, list) else None


def finite_metric(metrics: dict[str, float] | None, name: str) -> float | None:
    """``metrics[name]`` when it is there and finite, else None (a gate then fails on missing evidence)."""
    value = (metrics or {}).get(name)
    return value if value is not None and math.isfinite(value) else None


def _minimum_gate(
    challenger: dict[str, float], minimum: float | None, is_default: bool, num_classes: int | None
) -> tuple[bool, str]:
    accuracy = finite_metric(challenger, ACCURACY_METRIC)
    if accuracy is None:
        return False, f"FAIL minimum: the challenger has no recorded {ACCURACY_METRIC}"
    if minimum is None:
        return False, (
            "FAIL minimum: the challenger records no class list to derive the default minimum accuracy from; "
            "set promotion.min_accuracy"
        )
    source = f"default (1 + 1/{num_classes}) / 2" if is_default else "promotion.min_accuracy"
    passed = accuracy >= minimum
    return passed, f"{'PASS' if passed else 'FAIL'} minimum: {accuracy:.4f} {'>=' if passed else '<'} {minimum:.4f} ({source})"


def _source_teacher_gate(challenger: dict[str, float]) -> tuple[bool, str]:
    accuracy = finite_metric(challenger, ACCURACY_METRIC)
    teacher = finite_metric(challenger, SOURCE_TEACHER_METRIC)
    if accuracy is None:
        return False, f"FAIL source teacher: the challenger has no recorded {ACCURACY_METRIC}"
    if teacher is None:
        return False, f"FAIL source teacher: no {SOURCE_TEACHER_METRIC} recorded to compare with"
    passed = accuracy > teacher
    return passed, (
        f"{'PASS' if passed else 'FAIL'} source teacher: {accuracy:.4f} {'>' if passed else '<='} "
        f"{teacher:.4f}, the source teacher on the same test split"
    )


def _champion_gate(
    challenger: dict[str, float], champion: ChampionScore | None, margin: float
) -> tuple[bool, str]:
    accuracy = finite_metric(challenger, ACCURACY_METRIC)
    if accuracy is None:
        return False, f"FAIL champion: the challenger has no recorded {ACCURACY_METRIC}"
    if champion is None:
        return True, f"PASS champion: {accuracy:.4f}, and the domain has no champion yet"
    name = f"champion v{champion.version}"
    recorded = (
        f"; {champion.recorded_accuracy:.4f} recorded at its registration" if champion.recorded_accuracy is not None
        else ""
    )
    if champion.accuracy is None or not math.isfinite(champion.accuracy):
        why = champion.problem or "no accuracy"
        return False, (
            f"FAIL champion: the {name} could not be scored on this run's test split ({why}); "
            "promote by hand if this challenger should replace it"
        )
    required = champion.accuracy + margin
    passed = accuracy >= required
    relation = ">=" if passed else "<"
    return passed, (
        f"{'PASS' if passed else 'FAIL'} champion: {accuracy:.4f} {relation} {name} {champion.accuracy:.4f} "
        f"+ margin {margin:.4f} = {required:.4f} (champion re-scored on this run's test split{recorded})"
    )


def _upper_bound_gate(
    gate: str, challenger: dict[str, float], metric: str, limit: float | None, unit: str
) -> tuple[bool, str]:
    value = finite_metric(challenger, metric)
    if limit is None:
        shown = unit.format(value) if value is not None else "not recorded"
        return True, f"PASS {gate}: no budget configured ({metric} = {shown})"
    if value is None:
        return False, f"FAIL {gate}: the challenger has no recorded {metric} (budget {unit.format(limit)})"
    passed = value <= limit
    relation = "<=" if passed else ">"
    return passed, f"{'PASS' if passed else 'FAIL'} {gate}: {metric} {unit.format(value)} {relation} budget {unit.format(limit)}"
