"""The domain's current champion, re-scored on a challenger's test split: what the champion gate compares."""

from __future__ import annotations

import copy

import torch
from mlflow.exceptions import MlflowException
from torch.utils.data import Dataset

from fourds.evaluation.metrics import evaluate_classifier
from fourds.inference import ModelInputError, eval_transform
from fourds.models.weights import WeightsError
from fourds.registry.errors import RegistryError
from fourds.registry.versions import load_student
from fourds.registry.promotion import ACCURACY_METRIC, ChampionScore, champion_metrics, finite_metric


def score_champion(
    model_name: str,
    test_set: Dataset,
    classes: list[str],
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> ChampionScore | None:
    """Score the domain's current champion on ``test_set`` (the challenger's test split); None without a champion.

    The champion's own weights (``student.safetensors`` of its version) and its own
    recorded preprocessing are used; ``test_set`` must be an image table dataset (its
    ``transform`` is swapped for the champion's). A champion that cannot be loaded (its
    files cannot be downloaded, its weights are missing or unreadable, its recorded
    preprocessing is malformed) or that predicts other classes than ``classes`` cannot be
    scored: the result then says why, and the champion gate fails with that reason.
    """
    current = champion_metrics(model_name)
    if current is None:
        return None
    version, metrics = current
    recorded = finite_metric(metrics, ACCURACY_METRIC)
    try:
        loaded = load_student(f"{model_name}/{version}")
    except (RegistryError, WeightsError, ModelInputError, MlflowException, OSError) as exc:
        return ChampionScore(version, None, recorded, problem=f"it could not be loaded: {exc}")
    if loaded.classes != list(classes):
        return ChampionScore(version, None, recorded, problem=(
            f"it predicts the classes {loaded.classes}, this run's test split has {list(classes)}"))
    champion_view = copy.copy(test_set)
    if loaded.preprocessing is not None:
        champion_view.transform = eval_transform(loaded.preprocessing)
    accuracy = evaluate_classifier(loaded.model, champion_view, classes, batch_size=batch_size, device=device).accuracy
    return ChampionScore(version, accuracy, recorded)
