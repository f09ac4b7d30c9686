"""Recipes: a :class:`~fourds.config.RunConfig` in, trained networks out.

``train_teacher`` trains a teacher on a source domain. ``distill`` produces a student
for a target domain with ``config.method``:

* ``4ds``: one stage, Fourier adapters in the frozen teacher and fusion-activation;
* ``kd``: vanilla KD from the frozen source teacher;
* ``student_scratch``: the student on the target labels only;
* ``two_stage``: fine-tune a copy of the teacher on the target labels
  (``config.teacher_train``), then vanilla KD from it.

With ``config.guard.scratch_baseline`` (the default) a distilling method also trains a
``student_scratch`` baseline with the same budget and initial weights, and the student
that scores higher on the validation split is the one returned (the scratch guard,
:mod:`fourds.training.guard`).

Every method's student gets the same ``config.train`` budget and starts from the same
initial weights (seeded with ``config.train.seed`` just before it is built), so the
comparison is fair. The teacher passed in is never modified: every method works on a
deep copy (4Ds with ``teacher_bn="adapt"`` moves BatchNorm statistics, KD freezes
parameters, and training moves networks to the device).
"""

from __future__ import annotations

import copy
import hashlib
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from fourds.config import RunConfig, TrainConfig
from fourds.devices import select_device
from fourds.hashing import SPACED_SEPARATORS, canonical_json_sha256
from fourds.method import Method, Supervised, build_method, method_spec
from fourds.models import build_classifier
from fourds.training import guard as guard_decision
from fourds.training.callbacks import Callback
from fourds.training.guard import GuardReport
from fourds.training.reproducibility import seed_everything
from fourds.training.trainer import Trainer, TrainResult

FINETUNE_STAGE = "finetune_teacher"
DISTILL_STAGE = "distill"
GUARD_STAGE = "scratch_guard"
TEACHER_STAGE = "teacher"


@dataclass
class TrainedModel:
    """A trained network (eval mode, on the CPU) and how its training went."""

    model: nn.Module
    result: TrainResult


STUDENT = "student"
ADAPTED_TEACHER = "adapted_teacher"
FINETUNED_TEACHER = "finetuned_teacher"
DISTILLED_STUDENT = "distilled_student"
SCRATCH_STUDENT = "scratch_student"


@dataclass
class ProducedNetwork:
    """One network a distillation produced: eval mode, on the CPU, with its architecture and the method
    that trained it."""

    model: nn.Module
    arch: str
    method: str


