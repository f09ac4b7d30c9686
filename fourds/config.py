"""One typed configuration for the library, the CLI, the ZenML pipelines and the benchmark.

Every number the method or the pipeline uses is a named field here, with the 4Ds
reference value (METHOD.md) as its default where the reference has one. Load a YAML
file with :func:`load_config`; the same YAML is accepted by ``fourds --config`` and
under ``parameters: config:`` in ``zenml_config.yaml``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fourds.devices import DEVICE_NAMES, check_device_name
from fourds.hashing import canonical_json_sha256
from fourds.method.registry import method_names, method_spec

OPTIMIZER_GROUPS = ("student", "adapters", "teacher")
"""The parameter groups a method can declare (``Method.parameter_groups``), each with its optimiser."""


def _listed(names: tuple[str, ...]) -> str:
    """``("a", "b", "c")`` -> ``"a, b or c"``."""
    return " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))


class _Strict(BaseModel):
    """Unknown keys are errors: a typo in a YAML file must not be silently ignored. No number may be
    infinite or NaN (``.inf``, ``.nan`` in YAML): no field has a use for one."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _optimizer_group(name: str) -> str:
    if name not in OPTIMIZER_GROUPS:
        close = difflib.get_close_matches(name, OPTIMIZER_GROUPS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown optimiser group {name!r}{hint}; the groups are {_listed(OPTIMIZER_GROUPS)}")
    return name


def _torchvision_classifier(name: str) -> str:
    """A classifier torchvision ships. Checked when a file names one (torchvision is imported only then)."""
    from fourds.models.zoo import available_architectures

    names = available_architectures()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()"
        raise ValueError(f"unknown architecture {name!r}: not a torchvision classification model; {hint}")
    return name


class OptimizerConfig(_Strict):
    """One optimiser and its learning-rate schedule (stepped once per iteration)."""

    name: Literal["sgd", "adamw", "adam"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only")
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    eps: float = Field(1e-8, gt=0, description="Adam/AdamW only")
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0, description="linear warm-up from 0 before the schedule")


def _reference_student_optimizer() -> OptimizerConfig:
    return OptimizerConfig(name="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)


def _default_teacher_optimizer() -> OptimizerConfig:
    # Training or fine-tuning a whole teacher in short schedules: AdamW with a short warm-up. Chosen on
    # validation for two_stage's fine-tuning by the adapter study (SGD 0.01, the reference student
    # optimiser, left the fine-tuned teacher near chance on the large shift); the benchmarks train
    # source teachers this way too.
    return OptimizerConfig(name="adamw", lr=1e-3, momentum=0.0, weight_decay=0.01, warmup_steps=10)


def _reference_adapter_optimizer() -> OptimizerConfig:
    # AdamW(lr 1e-3, eps 1e-4); weight decay left at torch's AdamW default.
    return OptimizerConfig(name="adamw", lr=1e-3, eps=1e-4, weight_decay=0.01, momentum=0.0)


class ModelConfig(_Strict):
    """Which torchvision classifiers play teacher and student, and where their stages are."""

    teacher_arch: Annotated[str, AfterValidator(_torchvision_classifier)] = Field(
        "resnet34", description="any torchvision classification model name"
    )
    student_arch: Annotated[str, AfterValidator(_torchvision_classifier)] = Field(
        "resnet18", description="any torchvision classification model name"
    )
    pretrained: bool = Field(
        False, description="start from torchvision ImageNet weights (needs internet; never used in tests)"
    )
    stem: Literal["imagenet", "no_maxpool", "small_input"] = Field(
        "imagenet",
        description=(
            "ResNet input stem. 'imagenet' as published; 'no_maxpool' drops the max-pool "
            "(stage maps 2x larger); 'small_input' also makes conv1 3x3 stride 1 (for 32px images)."
        ),
    )
    teacher_stages: list[str] | None = Field(
        None, description="module names tapped after each stage; None = the architecture's default"
    )
    student_stages: list[str] | None = Field(None, description="as teacher_stages, for the student")


class FourDsConfig(_Strict):
    """Hyper-parameters of the 4Ds method itself.

    Defaults are the 4Ds reference values (METHOD.md) except where a study on validation data chose
    otherwise (docs/METHOD_NOTES.md, "The adapter study"): the adapters start near the identity, the
    teacher's stem and first stage and its BatchNorm scale and shift learn with them, and information
    maximisation on the unlabelled images joins their objective; the phase distance is wrap-around aware
    and tiny maps stay out of fusion-activation. ``configs/4ds-reference.yaml`` restores the reference.
    """

    adapter_reduction: int = Field(4, ge=1, description="Fourier adapter bottleneck: C -> C/r -> C")
    adapter_initial_mix: float = Field(
        0.01,
        gt=0,
        lt=1,
        description=(
            "a0, the weight of the adapted amplitude, at the start; near 0 the adapters start close to the "
            "identity (reference: 0.5, an even mix that perturbs every stage of the teacher at the start)"
        ),
    )
    adapter_stages: list[int] | None = Field(
        None,
        description="positions of the teacher stages that get an adapter (0 = the first); None = every stage (reference)",
    )
    adapter_bn_affine: bool = Field(
        True,
        description="the frozen teacher's BatchNorm scale and shift learn with the adapters (reference: off)",
    )
    adapter_tuned_modules: list[str] = Field(
        default_factory=list,
        description=(
            "teacher modules (names as in named_modules, e.g. 'conv1' for a ResNet's stem) whose weights learn "
            "with the adapters, the rest of the teacher staying frozen (reference: none)"
        ),
    )
    adapter_tune_early: bool = Field(
        True,
        description=(
            "the teacher's stem and first stage (every layer before the first stage's output) learn with the "
            "adapters: where a shift in colour and texture enters the network (reference: off)"
        ),
    )
    adapter_residual: bool = Field(
        False,
        description=(
            "each adapter also adds its bottleneck's output times a per-channel scale that starts at 0, so it "
            "can change a feature map's content (phase), not only its style (amplitude) (reference: off)"
        ),
    )
    adapter_kd_weight: float | None = Field(
        None,
        ge=0,
        description=(
            "weight of the adapters' tau^2 KL toward the student (pulls the adapted teacher to the student); "
            "None = kd_weight, as the reference"
        ),
    )
    adapter_im_weight: float = Field(
        1.0,
        ge=0,
        description=(
            "weight of information maximisation (mean entropy minus entropy of the mean prediction) on every "
            "row of the adapted teacher's batch, unlabelled images included, in the adapters' objective (reference: 0)"
        ),
    )
    amplitude_temperature: float = Field(0.1, gt=0, description="softmax(theta / T) mixing weights")
    spectrum_floor: float = Field(1e-5, gt=0, description="guard for amplitude/phase of near-zero frequencies")
    gate_reduction: int = Field(16, ge=1, description="fusion-activation gate squeeze ratio")
    fusion_weight: float = Field(0.1, ge=0, description="weight of the fusion-activation loss in L_S")
    fusion_distance: Literal["circular", "angle"] = Field(
        "circular",
        description=(
            "how fusion-activation compares phases: 'circular' = 1 - cos of the angle difference on unit "
            "phasors (wrap-around aware; gate fed mean cos of the teacher's phases); 'angle' = the "
            "reference's MSE on raw angles (gate input ~0 by symmetry)"
        ),
    )
    fusion_min_side: int = Field(
        3,
        ge=1,
        description=(
            "stages whose maps are smaller than this on either side are left out of fusion-activation "
            "(a 2x2 or 1x1 map has a real spectrum: phases 0 or pi, no gradient); the reference uses every stage (1)"
        ),
    )
    kd_temperature: float = Field(4.0, gt=0, description="tau; KD terms are multiplied by tau^2")
    kd_weight: float = Field(1.0, ge=0, description="extra multiplier on tau^2 KL terms (reference: 1)")
    teacher_bn: Literal["adapt", "frozen"] = Field(
        "adapt",
        description=(
            "'adapt': the frozen teacher's BatchNorm normalises with, and collects, statistics of the "
            "target batches (reference behaviour, an implicit AdaBN); 'frozen': eval-mode BatchNorm with the "
            "source statistics. Applies to every method that runs the teacher: 4ds, kd and two_stage's KD stage"
        ),
    )


    def identity(self) -> dict:
        """The settings as plain data for keys (checkpoints, benchmark cells), leaving out the options added
        after keys were first recorded while they hold the value that reproduces the old behaviour, so
        checkpoints and results recorded before them still match."""
        return {
            name: value
            for name, value in self.model_dump(mode="json").items()
            if not (name in _LATER_OPTIONS and value == _LATER_OPTIONS[name])
        }


_LATER_OPTIONS = {"adapter_initial_mix": 0.5, "adapter_stages": None, "adapter_bn_affine": False, "adapter_im_weight": 0.0,
                  "adapter_tuned_modules": [], "adapter_residual": False, "adapter_kd_weight": None,
                  "adapter_tune_early": False}
"""Options added by the adapter study (issue 15), with the values that behave as before they existed."""


class DataConfig(_Strict):
    """How a domain's images become tensors, how it is split and how many labels are used."""

    image_size: int = Field(224, ge=8, description="side of the square network input")
    resize_size: int | None = Field(256, description="resize before cropping; None = image_size")
    random_crop: bool = Field(True, description="random crop in training (padded when resize == crop size)")
    horizontal_flip: bool = Field(True, description="off for digits and text")
    mean: tuple[float, float, float] = Field((0.485, 0.456, 0.406), description="per-channel normalisation mean")
    std: tuple[float, float, float] = Field(
        (0.229, 0.224, 0.225), description="per-channel normalisation std (each > 0: images are divided by it)"
    )
    val_fraction: float = Field(0.1, ge=0, lt=1, description="share of a domain in the validation split (hash-keyed)")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="share of a domain in the test split (hash-keyed)")
    label_budget: float | int | None = Field(
        None,
        description="labelled target images used for training: a fraction (0<b<=1) or a count per class; None = all",
    )
    budget_seed: int = Field(0, description="seed of the stratified labelled subset")
    batch_size: int = Field(32, ge=1, description="training batch size")
    unlabelled_batch_ratio: float = Field(
        1.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "semi-supervised training: each step also draws round(ratio * batch_size) of the domain's "
            "unlabelled images for the label-free terms (KD, fusion-activation, teacher BatchNorm statistics); "
            "0 = ignore unlabelled images. Has no effect when the domain has none"
        ),
    )
    eval_batch_size: int = Field(256, ge=1, description="batch size of validation, evaluation and prediction")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (0 = load in the training process)")
    dvc_remote: str | None = Field(
        None,
        description=(
            "DVC remote each ingested data version is pushed to and every step pulls its images from, by md5: "
            "a folder or s3://bucket/prefix ($AWS_ENDPOINT_URL for an S3-compatible server); "
            "None = <workspace>/.fourds/dvc-remote"
        ),
    )

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(channel <= 0 for channel in value):
            raise ValueError(f"every channel's std must be > 0 (images are divided by it), got {list(value)}")
        return value

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be < 1 (nothing left to train on)")
        if isinstance(self.label_budget, float) and not 0 < self.label_budget <= 1:
            raise ValueError("a fractional label_budget must be in (0, 1]")
        if isinstance(self.label_budget, int) and self.label_budget < 1:
            raise ValueError("a per-class label_budget must be >= 1")
        return self


