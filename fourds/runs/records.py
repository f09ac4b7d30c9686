"""The small records the pieces of a pipeline run hand to each other (an orchestrator stores them as JSON).

Models travel as safetensors files inside the run folder (``Workspace.run_dir``); the
records below carry their paths and the facts later pieces and the lineage tags need.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from fourds.registry.promotion import ChampionScore


class RunContext(BaseModel):
    """Identity of one pipeline run, shared by every step after the first."""

    workspace_root: str
    run_name: str
    """The orchestrator's (ZenML's) run name; also the name of the run folder in the workspace."""
    run_dir: str
    zenml_run_id: str
    mlflow_experiment_id: str
    mlflow_run_id: str
    domain: str


class IngestedDomain(BaseModel):
    """A domain's images inside the DVC-tracked data folder, as used by this run."""

    name: str
    domain_dir: str
    images_dir: str
    table_path: str
    classes: list[str]
    num_images: int
    unlabelled_images: int = 0
    """How many of ``num_images`` have no label (split ``unlabelled``)."""
    domain_md5: str
    """DVC md5 of the domain's folder: exactly the data this run used."""
    data_md5: str
    """DVC md5 of the whole data folder (what ``data.dvc`` records)."""
    git_revision: str | None
    """HEAD of the git repository holding the workspace (and ``data.dvc``); None outside git."""
    data_dvc_dirty: bool | None = None
    source: str


class TeacherWeights(BaseModel):
    """The frozen teacher, resolved from the registry or an imported file."""

    weights_path: str
    arch: str
    stem: str
    classes: list[str]
    reference: str
    """What the user asked for (``fourds-teacher@photos``, ``fourds-teacher/3``, a file)."""
    registered_name: str | None = None
    """The registered model, or the weights file's path for an unregistered teacher."""
    registered_version: str | None = None
    """The registry version, or ``sha256:<hex>`` of an unregistered weights file."""
    source_data_md5: str | None = None
    """DVC md5 of the data the teacher was trained on, when its version records it."""


class ValidationSummary(BaseModel):
    """Outcome of the Great Expectations suite; a failed suite never gets this far."""

    success: bool
    results_json: str
    html_report: str | None = None
    statistics: dict = Field(default_factory=dict)


class TrainedWeights(BaseModel):
    """Weights files a training piece wrote, by role (``student``, ``adapted_teacher``, ``finetuned_teacher``,
    ``teacher``...); ``arch`` by the same roles."""

    weights: dict[str, str]
    arch: dict[str, str]
    classes: list[str]
    stem: str
    method: str
    wall_seconds: float
    student_method: str | None = None
    """The method that produced ``student``: ``method``, or ``student_scratch`` when the scratch guard kept that."""
    guard: str = "off"
    """The scratch guard's one-line outcome (``fourds.training.guard.GuardReport.summary``), or ``off``."""
    images_per_second: float | None = None
    unlabelled_images_used: int = 0
    """Unlabelled images the student's training drew from (0: none in the domain, ``data.unlabelled_batch_ratio``
    0, or a method without label-free terms)."""
    final_metrics: dict[str, float] = Field(default_factory=dict)


class EvaluationSummary(BaseModel):
    """Test-split results of every evaluated model, and the report files."""

    metrics: dict[str, float]
    """Flat, MLflow-style names, ``test/<role>/<metric>``, e.g. ``test/student/accuracy``, ``test/student/ece``."""
    per_class_accuracy: dict[str, dict[str, float]] = Field(default_factory=dict)
    report_files: list[str] = Field(default_factory=list)
    champion: ChampionScore | None = None
    """The domain's champion when this run was evaluated, re-scored on this run's test split: what promotion
    compares (its ``accuracy`` is also ``test/champion/accuracy``), beside the accuracy recorded at its
    registration, or why it could not be scored. None: the domain had no champion, or a teacher run."""


class ExportedOnnx(BaseModel):
    """The student as ONNX, checked against PyTorch."""

    path: str
    sha256: str
    size_bytes: int
    opset: int
    parity_max_abs_diff: float
    latency_ms: dict[str, float] = Field(default_factory=dict)
    """Median onnxruntime CPU latency by batch size (string keys: JSON-friendly)."""


class RegisteredVersion(BaseModel):
    """A model version in the MLflow registry, with the lineage tags written on it."""

    model_name: str
    version: str
    tags: dict[str, str] = Field(default_factory=dict)


class PromotionOutcome(BaseModel):
    """What the promotion policy decided for a registered version."""

    model_name: str
    version: str
    promoted: bool
    reasons: list[str]
    """One line per promotion gate, PASS or FAIL with the numbers compared."""
    champion_version: str | None
    """The champion after the decision (None: the domain has none)."""