@dataclass
class DistillResult:
    """What one distillation produced; networks are in eval mode, on the CPU."""

    method: str
    student: nn.Module
    train_results: dict[str, TrainResult]
    """By stage: ``"finetune_teacher"`` (two_stage only), then ``"distill"``."""
    stage_seconds: dict[str, float]
    wall_seconds: float
    """All stages, teacher fine-tuning included: the method's full cost."""
    images_per_second: float
    """Training throughput of the student's stage, comparable across methods."""
    adapted_teacher: nn.Module | None = None
    """4ds only: the teacher with its trained Fourier adapters (returns logits)."""
    finetuned_teacher: nn.Module | None = None
    """two_stage only: the teacher after fine-tuning on the target labels."""
    guard: GuardReport | None = None
    """The scratch guard's comparison; None when it was off (or the method is student_scratch)."""
    distilled_student: nn.Module | None = None
    """The distilled student when the guard kept the scratch one instead (for evaluation only)."""
    scratch_student: nn.Module | None = None
    """The guard's scratch student when the distilled one was kept (for evaluation only: the
    "what would labels alone have given" figure beside the distilled student)."""
    unlabelled_images: int = 0
    """Unlabelled target images the student stage drew from (0: none given, ratio 0, or a method without
    label-free terms)."""
    teacher_arch: str = ""
    student_arch: str = ""

    def networks(self) -> dict[str, ProducedNetwork]:
        """Every network this distillation produced, by evaluation role: ``student`` (the one kept), and
        whichever exist of ``adapted_teacher``, ``finetuned_teacher``, ``distilled_student`` (the guard kept
        the scratch student instead) and ``scratch_student`` (the guard's runner-up)."""
        candidates = {
            STUDENT: (self.student, self.student_arch, self.student_method),
            ADAPTED_TEACHER: (self.adapted_teacher, self.teacher_arch, self.method),
            FINETUNED_TEACHER: (self.finetuned_teacher, self.teacher_arch, self.method),
            DISTILLED_STUDENT: (self.distilled_student, self.student_arch, self.method),
            SCRATCH_STUDENT: (self.scratch_student, self.student_arch, "student_scratch"),
        }
        return {role: ProducedNetwork(model, arch, method)
                for role, (model, arch, method) in candidates.items() if model is not None}

    @property
    def student_method(self) -> str:
        """The method that produced ``student``: ``student_scratch`` when the guard replaced it."""
        return self.guard.kept_method if self.guard is not None else self.method

    @property
    def metrics(self) -> dict[str, float]:
        """The student stage's final metrics; the fine-tuning and guard stages' under ``finetune_teacher/``
        and ``scratch_guard/``; the guard's decision under ``guard/``."""
        metrics = dict(self.train_results[DISTILL_STAGE].metrics)
        for stage in (FINETUNE_STAGE, GUARD_STAGE):
            if stage in self.train_results:
                metrics |= {f"{stage}/{k}": v for k, v in self.train_results[stage].metrics.items()}
        if self.guard is not None:
            metrics |= self.guard.metrics()
        return metrics


def train_teacher(
    config: RunConfig,
    train_set: Dataset,
    val_set: Dataset | None,
    *,
    num_classes: int,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: Path | None = None,
) -> TrainedModel:
    """Train ``config.model.teacher_arch`` with cross-entropy under ``config.teacher_train``."""
    seed_everything(config.teacher_train.seed, config.teacher_train.deterministic)
    teacher = build_classifier(
        config.model.teacher_arch, num_classes, pretrained=config.model.pretrained, stem=config.model.stem
    )
    result = _run_stage(
        Supervised(teacher, group="teacher"),
        config.teacher_train,
        config,
        train_set,
        val_set,
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        description=f"teacher {config.model.teacher_arch}",
        checkpoint_key=_checkpoint_key(config, TEACHER_STAGE),
    )
    return TrainedModel(_finished(teacher), result)