class TrainConfig(_Strict):
    """The optimisation budget and loop of one training run."""

    epochs: int = Field(120, ge=1, description="training budget in passes over the training data")
    max_steps: int | None = Field(None, ge=1, description="if set, overrides epochs")
    optimizers: dict[Annotated[str, AfterValidator(_optimizer_group)], OptimizerConfig] = Field(
        default_factory=lambda: {
            "student": _reference_student_optimizer(),
            "adapters": _reference_adapter_optimizer(),
            "teacher": _default_teacher_optimizer(),
        },
        description=f"one optimiser per parameter group a method declares: {_listed(OPTIMIZER_GROUPS)}",
    )
    seed: int = Field(0, description="seed of initialisation, shuffling and augmentation")
    selection: Literal["last", "best_val"] = Field(
        "last", description="which weights to keep: the last step, or the best validation accuracy"
    )
    eval_every_steps: int | None = Field(None, ge=1, description="None = once per epoch")
    checkpoint_every_steps: int | None = Field(None, ge=1, description="None = once per epoch")
    max_grad_norm: float | None = Field(None, gt=0, description="clip each group's gradient norm; None = no clipping")
    device: Annotated[str, AfterValidator(check_device_name)] = Field(
        "auto", description=f"{DEVICE_NAMES}; auto = CUDA when present, else CPU"
    )
    deterministic: bool = Field(True, description="torch deterministic algorithms (warn-only where none exists)")
    progress: bool = Field(True, description="show progress bars")

    @field_validator("optimizers")
    @classmethod
    def _fill_missing_groups(cls, value: dict[str, OptimizerConfig]) -> dict[str, OptimizerConfig]:
        # A YAML that overrides only "student" keeps the reference optimiser for the others.
        defaults = {
            "student": _reference_student_optimizer(),
            "adapters": _reference_adapter_optimizer(),
            "teacher": _default_teacher_optimizer(),
        }
        return {**defaults, **value}


