"""The named benchmark suites: which tasks, label budgets, seeds and schedules each one runs.

A suite fixes everything that decides a number in the results, so a cell of the
results is identified by (suite settings, task, budget, method, seed) and a rerun
with the same settings can reuse it. Every student method gets the same optimiser
steps, batch size and labelled images; two_stage's teacher fine-tuning has its own
budget (``finetune_steps``) and its time counts in two_stage's wall time.

Input resolution (see docs in ``benchmarks/README.md``): digits are resized to 32 px
and the ResNets use the ``no_maxpool`` stem, so layer1..layer4 see 16, 8, 4 and 2 px
maps. With the ImageNet stem, 32 px would leave layer4 at 1x1, where a Fourier
amplitude/phase carries nothing. ``small_input`` (layer4 4x4) costs about 4x more
per step, which does not fit the quick suite on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from fourds.config import DataConfig, FourDsConfig, GuardConfig, ModelConfig, OptimizerConfig, RunConfig, TrainConfig
from fourds.hashing import canonical_json_sha256
from fourds.method.registry import method_spec

STUDENT_METHODS = ("student_scratch", "kd", "two_stage", "4ds")
"""The registered methods a suite compares by default, in column order. Part of a cell's key
(``Suite.key_settings``): a method registered later joins a suite by being named in it."""
GUARD_SUFFIX = "+guard"
"""``4ds+guard``: 4ds with the library's scratch guard (``fourds.training.guard``), judged on a
validation quarter carved from the same labelled images."""
DIGIT_NORMALISATION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
IMAGENET_NORMALISATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class DomainSpec:
    """Where a domain's images are: a folder inside one of the shared tarballs, or any folder.

    A domain folder either holds ``train/`` and ``test/`` sub-folders of ``<class>/<image>``
    (the digits), or is itself ``<class>/<image>`` and is split by a hash of each image's
    content (PACS, any folder given with ``--source/--target``).
    """

    name: str
    archive: str | None = None
    """File name in the shared data folder (e.g. ``mnist.tar.gz``); None for a plain folder."""
    folder: str = ""
    """Inside the unpacked archive (e.g. ``mnist``, ``pacs/sketch``), or an absolute folder path."""


@dataclass(frozen=True)
class TaskSpec:
    """A source -> target pair and how its images become network inputs."""

    name: str
    source: DomainSpec
    target: DomainSpec
    image_size: int = 32
    stem: str = "no_maxpool"
    horizontal_flip: bool = False
    normalisation: tuple[tuple[float, float, float], tuple[float, float, float]] = DIGIT_NORMALISATION


@dataclass(frozen=True)
class BudgetSpec:
    """Labelled target images: ``fraction`` of each class of the target training split, at least ``min_per_class``."""

    name: str
    fraction: float
    min_per_class: int


@dataclass(frozen=True)
class Schedule:
    """Optimisation budgets, shared by every task of a suite."""

    student_steps: int
    """Optimiser steps of every student method (scratch, kd, two_stage's KD stage, 4ds)."""
    batch_size: int
    finetune_steps: int
    """two_stage only: steps of fine-tuning the teacher on the labelled target images."""
    teacher_steps: int
    """Training the source teacher from scratch (once per task, cached)."""
    teacher_batch_size: int
    teacher_optimizer: str
    teacher_lr: float
    teacher_warmup_steps: int
    teacher_images_per_class: int | None
    """Source training images per class for the teacher; None = the whole source training split."""
    test_images_per_class: int | None
    """Target (and source) test images per class evaluated; None = the whole test split."""
    latency_repeats: int = 20
    monitor_images_per_class: int = 0
    """Target training images per class held out (from labelled and unlabelled pools alike) to draw each
    student's validation curve, so a report can show whether it had stopped improving; 0 = no curve.
    Never used to select anything: the last step is kept."""
    monitor_points: int = 8
    """Evaluations on the monitoring images along a student run (evenly spaced, the last at the end)."""


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    tasks: tuple[TaskSpec, ...]
    budgets: tuple[BudgetSpec, ...]
    seeds: tuple[int, ...]
    schedule: Schedule
    methods: tuple[str, ...] = STUDENT_METHODS
    guarded_methods: tuple[str, ...] = ()
    """Methods also run with the scratch guard on (as ``<method>+guard``)."""
    teacher_arch: str = "resnet34"
    student_arch: str = "resnet18"
    fourds: FourDsConfig = field(default_factory=FourDsConfig)
    """4Ds settings; the reference defaults of METHOD.md unless a suite says otherwise."""
    threads: int | None = 1
    """torch CPU threads. One by default: on a shared 2-core machine two threads slow down 5-10x
    as soon as any other process runs (measured), one thread keeps the timings comparable."""
    unlabelled_ratio: float = 0.0
    """The semi-supervised setting when > 0: the target training images outside the label budget
    (and outside the monitoring images) are given to every method as unlabelled images, this many
    per labelled one in each batch (``DataConfig.unlabelled_batch_ratio``). 0 = labelled only."""

    def __post_init__(self) -> None:
        for method in self.methods + self.guarded_methods:
            method_spec(method)  # a ValueError naming the registered methods

    def with_tasks(self, tasks: tuple[TaskSpec, ...]) -> Suite:
        return dataclasses.replace(self, tasks=tasks)

    def with_seeds(self, seeds: tuple[int, ...]) -> Suite:
        return dataclasses.replace(self, seeds=seeds)

    def with_threads(self, threads: int | None) -> Suite:
        return dataclasses.replace(self, threads=threads)

    def semi_supervised(self, ratio: float = 1.0) -> Suite:
        """The same suite in the semi-supervised setting (results named ``<suite>-semi``)."""
        return dataclasses.replace(self, name=f"{self.name}-semi", unlabelled_ratio=ratio)

    @property
    def all_methods(self) -> tuple[str, ...]:
        """Every method column of the results: the plain methods, then the guarded ones."""
        return self.methods + tuple(method + GUARD_SUFFIX for method in self.guarded_methods)

    def settings(self) -> dict:
        """Everything but the task list and seeds, as plain data (recorded in the results)."""
        return self.key_settings() | {"guarded_methods": list(self.guarded_methods)}

    def key_settings(self) -> dict:
        """The settings a recorded cell is keyed by. The guarded variants came after cells had been
        recorded, and a cell's numbers do not depend on them, so they are left out: adding them
        reuses the plain cells."""
        settings = {
            "teacher_arch": self.teacher_arch,
            "student_arch": self.student_arch,
            "methods": list(self.methods),
            "budgets": [dataclasses.asdict(budget) for budget in self.budgets],
            "schedule": dataclasses.asdict(self.schedule),
            "fourds": self.fourds.identity(),
        }
        if self.unlabelled_ratio:  # only when on: a labelled-only suite is keyed as before the setting existed
            settings["unlabelled_ratio"] = self.unlabelled_ratio
        return settings


def _digits(name: str, source: str, target: str) -> TaskSpec:
    return TaskSpec(
        name=name,
        source=DomainSpec(source, archive=f"{source}.tar.gz", folder=source),
        target=DomainSpec(target, archive=f"{target}.tar.gz", folder=target),
    )


def _pacs(source: str, target: str) -> TaskSpec:
    # PACS images are 128 px; 64 px with the no_maxpool stem gives layer4 4x4 maps.
    return TaskSpec(
        name=f"{source}->{target}",
        source=DomainSpec(source, archive="pacs.tar.gz", folder=f"pacs/{source}"),
        target=DomainSpec(target, archive="pacs.tar.gz", folder=f"pacs/{target}"),
        image_size=64,
        horizontal_flip=True,
        normalisation=IMAGENET_NORMALISATION,
    )


TEXTURED_DIGITS = "<textured-digits>"
"""Folder of the large digit shift rendered from MNIST and PACS photos (benchmarks/textured_digits.py)."""
TEXTURED_TASK = TaskSpec(
    name="mnist->textured",
    source=DomainSpec("mnist", archive="mnist.tar.gz", folder="mnist"),
    target=DomainSpec("textured", folder=TEXTURED_DIGITS),
)
DIGIT_TASKS = (_digits("mnist->usps", "mnist", "usps"), _digits("usps->mnist", "usps", "mnist"))
PACS_TASKS = (_pacs("photo", "sketch"), _pacs("art_painting", "cartoon"))
LABEL_BUDGETS = (BudgetSpec("low", 0.01, 5), BudgetSpec("medium", 0.10, 5))

# Sized from a timing run on this 2-core CPU (one thread, batch 16, 32 px): a step costs
# about 0.39 s (scratch), 0.55 s (kd), 1.0 s (4ds), 0.8 s (teacher fine-tuning).
QUICK_SCHEDULE = Schedule(
    student_steps=40,
    batch_size=16,
    finetune_steps=20,
    teacher_steps=150,
    teacher_batch_size=32,
    teacher_optimizer="adamw",
    teacher_lr=1e-3,
    teacher_warmup_steps=10,
    teacher_images_per_class=200,
    test_images_per_class=50,
    latency_repeats=10,
)

SUITES: dict[str, Suite] = {
    "smoke": Suite(
        name="smoke",
        description="CI check of the runner and its report on generated demo domains (tiny networks, a few steps)",
        # Two tasks, so that the test of the runner also exercises --jobs workers.
        tasks=(
            TaskSpec(
                name="demo-source->demo-target",
                source=DomainSpec("demo-source", folder="<demo>/source"),
                target=DomainSpec("demo-target", folder="<demo>/target"),
            ),
            TaskSpec(
                name="demo-target->demo-source",
                source=DomainSpec("demo-target", folder="<demo>/target"),
                target=DomainSpec("demo-source", folder="<demo>/source"),
            ),
        ),
        budgets=(BudgetSpec("low", 0.2, 2), BudgetSpec("medium", 0.5, 2)),
        seeds=(0, 1),
        schedule=Schedule(
            student_steps=2,
            batch_size=8,
            finetune_steps=1,
            teacher_steps=3,
            teacher_batch_size=8,
            teacher_optimizer="adamw",
            teacher_lr=1e-3,
            teacher_warmup_steps=10,
            teacher_images_per_class=None,
            test_images_per_class=None,
            latency_repeats=2,
            monitor_images_per_class=2,
            monitor_points=2,
        ),
        teacher_arch="resnet18",
        student_arch="resnet18",
        guarded_methods=("4ds",),
    ),
    "quick": Suite(
        name="quick",
        description="digits, both label budgets, 3 seeds, shortened schedules (50 min in one process on 2 CPU cores)",
        tasks=DIGIT_TASKS,
        budgets=LABEL_BUDGETS,
        seeds=(0, 1, 2),
        schedule=QUICK_SCHEDULE,
        guarded_methods=("4ds",),
    ),
    "standard": Suite(
        name="standard",
        description=(
            "digits, both label budgets, 3 seeds, 200 student steps of batch 16 with validation curves; "
            "run with and without --semi-supervised (about 40 and 70 min per task on one CPU core)"
        ),
        tasks=DIGIT_TASKS,
        budgets=LABEL_BUDGETS,
        seeds=(0, 1, 2),
        # From a timing run (one thread, 32 px, batch 16 + 16 unlabelled): a step costs about 0.17 s
        # (scratch), 0.43 s (kd), 0.71 s (4ds); without unlabelled images 0.25 s (kd), 0.42 s (4ds).
        # The quick suite's teacher (150 steps on 200 source images per class) keeps it in a session.
        schedule=dataclasses.replace(
            QUICK_SCHEDULE, student_steps=200, finetune_steps=100, test_images_per_class=100, monitor_images_per_class=20
        ),
    ),
    "adapters": Suite(
        name="adapters",
        description=(
            "the adapter study (benchmarks.investigate): a small shift (mnist->usps) and a large one (mnist->textured, "
            "MNIST digits blended into PACS photo crops), 20 labels per class, the standard suite's schedules"
        ),
        tasks=(DIGIT_TASKS[0], TEXTURED_TASK),
        budgets=(BudgetSpec("20-per-class", 0.01, 20),),
        seeds=(0, 1, 2),
        schedule=dataclasses.replace(
            QUICK_SCHEDULE, student_steps=200, finetune_steps=100, test_images_per_class=100, monitor_images_per_class=20
        ),
    ),
    "full": Suite(
        name="full",
        description=(
            "digits and two PACS pairs, both label budgets, 3 seeds, longer schedules "
            "(digits: about 1.5 h per task on one CPU core; PACS: about 4x a digit task)"
        ),
        tasks=DIGIT_TASKS + PACS_TASKS,
        budgets=LABEL_BUDGETS,
        seeds=(0, 1, 2),
        # Students see 120 x 32 = 3,840 images (6x the quick suite); the teacher trains on the
        # whole source training split (400 x 64 = 25,600 draws, 3.5 epochs of USPS). Sized so the
        # digits part runs in about 1.5 h on 2 CPU cores, one task per core, from the quick suite's
        # batch-16 step times (above) and 2.7 s per batch-64 teacher step seen with another run beside it.
        # Scoring uses a fixed stratified 300 images per class of the test split: scoring the whole
        # MNIST test split costs a ResNet-34 about a minute per cell on one core.
        schedule=Schedule(
            student_steps=120,
            batch_size=32,
            finetune_steps=60,
            teacher_steps=400,
            teacher_batch_size=64,
            teacher_optimizer="adamw",
            teacher_lr=1e-3,
            teacher_warmup_steps=10,
            teacher_images_per_class=None,
            test_images_per_class=300,
        ),
    ),
}


def custom_task(source: Path, target: Path, *, image_size: int, stem: str, horizontal_flip: bool) -> TaskSpec:
    """A task over two image folders given on the command line."""
    source, target = source.resolve(), target.resolve()
    return TaskSpec(
        name=f"{source.name}->{target.name}",
        source=DomainSpec(source.name, folder=str(source)),
        target=DomainSpec(target.name, folder=str(target)),
        image_size=image_size,
        stem=stem,
        horizontal_flip=horizontal_flip,
        normalisation=IMAGENET_NORMALISATION,
    )


def data_config(suite: Suite, task: TaskSpec, *, batch_size: int) -> DataConfig:
    mean, std = task.normalisation
    return DataConfig(
        image_size=task.image_size,
        resize_size=None,  # resize straight to the input side; the training crop pads by 1/8
        random_crop=True,
        horizontal_flip=task.horizontal_flip,
        mean=mean,
        std=std,
        batch_size=batch_size,
        eval_batch_size=256,
    )


def teacher_run_config(suite: Suite, task: TaskSpec, *, progress: bool) -> RunConfig:
    """Training the source teacher from scratch: a short warm-up, then a cosine schedule; last step kept.

    AdamW (lr 1e-3): in a timing trial of the quick schedule, SGD lr 0.05 diverged early
    (MNIST test 39% after 150 steps); AdamW reached 95% and SGD lr 0.02 with warm-up 94%.
    """
    schedule = suite.schedule
    return RunConfig(
        model=ModelConfig(teacher_arch=suite.teacher_arch, student_arch=suite.student_arch, stem=task.stem),
        data=data_config(suite, task, batch_size=schedule.teacher_batch_size),
        teacher_train=TrainConfig(
            max_steps=schedule.teacher_steps,
            seed=0,
            selection="last",
            progress=progress,
            device="cpu",
            optimizers={
                "teacher": OptimizerConfig(
                    name=schedule.teacher_optimizer,
                    lr=schedule.teacher_lr,
                    momentum=0.9 if schedule.teacher_optimizer == "sgd" else 0.0,
                    weight_decay=5e-4 if schedule.teacher_optimizer == "sgd" else 1e-4,
                    warmup_steps=schedule.teacher_warmup_steps,
                )
            },
        ),
    )


def cell_run_config(suite: Suite, task: TaskSpec, method: str, seed: int, *, progress: bool) -> RunConfig:
    """One student run. Optimisers are the 4Ds reference ones for every method (student SGD 0.01).

    ``method`` may be guarded (``4ds+guard``): the scratch guard is on only then.
    """
    schedule = suite.schedule
    base_method, guarded = split_guard(method)
    return RunConfig(
        method=base_method,
        guard=GuardConfig(scratch_baseline=guarded),
        model=ModelConfig(teacher_arch=suite.teacher_arch, student_arch=suite.student_arch, stem=task.stem),
        fourds=suite.fourds,
        data=data_config(suite, task, batch_size=schedule.batch_size).model_copy(
            update={"unlabelled_batch_ratio": suite.unlabelled_ratio}
        ),
        train=TrainConfig(
            max_steps=schedule.student_steps,
            seed=seed,
            selection="last",
            progress=progress,
            device="cpu",
            eval_every_steps=max(1, schedule.student_steps // schedule.monitor_points),
        ),
        # two_stage fine-tunes the teacher with the reference student optimiser (SGD 0.01, cosine);
        # monitored once, at its end.
        teacher_train=TrainConfig(
            max_steps=schedule.finetune_steps,
            seed=seed,
            selection="last",
            progress=progress,
            device="cpu",
            eval_every_steps=schedule.finetune_steps,
        ),
    )


def split_guard(method: str) -> tuple[str, bool]:
    """``"4ds+guard"`` -> ``("4ds", True)``; ``"kd"`` -> ``("kd", False)``."""
    if method.endswith(GUARD_SUFFIX):
        return method.removesuffix(GUARD_SUFFIX), True
    return method, False


def fingerprint(data: object) -> str:
    """Short sha256 of a JSON-able value: equal settings, equal fingerprint."""
    return canonical_json_sha256(data, default=str)[:16]
