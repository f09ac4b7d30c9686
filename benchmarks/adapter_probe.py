"""How far can the adapted teacher alone get? Trains only the teacher side of 4Ds, on validation data only.

    python -m benchmarks.adapter_probe --task mnist->textured --probe '{"adapter_bn_affine": true}' --steps 150

The adapters' capacity question of the adapter study without the student's cost: the frozen
source teacher with adapters set by ``--probe`` (FourDsConfig fields) learns from the labelled
target images (cross-entropy; plus information maximisation on the unlabelled ones when
``adapter_im_weight`` is set) with the adapters' optimiser (``--lr``, AdamW, cosine), its
BatchNorm following the target batches as in 4Ds. ``"full_finetune": true`` in the probe
instead trains every teacher weight without adapters (what two_stage's first stage does).
Prints one JSON line: the validation accuracy (the adapter study's fixed validation draw,
never the test split), the trained share of the teacher's parameters and the seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.cells import ensure_teacher
from benchmarks.domains import labelled_images, load_domain, unlabelled_images
from benchmarks.investigate import STUDY_VALIDATION_SEED
from benchmarks.run import DEFAULT_DATA_DIR
from benchmarks.suites import SUITES, cell_run_config
from fourds.config import FourDsConfig, OptimizerConfig
from fourds.data.datasets import unlabelled_dataset
from fourds.data.table import labelled_subset
from fourds.evaluation.metrics import evaluate_classifier
from fourds.method.adapted_teacher import LogitsOnly
from fourds.method.fourds import FourDs
from fourds.method.losses import information_maximisation
from fourds.models.zoo import default_stage_names
from fourds.training.optimization import build_optimizer, build_scheduler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adapter_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="adapters", help="whose tasks and schedules")
    parser.add_argument("--task", default="mnist->textured")
    parser.add_argument("--probe", default="{}", help="FourDsConfig fields as JSON, or {\"full_finetune\": true}")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation-per-class", type=int, default=50)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/work"))
    arguments = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(arguments.seed)

    suite = SUITES[arguments.suite].semi_supervised()
    tasks = [task for task in suite.tasks if task.name == arguments.task]
    if not tasks:
        parser.error(f"--task {arguments.task!r} is not a task of the {suite.name} suite: "
                     f"{', '.join(task.name for task in suite.tasks)}")
    [task] = tasks
    source = load_domain(task.source, data_dir=arguments.data_dir, work_dir=arguments.work)
    target = load_domain(task.target, data_dir=arguments.data_dir, work_dir=arguments.work)
    teacher = ensure_teacher(suite, task, source, target, teachers_dir=arguments.work / "teachers", progress_bar=False)
    config = cell_run_config(suite, task, "4ds", arguments.seed, progress=False)
    classes = teacher.record["classes"]
    val = labelled_subset(target.table, arguments.validation_per_class, seed=STUDY_VALIDATION_SEED, split="train")
    labelled = labelled_images(target, suite.budgets[0], arguments.seed, held_out=val)
    unlabelled = unlabelled_images(target, labelled, held_out=val)

    probe = json.loads(arguments.probe)
    full_finetune = probe.pop("full_finetune", False)
    fourds = FourDsConfig(**probe)
    size = config.data.image_size
    if full_finetune:
        network = teacher.model
        network.train()
        parameters = list(network.parameters())
        share = 1.0
        forward = network
    else:
        adapted = FourDs.build_adapted_teacher(teacher.model, fourds, default_stage_names(config.model.teacher_arch),
                                               (3, size, size)).train()
        parameters = adapted.trainable_parameters()
        share = adapted.adapter_share
        forward = LogitsOnly(adapted)
    optimiser_config = OptimizerConfig(name="adamw", lr=arguments.lr, eps=1e-4, weight_decay=0.01, momentum=0.0,
                                       warmup_steps=10)
    optimiser = build_optimizer(parameters, optimiser_config, group="adapters")
    scheduler = build_scheduler(optimiser, optimiser_config, total_steps=arguments.steps)

    labelled_set = target.dataset(labelled, config.data, train=True, classes=classes)
    unlabelled_set = unlabelled_dataset(target.root, unlabelled, config.data)
    batch = config.data.batch_size
    generator = torch.Generator().manual_seed(arguments.seed)
    started = time.perf_counter()
    for _ in range(arguments.steps):
        picks = torch.randint(len(labelled_set), (batch,), generator=generator)
        images, labels = zip(*(labelled_set[int(index)] for index in picks))
        extra = torch.randint(len(unlabelled_set), (batch,), generator=generator)
        unlabelled_images_batch = torch.stack([unlabelled_set[int(index)][0] for index in extra])
        logits = forward(torch.cat([torch.stack(images), unlabelled_images_batch]))
        loss = F.cross_entropy(logits[:batch], torch.tensor(labels))
        if fourds.adapter_im_weight:
            loss = loss + fourds.adapter_im_weight * information_maximisation(logits)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        scheduler.step()
    seconds = time.perf_counter() - started
    val_set = target.dataset(val, config.data, train=False, classes=classes)
    accuracy = evaluate_classifier(forward.eval(), val_set, classes, batch_size=256).accuracy
    print(json.dumps({"task": task.name, "probe": arguments.probe, "lr": arguments.lr, "steps": arguments.steps,
                      "seed": arguments.seed, "val_accuracy": round(accuracy, 4), "trained_share": round(share, 5),
                      "seconds": round(seconds, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