class ValidationConfig(_Strict):
    """Bounds of the Great Expectations suite on the per-image table."""

    min_images_per_class: int = Field(5, ge=1, description="every class needs at least this many images")
    max_class_imbalance: float = Field(
        20.0, ge=1, description="largest class count / smallest class count"
    )
    allowed_modes: list[str] = Field(
        default_factory=lambda: ["L", "RGB", "RGBA", "P", "LA"], description="accepted PIL image modes"
    )
    min_side: int = Field(8, ge=1, description="smallest accepted image width/height in pixels")
    max_side: int = Field(4096, ge=1, description="largest accepted image width/height in pixels")


class GuardConfig(_Strict):
    """The scratch guard: never hand over a distilled student that a plain student beats.

    A teacher from another domain can drag its student below one trained on the target
    labels alone (BENCHMARK.md saw it with reference 4Ds settings). With the guard on,
    ``distill`` also trains the student from scratch with the same budget and initial
    weights, scores both on the validation split, and keeps the scratch student when it
    is more accurate there. Costs one extra, cheaper student run (no teacher forward).
    """

    scratch_baseline: bool = Field(
        True, description="train a from-scratch student beside the distilled one and keep the better on validation"
    )
    margin: float = Field(
        0.0, ge=0, le=1, description="the scratch student must beat the distilled one's validation accuracy by more"
    )