def distill(
    config: RunConfig,
    teacher: nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    *,
    num_classes: int,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: Path | None = None,
    unlabelled_set: Dataset | None = None,
) -> DistillResult:
    """Produce a student for the target domain with ``config.method`` (see the module docstring).

    ``unlabelled_set``: the target domain's unlabelled images (items ``(image, -1)``). The
    student stage of ``4ds``, ``kd`` and ``two_stage`` draws ``config.data.unlabelled_batch_ratio``
    times the batch size of them at every step for its label-free terms, the same images
    at the same step for every method of a seed; cross-entropy stages (teacher fine-tuning,
    the scratch student) use the labelled images only.

    With ``checkpoint_dir``, each stage checkpoints into its own sub-folder and resumes
    from it; the checkpoints are tied to this config and this teacher's weights. In
    two_stage, the fine-tuning stage reports to ``callbacks`` with metric names under
    ``finetune_teacher/``, so both stages can share one MLflow run.
    """
    spec = method_spec(config.method)  # refuses an unknown name before any work
    started = time.perf_counter()
    teacher_key = _weights_fingerprint(teacher)
    working_teacher = copy.deepcopy(teacher)
    results: dict[str, TrainResult] = {}
    seconds: dict[str, float] = {}
    finetuned = None

    if spec.finetune_teacher:
        stage_start = time.perf_counter()
        seed_everything(config.teacher_train.seed, config.teacher_train.deterministic)
        results[FINETUNE_STAGE] = _run_stage(
            Supervised(working_teacher, group="teacher"),
            config.teacher_train,
            config,
            train_set,
            val_set,
            callbacks=[_StageCallback(callback, FINETUNE_STAGE) for callback in callbacks],
            checkpoint_dir=checkpoint_dir / FINETUNE_STAGE if checkpoint_dir else None,
            description=f"{config.method}: fine-tune teacher {config.model.teacher_arch}",
            checkpoint_key=_checkpoint_key(config, FINETUNE_STAGE, teacher_key),
        )
        seconds[FINETUNE_STAGE] = time.perf_counter() - stage_start
        # A snapshot: under teacher_bn="adapt" the KD stage moves the working teacher's BatchNorm
        # statistics, and the fine-tuned teacher is reported as fine-tuning left it.
        finetuned = copy.deepcopy(working_teacher)

    stage_start = time.perf_counter()
    seed_everything(config.train.seed, config.train.deterministic)
    student = build_classifier(
        config.model.student_arch, num_classes, pretrained=config.model.pretrained, stem=config.model.stem
    )
    method = build_method(spec.student_method, config, teacher=working_teacher, student=student)
    results[DISTILL_STAGE] = _run_stage(
        method,
        config.train,
        config,
        train_set,
        val_set,
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir / DISTILL_STAGE if checkpoint_dir else None,
        description=f"{config.method}: {config.model.teacher_arch} -> {config.model.student_arch}",
        checkpoint_key=_checkpoint_key(config, DISTILL_STAGE, teacher_key),
        unlabelled_set=unlabelled_set,
    )
    seconds[DISTILL_STAGE] = time.perf_counter() - stage_start

    evaluated = method.evaluated_models()
    kept, guard, distilled_student, scratch_student = student, None, None, None
    if config.guard.scratch_baseline and spec.needs_teacher:
        guard, scratch = _scratch_guard(
            config, student, train_set, val_set, num_classes=num_classes, callbacks=callbacks,
            checkpoint_dir=checkpoint_dir, results=results, seconds=seconds,
        )
        if guard.decision == guard_decision.KEPT_SCRATCH:
            kept, distilled_student = scratch, _finished(student)
        elif scratch is not None:
            scratch_student = _finished(scratch)
    return DistillResult(
        method=config.method,
        student=_finished(kept),
        train_results=results,
        stage_seconds=seconds,
        wall_seconds=time.perf_counter() - started,
        images_per_second=results[DISTILL_STAGE].images_per_second,
        adapted_teacher=_finished(evaluated["adapted_teacher"]) if "adapted_teacher" in evaluated else None,
        finetuned_teacher=_finished(finetuned) if finetuned is not None else None,
        guard=guard,
        distilled_student=distilled_student,
        scratch_student=scratch_student,
        unlabelled_images=results[DISTILL_STAGE].unlabelled_images,
        teacher_arch=config.model.teacher_arch,
        student_arch=config.model.student_arch,
    )


