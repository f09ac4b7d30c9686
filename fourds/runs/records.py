"""The records the pieces of a pipeline run hand to each other, through the orchestrator's artifact store.

No piece reads another piece's disk: a step may run in its own pod. Facts travel as the
records' JSON; models travel inside the records as bytes (:class:`WithFiles`: safetensors
weights, the ONNX file), which the artifact store keeps as files beside the JSON (never a
pickle; ``pipelines/materializers.py``); images travel through the DVC remote, by md5.
Paths in a record say where the producing piece wrote a file on its own machine: for
display, never for reading.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from fourds.registry.promotion import ChampionScore


class WithFiles(BaseModel):
    """A record that carries files (by file name) as bytes, apart from its JSON."""

    files: dict[str, bytes] = Field(default_factory=dict, exclude=True, repr=False)

    def write_files(self, folder: Path) -> dict[str, Path]:
        """Write every file into ``folder`` (this machine's copy); returns their paths by name."""
        folder.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, data in self.files.items():
            written[name] = folder / name
            written[name].write_bytes(data)
        return written


class RunContext(BaseModel):
    """Identity of one pipeline run, shared by every step after the first."""

    workspace_root: str
    """The workspace of the command that started the run; a piece works in it unless ``$FOURDS_STEP_WORKSPACE``
    gives the piece its own."""
    run_name: str
    """The orchestrator's (ZenML's) run name; also the name of the run folder in each step's workspace."""
    zenml_run_id: str
    mlflow_experiment_id: str
    mlflow_run_id: str
    mlflow_tracking_uri: str = ""
    """Where the MLflow run lives (a server, or the starting workspace's SQLite store)."""
    domain: str


class IngestedDomain(BaseModel):
    """A domain as this run ingested it: pushed to the DVC remote, and pulled from there by md5 by every
    piece that reads its images (``fourds.runs.data.domain_folder``)."""

    name: str
    domain_dir: str
    """Where the ingest wrote it, on the ingesting machine (for display)."""
    images_dir: str
    table_path: str
    table_csv: str = ""
    """The per-image table (``images.csv``) itself: splits and labels travel with the record."""
    table_sha256: str = ""
    dvc_remote: str = ""
    """The DVC remote the data version was pushed to (a folder or ``s3://...``)."""
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


class TeacherWeights(WithFiles):
    """The frozen teacher, resolved from the registry or an imported file; its weights in ``files``."""

    weights_path: str
    """Where the resolving piece wrote it (for display); read it with :meth:`local_weights`."""
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

    def local_weights(self, folder: Path) -> Path:
        return self.write_files(folder)[Path(self.weights_path).name]


class ValidationSummary(BaseModel):
    """Outcome of the Great Expectations suite; a failed suite never gets this far."""

    success: bool
    results_json: str
    """The GX result among the run's MLflow artifacts (``runs:/<run id>/validation/validation.json``)."""
    html_report: str | None = None
    statistics: dict = Field(default_factory=dict)


class TrainedWeights(WithFiles):
    """Networks a training piece produced, by role (``student``, ``adapted_teacher``, ``finetuned_teacher``,
    ``teacher``...): their safetensors bytes in ``files`` (``<role>.safetensors``); ``arch`` by the same roles."""

    weights: dict[str, str]
    """Where the training piece wrote each (for display); read them with :meth:`local_weights`."""
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

    def local_weights(self, folder: Path) -> dict[str, Path]:
        """This machine's copy of each network's weights file, by role."""
        written = self.write_files(folder)
        return {role: written[Path(path).name] for role, path in self.weights.items()}


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


class ExportedOnnx(WithFiles):
    """The student as ONNX, checked against PyTorch; the file itself in ``files``."""

    path: str
    """Where the export piece wrote it (for display); read it with :meth:`local_file`."""
    sha256: str
    size_bytes: int
    opset: int
    parity_max_abs_diff: float
    latency_ms: dict[str, float] = Field(default_factory=dict)
    """Median onnxruntime CPU latency by batch size (string keys: JSON-friendly)."""

    def local_file(self, folder: Path) -> Path:
        return self.write_files(folder)[Path(self.path).name]


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