class ExportConfig(_Strict):
    opset: int = Field(18, ge=17, description="ONNX opset (torch's exporter emits >= 18)")
    parity_batch_size: int = Field(3, ge=1, description="differs from the export example's batch on purpose")
    latency_batch_sizes: list[int] = Field(default_factory=lambda: [1, 64], description="batch sizes timed")
    latency_repeats: int = Field(20, ge=1, description="timed runs per batch size (median reported)")


class PromotionConfig(_Strict):
    """Gates a challenger must pass to become the domain's champion (docs/REGISTRY.md).

    Every challenger, a domain's first version included, must reach ``min_accuracy`` and
    beat the source teacher on the target test split; with a champion in place it must
    also reach the champion's accuracy, re-scored on the same test split, plus
    ``min_accuracy_gain``.
    """

    min_accuracy: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "target test accuracy a challenger needs at least; None = halfway between chance and 1, "
            "(1 + 1/num_classes) / 2 (0.55 for 10 classes, 0.75 for 2)"
        ),
    )
    min_accuracy_gain: float = Field(
        0.0, ge=0, description="challenger acc >= champion acc (re-scored on this run's test split) + this"
    )
    max_parity_abs_diff: float = Field(1e-4, gt=0, description="ONNX vs PyTorch max abs logit difference")
    max_latency_ms: float | None = Field(None, gt=0, description="ONNX batch-1 CPU latency budget")
    max_size_mb: float | None = Field(None, gt=0, description="ONNX file size budget")


class TrackingConfig(_Strict):
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; None = $MLFLOW_TRACKING_URI or sqlite in the workspace"
    )
    teacher_model_name: str = Field("fourds-teacher", description="registered model of teachers")
    student_model_prefix: str = Field("fourds-student-", description="registered model per domain: prefix + domain")
    experiment_prefix: str = Field("fourds-", description="MLflow experiment per domain: prefix + domain")
    mirror_checkpoints: bool | None = Field(
        None,
        description=(
            "copy each training checkpoint to the run's MLflow artifacts, where a retried step on any machine "
            "resumes from it; None = only when tracking is not the workspace's local SQLite store (a local run "
            "resumes from the run folder)"
        ),
    )