def _scratch_guard(
    config: RunConfig,
    distilled: nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    *,
    num_classes: int,
    callbacks: Sequence[Callback],
    checkpoint_dir: Path | None,
    results: dict[str, TrainResult],
    seconds: dict[str, float],
) -> tuple[GuardReport, nn.Module | None]:
    """Train the scratch baseline and judge it against ``distilled``; returns the report and the scratch
    student (None when the guard was skipped)."""
    if val_set is None or len(val_set) == 0:
        warnings.warn(
            f"scratch guard skipped: no validation images to compare the {config.method} student with a "
            "scratch one (give the target domain a val split, or set guard.scratch_baseline: false)",
            stacklevel=3,
        )
        return guard_decision.skipped(config.method), None
    stage_start = time.perf_counter()
    # Same seed just before building: the scratch student starts from the distilled one's initial weights.
    seed_everything(config.train.seed, config.train.deterministic)
    scratch = build_classifier(
        config.model.student_arch, num_classes, pretrained=config.model.pretrained, stem=config.model.stem
    )
    results[GUARD_STAGE] = _run_stage(
        Supervised(scratch, group="student"),
        config.train,
        config,
        train_set,
        val_set,
        callbacks=[_StageCallback(callback, GUARD_STAGE) for callback in callbacks],
        checkpoint_dir=checkpoint_dir / GUARD_STAGE if checkpoint_dir else None,
        description=f"scratch guard: {config.model.student_arch} on the target labels only",
        checkpoint_key=_checkpoint_key(config, GUARD_STAGE),
    )
    seconds[GUARD_STAGE] = time.perf_counter() - stage_start
    report = guard_decision.choose_student(
        distilled,
        scratch,
        val_set,
        method=config.method,
        num_classes=num_classes,
        margin=config.guard.margin,
        batch_size=config.data.eval_batch_size,
        device=select_device(config.train.device),
    )
    return report, scratch


def _run_stage(
    method: Method,
    train_config: TrainConfig,
    config: RunConfig,
    train_set: Dataset,
    val_set: Dataset | None,
    *,
    callbacks: Sequence[Callback],
    checkpoint_dir: Path | None,
    description: str,
    checkpoint_key: str,
    unlabelled_set: Dataset | None = None,
) -> TrainResult:
    trainer = Trainer(
        method,
        train_config,
        batch_size=config.data.batch_size,
        eval_batch_size=config.data.eval_batch_size,
        num_workers=config.data.num_workers,
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        description=description,
        checkpoint_key=checkpoint_key,
        unlabelled_batch_size=round(config.data.unlabelled_batch_ratio * config.data.batch_size),
    )
    return trainer.fit(train_set, val_set, unlabelled_set=unlabelled_set)


def _finished(model: nn.Module) -> nn.Module:
    return model.cpu().eval()


def _checkpoint_key(config: RunConfig, stage: str, teacher_fingerprint: str = "") -> str:
    """What a stage's checkpoint must share with this run besides its TrainConfig.

    The method and model choices, the 4Ds settings, the data transforms and label budget,
    and the teacher's weights. Loader settings (workers, evaluation batch) and where data
    versions are stored (the DVC remote) may change.
    """
    data = config.data.model_dump(mode="json", exclude={"num_workers", "eval_batch_size", "dvc_remote"})
    identity = {
        "stage": stage,
        "method": config.method,
        "model": config.model.model_dump(mode="json"),
        "fourds": config.fourds.identity(),
        "data": data,
        "teacher": teacher_fingerprint,
    }
    # Spaced separators: the spelling existing checkpoints were keyed with.
    return canonical_json_sha256(identity, separators=SPACED_SEPARATORS)


def _weights_fingerprint(model: nn.Module) -> str:
    """sha256 over a network's state (names and values), to tie checkpoints to one teacher."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class _StageCallback(Callback):
    """Forwards a stage's hooks to a callback with metric names under ``<stage>/``."""

    def __init__(self, inner: Callback, stage: str):
        self.inner = inner
        self.stage = stage

    def _named(self, metrics: dict[str, float]) -> dict[str, float]:
        # History entries carry their position as "step" and "epoch": those keep their names.
        return {name if name in ("step", "epoch") else f"{self.stage}/{name}": value for name, value in metrics.items()}

    def on_train_start(self, info: dict) -> None:
        self.inner.on_train_start({**info, "stage": self.stage})

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        self.inner.on_step_end(step, self._named(metrics))

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.inner.on_eval(step, self._named(metrics))

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.inner.on_epoch_end(epoch, self._named(metrics))

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.inner.on_checkpoint(step, path)

    def on_train_end(self, result: TrainResult) -> None:
        named = replace(result, metrics=self._named(result.metrics), history=[self._named(e) for e in result.history])
        self.inner.on_train_end(named)
