"""The promotion policy: when a challenger student becomes its domain's champion.

A challenger is promoted only if it passes every gate of ``PromotionConfig``:

* accuracy: target test accuracy >= the current champion's + ``min_accuracy_gain``
  (passes when the domain has no champion yet);
* parity: ONNX-vs-PyTorch max abs logit difference <= ``max_parity_abs_diff``;
* latency: ONNX batch-1 CPU median latency <= ``max_latency_ms`` (when set);
* size: ONNX file size <= ``max_size_mb`` (when set).

A metric the gate needs but the version lacks fails that gate: the policy never
promotes on missing evidence. :func:`decide_promotion` is the pure rule;
:func:`promote_if_better` applies it to the registry and records the decision.
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

ACCURACY_METRIC = "test_accuracy"
PARITY_METRIC = "onnx_parity_max_abs_diff"
LATENCY_METRIC = "onnx_latency_ms_batch1"
SIZE_METRIC = "onnx_size_mb"
DECISION_TAG = "fourds.promotion.decision"


def gate_metrics(
    *, test_accuracy: float, parity_max_abs_diff: float, latency_ms_batch1: float, size_mb: float
) -> dict[str, float]:
    """The metrics the gates read, under the names they are recorded with (``fourds.metric.<name>`` tags)."""
    return {
        ACCURACY_METRIC: test_accuracy,
        PARITY_METRIC: parity_max_abs_diff,
        LATENCY_METRIC: latency_ms_batch1,
        SIZE_METRIC: size_mb,
    }


@dataclass
class PromotionDecision:
    """Whether the challenger became champion, with one reason per gate."""

    promoted: bool
    reasons: list[str]
    champion_version_before: str | None
    challenger_version: str | None
    model_name: str | None = None
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
    champion: dict[str, float] | None,
    config: PromotionConfig,
    *,
    challenger_version: str | None = None,
    champion_version: str | None = None,
) -> PromotionDecision:
    """Apply every gate to the challenger's metrics (and the champion's, None when there is none)."""
    gates = [
        _accuracy_gate(challenger, champion, config.min_accuracy_gain, champion_version),
        _upper_bound_gate("parity", challenger, PARITY_METRIC, config.max_parity_abs_diff, "{:.3g}"),
        _upper_bound_gate("latency", challenger, LATENCY_METRIC, config.max_latency_ms, "{:.2f} ms"),
        _upper_bound_gate("size", challenger, SIZE_METRIC, config.max_size_mb, "{:.2f} MB"),
    ]
    return PromotionDecision(
        promoted=all(passed for passed, _ in gates),
        reasons=[reason for _, reason in gates],
        champion_version_before=champion_version,
        challenger_version=challenger_version,
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
    model_name: str, version: str | int, config: PromotionConfig, *, echo: bool = True
) -> PromotionDecision:
    """Decide on ``version`` against the current champion, move ``champion`` if it passes, record why.

    The decision is written as tags on the version (``fourds.promotion.*``), to the
    active MLflow run if there is one (tags, a ``promotion/promoted`` metric and a JSON
    artifact), and printed unless ``echo`` is False.
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
        champion_metrics = None
        if champion_version is not None:
            champion_metrics = _metrics_of(get_model_version(model_name, champion_version).tags)
        decision = decide_promotion(
            _metrics_of(challenger.tags),
            champion_metrics,
            config,
            challenger_version=version,
            champion_version=champion_version,
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
    tags = {
        DECISION_TAG: "promoted" if decision.promoted else "rejected",
        "fourds.promotion.reasons": "\n".join(decision.reasons),
        "fourds.promotion.champion_before": decision.champion_version_before or "none",
        "fourds.promotion.decided_at": decision.decided_at,
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if mlflow.active_run() is not None:
        mlflow.set_tags({**tags, "fourds.promotion.model": f"{model_name}/{version}"})
        mlflow.log_metric("promotion/promoted", 1.0 if decision.promoted else 0.0)
        mlflow.log_text(json.dumps(decision.to_dict(), indent=2), f"promotion/{model_name}-v{version}.json")


def _metrics_of(tags: dict[str, str]) -> dict[str, float]:
    return LineageRecord.from_tags(tags).metrics


def _number(metrics: dict[str, float] | None, name: str) -> float | None:
    value = (metrics or {}).get(name)
    return value if value is not None and math.isfinite(value) else None


def _accuracy_gate(
    challenger: dict[str, float], champion: dict[str, float] | None, margin: float, champion_version: str | None
) -> tuple[bool, str]:
    accuracy = _number(challenger, ACCURACY_METRIC)
    if accuracy is None:
        return False, f"FAIL accuracy: the challenger has no recorded {ACCURACY_METRIC}"
    if champion is None:
        return True, f"PASS accuracy: {accuracy:.4f}, and the domain has no champion yet"
    name = f"champion v{champion_version}" if champion_version else "champion"
    reference = _number(champion, ACCURACY_METRIC)
    if reference is None:
        return False, (
            f"FAIL accuracy: the {name} has no recorded {ACCURACY_METRIC} to compare with "
            "(promote by hand if this challenger should replace it)"
        )
    required = reference + margin
    passed = accuracy >= required
    relation = ">=" if passed else "<"
    return passed, (
        f"{'PASS' if passed else 'FAIL'} accuracy: {accuracy:.4f} {relation} {name} {reference:.4f} "
        f"+ margin {margin:.4f} = {required:.4f}"
    )


def _upper_bound_gate(
    gate: str, challenger: dict[str, float], metric: str, limit: float | None, unit: str
) -> tuple[bool, str]:
    value = _number(challenger, metric)
    if limit is None:
        shown = unit.format(value) if value is not None else "not recorded"
        return True, f"PASS {gate}: no budget configured ({metric} = {shown})"
    if value is None:
        return False, f"FAIL {gate}: the challenger has no recorded {metric} (budget {unit.format(limit)})"
    passed = value <= limit
    relation = "<=" if passed else ">"
    return passed, f"{'PASS' if passed else 'FAIL'} {gate}: {metric} {unit.format(value)} {relation} budget {unit.format(limit)}"