class RunConfig(_Strict):
    """Everything one distillation (or teacher-training) run needs."""

    method: str = Field("4ds", description=f"a method of fourds.method.registry: {_listed(method_names())}")
    model: ModelConfig = Field(default_factory=ModelConfig)
    fourds: FourDsConfig = Field(default_factory=FourDsConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    teacher_train: TrainConfig = Field(
        default_factory=TrainConfig, description="teacher training on a source domain, and two_stage fine-tuning"
    )
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @field_validator("method")
    @classmethod
    def _registered_method(cls, value: str) -> str:
        method_spec(value)  # a ValueError listing the registered names
        return value

    def config_hash(self) -> str:
        """sha256 of the canonical JSON form: equal configs hash equal whatever the YAML layout."""
        return canonical_json_sha256(self.model_dump(mode="json"))


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file and the field."""


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Read a YAML config (or the defaults when ``path`` is None) and apply nested overrides.

    The YAML may be a bare RunConfig mapping, or a ZenML run configuration whose
    ``parameters: config:`` holds it (so ``zenml_config.yaml`` works as ``--config``).
    An empty file and a key given twice are errors: both are almost certainly mistakes
    (the defaults are 120 epochs at 224 px; YAML would keep the last of two values).
    """
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        raw = _read_yaml_mapping(path)
    if overrides:
        raw = _deep_merge(raw, overrides)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}invalid configuration: {_describe_errors(exc)}") from exc


def _read_yaml_mapping(path: Path) -> dict:
    """The RunConfig mapping of a YAML file: bare, or under ``parameters: config:``."""
    text = path.read_text()
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
        if document is not None:
            _refuse_duplicate_keys(document, path)
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if loaded is None:
        raise ConfigError(f"{path}: the config file is empty (no settings at all); give at least one setting, "
                          "or leave --config out to use the defaults")
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(loaded).__name__}")
    if "parameters" not in loaded:
        return loaded
    parameters = loaded["parameters"]
    config = parameters.get("config") if isinstance(parameters, dict) else None
    if not isinstance(config, dict):
        found = "nothing" if config is None else f"a {type(config).__name__}"
        raise ConfigError(f"{path}: parameters.config: expected the RunConfig mapping, found {found}")
    return config


def _refuse_duplicate_keys(node: yaml.Node, path: Path, where: str = "") -> None:
    """A key given twice in one mapping: YAML silently keeps the last value; we name both lines."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key != "<<":
                key_path = f"{where}.{key}" if where else str(key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConfigError(f"{path}: duplicate key {key_path} at line {line} (first given at line "
                                      f"{seen[key]}); YAML would keep only the last value")
                seen[key] = line
                _refuse_duplicate_keys(value_node, path, key_path)
            else:
                _refuse_duplicate_keys(value_node, path, where)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, path, f"{where}[{index}]")


_UNION_MEMBERS = {"float", "int", "str", "bool", "none"}
"""Where pydantic tried each type of a union, it adds the type to the error's location: not a key."""


def _describe_errors(exc: ValidationError) -> str:
    """``key.path: message`` per problem, e.g. ``train.optimizers.studnet: unknown optimiser group ...``."""
    problems: list[str] = []
    for error in exc.errors():
        parts = [str(part) for part in error["loc"] if part != "[key]"]
        while parts and parts[-1] in _UNION_MEMBERS:
            parts.pop()
        message = error["msg"].removeprefix("Value error, ")
        problem = f"{'.'.join(parts) or '<root>'}: {message}"
        if problem not in problems:
            problems.append(problem)
    return "; ".join(problems)


def _deep_merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_reference_markdown() -> str:
    """Every RunConfig field with its default and meaning, as the markdown table in docs/CONFIGURATION.md."""
    rows = ["| field | default | meaning |", "|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                walk(type(default), f"{prefix}{name}.")
                continue
            if isinstance(default, dict):
                default = ", ".join(f"{group}: {opt.name} lr={opt.lr}" for group, opt in default.items())
            meaning = (field.description or "").replace("|", "/")
            rows.append(f"| `{prefix}{name}` | `{default}` | {meaning} |")

    walk(RunConfig, "")
    return "\n".join(rows) + "\n"
