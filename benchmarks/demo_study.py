"""The study behind the demo's settings: validation accuracy only, never the test split.

    EXP='{"ipc": 150, "unlabelled": 1, "labels_per_class": 20, "overrides": {...}}' \
        python -m benchmarks.demo_study

Generates the demo domains (``fourds.data.demo``; ``target_style`` in EXP overrides fields of
the target style), trains the teacher on the source with ``configs/demo.yaml`` plus EXP's
``overrides``, then distils into the target through ``fourds.training.recipes.distill`` and
prints one JSON line: source/target validation accuracy of the teacher, the kept student's and
the adapted teacher's target validation accuracy, the scratch guard's decision and the
validation curve. With ``"unlabelled": 1`` the first ``labels_per_class`` target training
images of each class stay labelled and the rest of the training split is given as unlabelled.
This is how the demo target style, the student optimiser and the schedule were compared
(docs/PIPELINES.md, "The demo"); the library, not this script, is what the demo runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import torch

import fourds.data.demo as demo
from fourds.config import load_config
from fourds.data.datasets import ImageTableDataset, UnlabelledImageDataset, build_transforms
from fourds.data.table import image_folder_table, labelled_subset, split_rows
from fourds.evaluation.metrics import evaluate_classifier
from fourds.training.recipes import distill, train_teacher

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    experiment = json.loads(os.environ.get("EXP", "{}"))
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    out = Path(os.environ.get("OUT", "/tmp/fourds-demo-study"))
    if "target_style" in experiment:
        demo._STYLES["target"] = dataclasses.replace(demo._STYLES["target"], **experiment["target_style"])
    ipc = experiment.get("ipc", 60)
    folders = demo.generate_demo_domains(out, images_per_class=ipc, source_images_per_class=ipc, unlabelled_per_class=0)
    config = load_config(REPO_ROOT / "configs" / "demo.yaml", overrides=experiment.get("overrides", {}))

    def splits(root: Path):
        table, classes = image_folder_table(
            root, val_fraction=config.data.val_fraction, test_fraction=config.data.test_fraction, progress=False
        )
        rows = {split: split_rows(table, split) for split in ("train", "val")}
        return classes, rows

    classes, source = splits(folders["source"])
    train_transform, eval_transform = build_transforms(config.data, True), build_transforms(config.data, False)
    started = time.perf_counter()
    teacher = train_teacher(
        config,
        ImageTableDataset(folders["source"], source["train"], classes, train_transform),
        ImageTableDataset(folders["source"], source["val"], classes, eval_transform),
        num_classes=len(classes),
    ).model
    teacher_seconds = time.perf_counter() - started

    _, target = splits(folders["target"])
    labelled, unlabelled = target["train"], None
    if experiment.get("unlabelled"):
        labelled = labelled_subset(target["train"], experiment.get("labels_per_class", 10), 0)
        rest = target["train"][~target["train"]["path"].isin(labelled["path"])]
        unlabelled = UnlabelledImageDataset(
            folders["target"], rest.assign(label="", split="unlabelled"), train_transform
        )
    val_set = ImageTableDataset(folders["target"], target["val"], classes, eval_transform)

    def accuracy(model, dataset) -> float:
        return round(evaluate_classifier(model, dataset, classes, batch_size=128).accuracy, 4)

    started = time.perf_counter()
    result = distill(
        config,
        teacher,
        ImageTableDataset(folders["target"], labelled, classes, train_transform),
        val_set,
        num_classes=len(classes),
        unlabelled_set=unlabelled,
    )
    report = {
        "teacher_seconds": round(teacher_seconds, 1),
        "distill_seconds": round(time.perf_counter() - started, 1),
        "teacher_source_val": accuracy(teacher, ImageTableDataset(folders["source"], source["val"], classes, eval_transform)),
        "teacher_target_val": accuracy(teacher, val_set),
        "labelled": len(labelled),
        "unlabelled": 0 if unlabelled is None else len(unlabelled),
        "student_val": accuracy(result.student, val_set),
        "kept": result.student_method,
        "adapted_teacher_val": None if result.adapted_teacher is None else accuracy(result.adapted_teacher, val_set),
        "guard": None if result.guard is None else result.guard.summary(),
        "val_curve": [
            [entry["step"], round(entry["val/student_acc"], 3)]
            for entry in result.train_results["distill"].history
            if "val/student_acc" in entry
        ],
    }
    print(json.dumps(experiment), json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
