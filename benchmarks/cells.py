"""One cell of the benchmark (task, budget, method, seed) and the source teacher, run through the library.

Nothing here trains or evaluates by itself: teachers come from
``fourds.training.recipes.train_teacher``, students from ``distill`` (which runs 4ds,
kd, student_scratch and two_stage), accuracies from
``fourds.evaluation.metrics.evaluate_classifier``. This module chooses the data of a
cell, times it, and records the outcome.

Every finished cell is appended as one JSON line to the suite's ``cells.jsonl`` in the
work folder, keyed by a fingerprint of everything that decides its numbers; a rerun
skips the cells it finds there, so an interrupted suite resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from benchmarks.domains import (
    Domain,
    evaluation_rows,
    labelled_images,
    monitoring_rows,
    source_training_rows,
    split_validation,
    unlabelled_images,
)
from benchmarks.suites import BudgetSpec, Suite, TaskSpec, cell_run_config, fingerprint, split_guard, teacher_run_config
from fourds.config import RunConfig
from fourds.data.datasets import unlabelled_dataset
from fourds.evaluation.metrics import evaluate_classifier
from fourds.models import load_classifier, save_classifier
from fourds.training.callbacks import Callback
from fourds.training.recipes import DISTILL_STAGE, FINETUNE_STAGE, distill, train_teacher


class CellStore:
    """An append-only JSON-lines file of finished records; the last record of a key wins."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict] = {}
        if path.is_file():
            for line_number, line in enumerate(path.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    # A line cut short by a crash while writing: that cell simply runs again.
                    print(f"warning: {path}:{line_number} is not valid JSON; ignoring it", flush=True)
                    continue
                self.records[record["key"]] = record

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.records[record["key"]] = record


class ProgressPrinter(Callback):
    """One line every ``every`` steps: step, objectives, seconds per step (readable in a log file)."""

    def __init__(self, label: str, every: int):
        self.label = label
        self.every = max(1, every)
        self.total = 0
        self.started = 0.0

    def on_train_start(self, info: dict) -> None:
        self.total = info["total_steps"]
        self.started = time.perf_counter()
        stage = f" [{info['stage']}]" if "stage" in info else ""
        print(f"    {self.label}{stage}: {info['total_steps']} steps on {info['train_size']} images", flush=True)

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        if step % self.every and step != self.total:
            return
        objectives = "  ".join(
            f"{name.split('/')[-1]} {value:.3f}" for name, value in metrics.items() if "/objective/" in name
        )
        per_step = (time.perf_counter() - self.started) / step
        print(f"      step {step}/{self.total}  {objectives}  ({per_step:.2f} s/step)", flush=True)

    def on_train_end(self, result) -> None:
        # Reset for a second stage (two_stage) reusing this printer.
        self.started = time.perf_counter()


@dataclass
class Teacher:
    model: nn.Module
    record: dict


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def teacher_key(suite: Suite, task: TaskSpec, source: Domain) -> str:
    config = teacher_run_config(suite, task, progress=False)
    return fingerprint(
        {
            "teacher_train": config.teacher_train.model_dump(mode="json", exclude={"progress", "device"}),
            "model": config.model.model_dump(mode="json"),
            "data": config.data.model_dump(mode="json"),
            "images_per_class": suite.schedule.teacher_images_per_class,
            "source": source.content_digest(),
        }
    )


def teacher_weights_path(suite: Suite, task: TaskSpec, source: Domain, teachers_dir: Path) -> Path:
    return teachers_dir / f"{slug(task.source.name)}-{suite.teacher_arch}-{teacher_key(suite, task, source)}.safetensors"


def recorded_teacher(suite: Suite, task: TaskSpec, source: Domain, teachers_dir: Path) -> dict | None:
    """The record of the teacher these settings would use, if it was trained before."""
    record_path = teacher_weights_path(suite, task, source, teachers_dir).with_suffix(".json")
    return json.loads(record_path.read_text()) if record_path.is_file() else None


def ensure_teacher(
    suite: Suite,
    task: TaskSpec,
    source: Domain,
    target: Domain,
    *,
    teachers_dir: Path,
    progress_bar: bool,
) -> Teacher:
    """The source teacher of ``task``: loaded from ``teachers_dir`` when trained before with these settings."""
    key = teacher_key(suite, task, source)
    weights = teacher_weights_path(suite, task, source, teachers_dir)
    record_path = weights.with_suffix(".json")
    if weights.is_file() and record_path.is_file():
        model, _ = load_classifier(weights, arch=suite.teacher_arch, classes=source.classes, stem=task.stem)
        record = json.loads(record_path.read_text())
        print(f"  teacher {suite.teacher_arch} on {source.name}: cached ({weights.name})", flush=True)
        return Teacher(model, record)

    config = teacher_run_config(suite, task, progress=progress_bar)
    rows = source_training_rows(source, suite.schedule.teacher_images_per_class)
    train_set = source.dataset(rows, config.data, train=True, classes=source.classes)
    print(f"  teacher {suite.teacher_arch} on {source.name}: training from scratch on {len(rows)} images", flush=True)
    load_before = load_average()
    started = time.perf_counter()
    trained = train_teacher(
        config,
        train_set,
        None,
        num_classes=len(source.classes),
        callbacks=[ProgressPrinter(f"teacher {source.name}", every=max(1, suite.schedule.teacher_steps // 10))],
        checkpoint_dir=teachers_dir / f"checkpoints-{key}",
    )
    train_seconds = time.perf_counter() - started
    test_rows = suite.schedule.test_images_per_class
    source_eval = _evaluate(
        trained.model, source.dataset(evaluation_rows(source, test_rows), config.data, train=False, classes=source.classes),
        source.classes, config.data.eval_batch_size,
    )
    target_eval = _evaluate(
        trained.model, target.dataset(evaluation_rows(target, test_rows), config.data, train=False, classes=source.classes),
        source.classes, config.data.eval_batch_size,
    )
    record = {
        "kind": "teacher",
        "key": key,
        "task": task.name,
        "arch": suite.teacher_arch,
        "source": source.name,
        "classes": source.classes,
        "source_train_images": len(rows),
        "steps": trained.result.steps,
        "batch_size": config.data.batch_size,
        "optimizer": suite.schedule.teacher_optimizer,
        "lr": suite.schedule.teacher_lr,
        "wall_seconds": round(train_seconds, 2),
        "images_per_second": round(trained.result.images_per_second, 2),
        "parameters": _parameters(trained.model),
        "source_test_accuracy": source_eval["accuracy"],
        "source_test_images": source_eval["images"],
        "target_test_accuracy": target_eval["accuracy"],
        "target_test_images": target_eval["images"],
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "finished_at": now(),
    }
    teachers_dir.mkdir(parents=True, exist_ok=True)
    save_classifier(trained.model, weights, arch=suite.teacher_arch, classes=source.classes, stem=task.stem)
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(
        f"  teacher done in {train_seconds:.0f} s: {source.name} test {source_eval['accuracy']:.3f}, "
        f"{target.name} test {target_eval['accuracy']:.3f} (source only)",
        flush=True,
    )
    return Teacher(trained.model, record)


def cell_key(suite: Suite, task: TaskSpec, budget: BudgetSpec, method: str, seed: int, teacher_record: dict) -> str:
    return fingerprint(
        {
            "settings": suite.key_settings(),
            "task": dataclasses.asdict(task),
            "budget": dataclasses.asdict(budget),
            "method": method,
            "seed": seed,
            "teacher": teacher_record["key"],
        }
    )


def run_cell(
    suite: Suite,
    task: TaskSpec,
    budget: BudgetSpec,
    method: str,
    seed: int,
    *,
    teacher: Teacher,
    target: Domain,
    key: str,
    progress_bar: bool,
    keep_student: Path | None = None,
) -> dict:
    """Distil (or train) one student with ``method`` and evaluate it on the target test split.

    A guarded method (``4ds+guard``) holds a validation quarter out of the same labelled images
    (``split_validation``) for the scratch guard to judge on, and trains on the rest. Otherwise
    the suite's monitoring images (if any) are the validation split, read only to record curves.
    In the semi-supervised setting the rest of the target training split is the unlabelled pool.
    """
    config = cell_run_config(suite, task, method, seed, progress=progress_bar)
    monitored = monitoring_rows(target, suite.schedule.monitor_images_per_class)
    rows = labelled_images(target, budget, seed, held_out=monitored)
    # From the whole label budget: the guard's held-out quarter must not come back as unlabelled images.
    unlabelled_rows = unlabelled_images(target, rows, monitored) if suite.unlabelled_ratio else None
    val_rows = None if monitored.empty else monitored
    if split_guard(method)[1]:
        rows, val_rows = split_validation(rows, seed)
    outcome = train_and_evaluate(
        config,
        teacher,
        target,
        rows,
        evaluation_rows(target, suite.schedule.test_images_per_class),
        label=method,
        keep_student=keep_student,
        val_rows=val_rows,
        unlabelled_rows=unlabelled_rows,
    )
    return {
        "kind": "cell",
        "key": key,
        "suite": suite.name,
        "task": task.name,
        "budget": budget.name,
        "method": method,
        "seed": seed,
        "evaluated_on": "test",
        **outcome,
    }


def train_and_evaluate(
    config: RunConfig,
    teacher: Teacher,
    target: Domain,
    train_rows: pd.DataFrame,
    scored_rows: pd.DataFrame,
    *,
    label: str,
    keep_student: Path | None = None,
    val_rows: pd.DataFrame | None = None,
    unlabelled_rows: pd.DataFrame | None = None,
    also_scored: dict[str, pd.DataFrame] | None = None,
) -> dict:
    """``distill`` on ``train_rows`` (the last step is kept), then score every trained network on
    ``scored_rows`` (the test split for results, a validation split for studies). ``val_rows`` go to
    ``distill`` as its validation split: the scratch guard (when on) judges on them, and the
    trainer records validation curves on them; nothing else reads them. ``unlabelled_rows`` are
    given to ``distill`` as unlabelled images. ``also_scored`` names more rows to score every network on
    (recorded as ``<name>_accuracy``)."""
    classes = _teacher_classes(teacher, target)
    train_set = target.dataset(train_rows, config.data, train=True, classes=classes)
    evaluation_set = target.dataset(scored_rows, config.data, train=False, classes=classes)
    val_set = None if val_rows is None else target.dataset(val_rows, config.data, train=False, classes=classes)
    unlabelled_set = None if unlabelled_rows is None else unlabelled_dataset(target.root, unlabelled_rows, config.data)
    per_class = train_rows["label"].value_counts()

    load_before = load_average()
    result = distill(
        config,
        teacher.model,
        train_set,
        val_set,
        num_classes=len(classes),
        callbacks=[ProgressPrinter(label, every=max(1, config.train.max_steps // 4))],
        unlabelled_set=unlabelled_set,
    )
    load_after = load_average()

    # Every network the method produced (adapted or fine-tuned teacher, the guard's runner-up), as the pipeline.
    trained = {role: network.model for role, network in result.networks().items()}
    guard = None
    if result.guard is not None:
        guard = {
            "decision": result.guard.decision,
            "kept_method": result.guard.kept_method,
            "distilled_val_accuracy": result.guard.distilled_val_accuracy,
            "scratch_val_accuracy": result.guard.scratch_val_accuracy,
            "val_images": result.guard.val_images,
        }
    scores = {role: _evaluate(model, evaluation_set, classes, config.data.eval_batch_size) for role, model in trained.items()}
    extra_accuracy = {}
    for name, rows in (also_scored or {}).items():
        dataset = target.dataset(rows, config.data, train=False, classes=classes)
        extra_accuracy[f"{name}_accuracy"] = {
            role: _evaluate(model, dataset, classes, config.data.eval_batch_size)["accuracy"] for role, model in trained.items()
        }
    if keep_student is not None:
        keep_student.parent.mkdir(parents=True, exist_ok=True)
        save_classifier(
            result.student, keep_student, arch=config.model.student_arch, classes=classes, stem=config.model.stem
        )
    return {
        # The guard's held-out quarter is part of the label budget; monitoring images are not.
        "labelled_images": len(train_rows) + (len(val_rows) if result.guard is not None else 0),
        "trained_on_images": len(train_rows),
        "unlabelled_images": result.unlabelled_images,
        "monitoring_images": 0 if val_set is None else len(val_set),
        "validation_curves": _validation_curves(result.train_results[DISTILL_STAGE].history),
        "guard": guard,
        "labelled_per_class": {"min": int(per_class.min()), "max": int(per_class.max())},
        "student_steps": result.train_results[DISTILL_STAGE].steps,
        "finetune_steps": result.train_results[FINETUNE_STAGE].steps if FINETUNE_STAGE in result.train_results else 0,
        "batch_size": config.data.batch_size,
        "accuracy": {role: score["accuracy"] for role, score in scores.items()},
        "ece": {role: score["ece"] for role, score in scores.items()},
        "evaluated_images": len(evaluation_set),
        "wall_seconds": round(result.wall_seconds, 2),
        "stage_seconds": {stage: round(seconds, 2) for stage, seconds in result.stage_seconds.items()},
        "images_per_second": round(result.images_per_second, 2),
        "final_train_metrics": {name: round(value, 5) for name, value in result.metrics.items()},
        "teacher": teacher.record["key"],
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "finished_at": now(),
        **extra_accuracy,
    }


def _validation_curves(history: list[dict[str, float]]) -> dict[str, list[list[float]]]:
    """``{role: [[step, val accuracy], ...]}`` from a student stage's history (empty without a val split)."""
    curves: dict[str, list[list[float]]] = {}
    for entry in history:
        for name, value in entry.items():
            if name.startswith("val/") and name.endswith("_acc"):
                role = name.removeprefix("val/").removesuffix("_acc")
                curves.setdefault(role, []).append([int(entry["step"]), round(value, 5)])
    return curves


def _teacher_classes(teacher: Teacher, target: Domain) -> list[str]:
    classes = teacher.record.get("classes")
    if classes is None:
        raise ValueError("teacher record has no class list")
    missing = sorted(set(target.classes) - set(classes))
    if missing:
        raise ValueError(f"target classes {missing} are not among the teacher's classes {classes}")
    return classes


def _evaluate(model: nn.Module, dataset, classes: list[str], batch_size: int) -> dict:
    evaluation = evaluate_classifier(model, dataset, classes, batch_size=batch_size)
    return {"accuracy": round(evaluation.accuracy, 5), "ece": round(evaluation.ece, 5), "images": evaluation.num_samples}


def _parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
