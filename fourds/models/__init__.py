"""torchvision classifiers by name, stage taps by module name, weight files without pickle."""

from fourds.models.taps import StageTaps, find_modules, probe_stage_shapes
from fourds.models.weights import ClassifierInfo, WeightsError, load_classifier, save_classifier
from fourds.models.zoo import STEMS, available_architectures, build_classifier, default_stage_names, replace_head

__all__ = [
    "STEMS",
    "ClassifierInfo",
    "StageTaps",
    "WeightsError",
    "available_architectures",
    "build_classifier",
    "default_stage_names",
    "find_modules",
    "load_classifier",
    "probe_stage_shapes",
    "replace_head",
    "save_classifier",
]
