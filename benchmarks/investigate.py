"""Why does 4Ds win or lose? Variants of its settings, compared on a VALIDATION split only.

    python -m benchmarks.investigate --suite quick --tasks mnist-usps --budgets medium --seeds 0 1 2
    python -m benchmarks.investigate --suite adapters --semi-supervised --validation-per-class 50 \
        --variants "4ds (reference)" "4ds, bn affine" --seeds 0

By default the validation split is carved from the labelled target training images of each
(budget, seed): a stratified quarter of them (at least 1 per class, never a whole
class), chosen by a seed of its own; every variant trains on the remaining three quarters.
With ``--validation-per-class N`` it is instead a fixed stratified draw of N target training
images per class (the same for every seed and variant), kept out of the labelled and the
unlabelled images: a steadier yardstick for a study than a quarter of a few labels.
``--semi-supervised`` gives every variant the target training images outside the labels and
the validation images as unlabelled images (the suite's semi-supervised setting).

The test split is never read, except with ``--report-test``: then the runs also score it
(recorded under ``test_accuracy``), for a study's chosen settings only, once they are chosen.
Teachers are the suite's cached ones (trained by ``benchmarks.run`` or here).
Results: ``<out>/<suite>-investigation.{json,md}`` (``--name`` changes the stem); runs are
resumable like the suite's.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

from benchmarks.cells import CellStore, ensure_teacher, load_average, now, slug, train_and_evaluate
from benchmarks.domains import (
    VALIDATION_FRACTION,
    VALIDATION_SEED_OFFSET,
    evaluation_rows,
    labelled_images,
    load_domain,
    split_validation,
    unlabelled_images,
)
from fourds.data.table import labelled_subset
from benchmarks.report import mean_std, write_json
from benchmarks.run import DEFAULT_DATA_DIR
from benchmarks.provenance import REPO_ROOT, command_line, git_state, machine
from benchmarks.suites import SUITES, Suite, cell_run_config, fingerprint
from fourds.config import RunConfig

# name -> (method, overrides of the suite's run config). Step counts are multiples of the suite's.
VARIANTS: dict[str, tuple[str, dict]] = {
    "scratch": ("student_scratch", {}),
    "kd": ("kd", {}),
    "kd, kd_weight 0.25": ("kd", {"fourds": {"kd_weight": 0.25}}),
    "4ds (reference)": ("4ds", {}),
    "4ds, teacher_bn frozen": ("4ds", {"fourds": {"teacher_bn": "frozen"}}),
    "4ds, kd_weight 0.25": ("4ds", {"fourds": {"kd_weight": 0.25}}),
    "4ds, kd_weight 0": ("4ds", {"fourds": {"kd_weight": 0.0}}),
    "4ds, fusion_weight 0": ("4ds", {"fourds": {"fusion_weight": 0.0}}),
    "4ds, adapter lr 1e-2": ("4ds", {"train": {"optimizers": {"adapters": {"lr": 0.01}}}}),
    "two_stage": ("two_stage", {}),
    "two_stage, fine-tune lr 1e-3": ("two_stage", {"teacher_train": {"optimizers": {"teacher": {"lr": 0.001}}}}),
    "scratch, 3x steps": ("student_scratch", {"steps_multiplier": 3}),
    "4ds, 3x steps": ("4ds", {"steps_multiplier": 3}),
    # The adapter study (issue 15): what lets the frozen teacher adapt as well as fine-tuning.
    "4ds, reduction 1": ("4ds", {"fourds": {"adapter_reduction": 1}}),
    "4ds, reduction 16": ("4ds", {"fourds": {"adapter_reduction": 16}}),
    "4ds, adapter lr 3e-3 warm-up 20": ("4ds", {"train": {"optimizers": {"adapters": {"lr": 0.003, "warmup_steps": 20}}}}),
    "4ds, adapters on layer3-4": ("4ds", {"fourds": {"adapter_stages": [2, 3]}}),
    "4ds, bn affine": ("4ds", {"fourds": {"adapter_bn_affine": True}}),
    "4ds, initial mix 0.1": ("4ds", {"fourds": {"adapter_initial_mix": 0.1}}),
    "4ds, mix temperature 1": ("4ds", {"fourds": {"amplitude_temperature": 1.0}}),
    "4ds, im 1": ("4ds", {"fourds": {"adapter_im_weight": 1.0}}),
    "4ds, bn affine + im 1": ("4ds", {"fourds": {"adapter_bn_affine": True, "adapter_im_weight": 1.0}}),
    "4ds, bn affine + im 1 + lr 3e-3": (
        "4ds",
        {"fourds": {"adapter_bn_affine": True, "adapter_im_weight": 1.0},
         "train": {"optimizers": {"adapters": {"lr": 0.003, "warmup_steps": 20}}}},
    ),
    "4ds, adapter lr 1e-2 warm-up 20": ("4ds", {"train": {"optimizers": {"adapters": {"lr": 0.01, "warmup_steps": 20}}}}),
    "4ds, bn affine + lr 1e-2": (
        "4ds",
        {"fourds": {"adapter_bn_affine": True}, "train": {"optimizers": {"adapters": {"lr": 0.01, "warmup_steps": 20}}}},
    ),
    "4ds, bn affine + im 1 + lr 1e-2": (
        "4ds",
        {"fourds": {"adapter_bn_affine": True, "adapter_im_weight": 1.0},
         "train": {"optimizers": {"adapters": {"lr": 0.01, "warmup_steps": 20}}}},
    ),
    "4ds, reduction 1 + bn affine + im 1 + lr 1e-2": (
        "4ds",
        {"fourds": {"adapter_reduction": 1, "adapter_bn_affine": True, "adapter_im_weight": 1.0},
         "train": {"optimizers": {"adapters": {"lr": 0.01, "warmup_steps": 20}}}},
    ),
    "4ds, residual adapters": ("4ds", {"fourds": {"adapter_residual": True}}),
    "4ds, stem tuned": ("4ds", {"fourds": {"adapter_tuned_modules": ["conv1"]}}),
    "4ds, stem + layer1 tuned": ("4ds", {"fourds": {"adapter_tuned_modules": ["conv1", "layer1"]}}),
    "4ds, stem tuned + bn affine + residual": (
        "4ds", {"fourds": {"adapter_tuned_modules": ["conv1"], "adapter_bn_affine": True, "adapter_residual": True}},
    ),
    "4ds, stem + layer1 tuned + bn affine + residual + im 1": (
        "4ds",
        {"fourds": {"adapter_tuned_modules": ["conv1", "layer1"], "adapter_bn_affine": True, "adapter_residual": True,
                    "adapter_im_weight": 1.0}},
    ),
    "4ds, adapter kd 0": ("4ds", {"fourds": {"adapter_kd_weight": 0.0}}),
    "4ds, adapter kd 0 + bn affine + im 1": (
        "4ds", {"fourds": {"adapter_kd_weight": 0.0, "adapter_bn_affine": True, "adapter_im_weight": 1.0}},
    ),
    "4ds, adapter kd 0 + stem + layer1 tuned": (
        "4ds", {"fourds": {"adapter_kd_weight": 0.0, "adapter_tuned_modules": ["conv1", "layer1"]}},
    ),
    "4ds, adapter kd 0 + stem + layer1 tuned + bn affine + im 1": (
        "4ds",
        {"fourds": {"adapter_kd_weight": 0.0, "adapter_tuned_modules": ["conv1", "layer1"], "adapter_bn_affine": True,
                    "adapter_im_weight": 1.0}},
    ),
    "4ds, head tuned": ("4ds", {"fourds": {"adapter_tuned_modules": ["fc"]}}),
    "4ds, residual adapters + bn affine + im 1": (
        "4ds", {"fourds": {"adapter_residual": True, "adapter_bn_affine": True, "adapter_im_weight": 1.0}},
    ),
    "4ds, residual adapters + head tuned + bn affine": (
        "4ds", {"fourds": {"adapter_residual": True, "adapter_tuned_modules": ["fc"], "adapter_bn_affine": True}},
    ),
    "4ds, initial mix 0.01 + bn affine + lr 1e-2": (
        "4ds",
        {"fourds": {"adapter_initial_mix": 0.01, "adapter_bn_affine": True},
         "train": {"optimizers": {"adapters": {"lr": 0.01, "warmup_steps": 20}}}},
    ),
    "4ds, initial mix 0.01 + bn affine + im 1 + lr 1e-2": (
        "4ds",
        {"fourds": {"adapter_initial_mix": 0.01, "adapter_bn_affine": True, "adapter_im_weight": 1.0},
         "train": {"optimizers": {"adapters": {"lr": 0.01, "warmup_steps": 20}}}},
    ),
    "4ds, initial mix 0.01 + stem + layer1 tuned": (
        "4ds", {"fourds": {"adapter_initial_mix": 0.01, "adapter_tuned_modules": ["conv1", "bn1", "layer1"]}},
    ),
    "4ds, initial mix 0.01 + stem + layer1 tuned + bn affine + im 1": (
        "4ds",
        {"fourds": {"adapter_initial_mix": 0.01, "adapter_tuned_modules": ["conv1", "bn1", "layer1"],
                    "adapter_bn_affine": True, "adapter_im_weight": 1.0}},
    ),
    "4ds, initial mix 0.01 + early layers tuned + bn affine + im 1": (
        "4ds",
        {"fourds": {"adapter_initial_mix": 0.01, "adapter_tune_early": True, "adapter_bn_affine": True,
                    "adapter_im_weight": 1.0}},
    ),
    "two_stage, fine-tune lr 3e-2": ("two_stage", {"teacher_train": {"optimizers": {"teacher": {"lr": 0.03}}}}),
    "two_stage, fine-tune adamw 1e-3": (
        "two_stage",
        {"teacher_train": {"optimizers": {"teacher": {"name": "adamw", "lr": 0.001, "momentum": 0.0,
                                                      "weight_decay": 0.01, "warmup_steps": 10}}}},
    ),
    "two_stage, fine-tune adamw 3e-4": (
        "two_stage",
        {"teacher_train": {"optimizers": {"teacher": {"name": "adamw", "lr": 0.0003, "momentum": 0.0,
                                                      "weight_decay": 0.01, "warmup_steps": 10}}}},
    ),
    "two_stage, fine-tune adamw 3e-3": (
        "two_stage",
        {"teacher_train": {"optimizers": {"teacher": {"name": "adamw", "lr": 0.003, "momentum": 0.0,
                                                      "weight_decay": 0.01, "warmup_steps": 10}}}},
    ),
}
REFERENCE = "scratch"
STUDY_VALIDATION_SEED = 3000
"""Seed of the fixed validation draw (``--validation-per-class``)."""


def adapter_share(config: RunConfig, teacher: torch.nn.Module) -> float | None:
    """The share of the teacher's parameters that 4Ds trains under ``config`` (None for other methods)."""
    if config.method != "4ds":
        return None
    from fourds.method.fourds import FourDs
    from fourds.models.zoo import default_stage_names

    stages = config.model.teacher_stages or default_stage_names(config.model.teacher_arch)
    size = config.data.image_size
    adapted = FourDs.build_adapted_teacher(teacher, config.fourds, stages, (3, size, size))
    return round(adapted.adapter_share, 6)


def variant_config(suite: Suite, task, name: str, seed: int) -> RunConfig:
    method, overrides = VARIANTS[name]
    overrides = copy.deepcopy(overrides)
    multiplier = overrides.pop("steps_multiplier", 1)
    config = cell_run_config(suite, task, method, seed, progress=False)
    merged = _deep_merge(_deep_merge(config.model_dump(mode="json"), PRE_STUDY_DEFAULTS), overrides)
    merged["train"]["max_steps"] = suite.schedule.student_steps * multiplier
    merged["teacher_train"]["max_steps"] = suite.schedule.finetune_steps * multiplier
    return RunConfig.model_validate(merged)


PRE_STUDY_DEFAULTS = {
    "fourds": {"adapter_initial_mix": 0.5, "adapter_tune_early": False, "adapter_bn_affine": False,
               "adapter_im_weight": 0.0},
    # Both TrainConfigs list every optimiser group; only teacher_train's runs here (two_stage's fine-tuning).
    **{config: {"optimizers": {"teacher": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005,
                                           "warmup_steps": 0}}} for config in ("train", "teacher_train")},
}
"""What every variant starts from: the library's defaults before the adapter study changed them (the 4Ds
reference adapters; two_stage fine-tuning with the reference SGD). Variants name their changes from here,
so their configurations, keys and results stay what they were when the study ran."""

LATER_KEY_OPTIONS = {"adapter_tuned_modules": [], "adapter_residual": False, "adapter_kd_weight": None,
                     "adapter_tune_early": False}
"""4Ds options added after the adapter study's first runs were recorded: left out of a run's key at these
(no-op) values, so those runs still match."""


def _key_config(config: RunConfig) -> dict:
    # guard: always off here, and added after runs were recorded; leaving it out keeps them.
    dump = config.model_dump(mode="json", exclude={"train": {"progress"}, "teacher_train": {"progress"}, "guard": True})
    dump["fourds"] = {name: value for name, value in dump["fourds"].items()
                      if not (name in LATER_KEY_OPTIONS and value == LATER_KEY_OPTIONS[name])}
    return dump


def _deep_merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.investigate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument("--tasks", nargs="+", help="task names of the suite (default: all)")
    parser.add_argument("--budgets", nargs="+", help="budget names (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the suite's seeds")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), help="default: all")
    parser.add_argument("--semi-supervised", action="store_true", help="the suite's semi-supervised setting")
    parser.add_argument("--validation-per-class", type=int, help="a fixed validation draw of N training images per class")
    parser.add_argument("--report-test", action="store_true", help="also score the test split (chosen settings only)")
    parser.add_argument("--name", help="results file stem (default: <suite>-investigation)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "benchmarks" / "work")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    arguments = parser.parse_args(argv)

    suite = SUITES[arguments.suite]
    if arguments.semi_supervised:
        suite = suite.semi_supervised()
    if suite.threads:
        torch.set_num_threads(suite.threads)
    tasks = [task for task in suite.tasks if not arguments.tasks or {task.name, slug(task.name)} & set(arguments.tasks)]
    budgets = [budget for budget in suite.budgets if not arguments.budgets or budget.name in arguments.budgets]
    seeds = arguments.seeds or list(suite.seeds)
    variants = arguments.variants or list(VARIANTS)
    work = arguments.work.resolve()
    store = CellStore(work / suite.name / "investigation.jsonl")
    load_start = load_average()
    code = git_state()

    runs = []
    for task in tasks:
        print(f"task {task.name}", flush=True)
        source = load_domain(task.source, data_dir=arguments.data_dir, work_dir=work)
        target = load_domain(task.target, data_dir=arguments.data_dir, work_dir=work)
        teacher = ensure_teacher(suite, task, source, target, teachers_dir=work / "teachers", progress_bar=False)
        fixed_val = None
        if arguments.validation_per_class:
            fixed_val = labelled_subset(target.table, arguments.validation_per_class, seed=STUDY_VALIDATION_SEED,
                                        split="train")
        test = evaluation_rows(target, suite.schedule.test_images_per_class) if arguments.report_test else None
        for seed in seeds:
            for budget in budgets:
                if fixed_val is None:
                    fit, val = split_validation(labelled_images(target, budget, seed), seed)
                else:
                    fit, val = labelled_images(target, budget, seed, held_out=fixed_val), fixed_val
                assert set(val["split"]) == {"train"}, "validation must come from the target training images"
                unlabelled = unlabelled_images(target, fit, held_out=val) if suite.unlabelled_ratio else None
                for name in variants:
                    config = variant_config(suite, task, name, seed)
                    key = fingerprint(
                        {"config": _key_config(config),
                         "task": task.name, "budget": budget.name, "seed": seed, "teacher": teacher.record["key"],
                         "val": sorted(val["path"]), "variant": name}
                        # Only when used, so that runs recorded before these options keep their keys.
                        | ({"unlabelled": sorted(unlabelled["path"])} if unlabelled is not None else {})
                        | ({"test": sorted(test["path"])} if test is not None else {})
                    )
                    record = store.get(key)
                    label = f"{task.name} {budget.name} seed {seed} [{name}]"
                    if record is None:
                        print(f"  {label}: running on {len(fit)} labelled images"
                              f"{'' if unlabelled is None else f' and {len(unlabelled)} unlabelled'}, "
                              f"validating on {len(val)}", flush=True)
                        outcome = train_and_evaluate(config, teacher, target, fit, val, label=name,
                                                     unlabelled_rows=unlabelled,
                                                     also_scored=None if test is None else {"test": test})
                        record = {"kind": "variant", "key": key, "task": task.name, "budget": budget.name, "seed": seed,
                                  "variant": name, "method": config.method,
                                  "evaluated_on": "validation (carved from labelled train)" if fixed_val is None
                                  else f"validation ({arguments.validation_per_class} target training images per class, "
                                  "never trained on)",
                                  "adapter_share": adapter_share(config, teacher.model),
                                  **outcome}
                        store.append(record)
                    accuracy = record["accuracy"]
                    print(f"  {label}: val " + ", ".join(f"{role} {value:.3f}" for role, value in accuracy.items()), flush=True)
                    runs.append(record)

    results = {
        "suite": suite.name,
        "semi_supervised": bool(suite.unlabelled_ratio),
        "command": command_line().replace("benchmarks.run", "benchmarks.investigate"),
        "git": code,
        "git_at_end": git_state(),
        "machine": machine(),
        "written_at": now(),
        "load_average": {"start": load_start, "end": load_average()},
        "validation": (
            f"stratified {VALIDATION_FRACTION:.0%} of the labelled target training images (1 to n-1 per class), "
            f"seed offset {VALIDATION_SEED_OFFSET}; variants train on the rest"
            if not arguments.validation_per_class else
            f"{arguments.validation_per_class} target training images per class (stratified draw, seed "
            f"{STUDY_VALIDATION_SEED}), the same for every seed and variant, outside the labelled and unlabelled images"
        ) + ("; the test split is scored too (--report-test)" if arguments.report_test else "; the test split is not read"),
        "variants": {name: {"method": VARIANTS[name][0], "overrides": VARIANTS[name][1]} for name in variants},
        "summary": summarise(runs, [t.name for t in tasks], [b.name for b in budgets], variants),
        "runs": runs,
    }
    out = arguments.out.resolve()
    stem = arguments.name or f"{suite.name}-investigation"
    write_json(results, out / f"{stem}.json")
    (out / f"{stem}.md").write_text(markdown(results))
    print(f"wrote {out / stem}.json and .md", flush=True)
    return 0


def summarise(runs: list[dict], tasks: list[str], budgets: list[str], variants: list[str]) -> list[dict]:
    summary = []
    for task in tasks:
        for budget in budgets:
            group = [run for run in runs if run["task"] == task and run["budget"] == budget]
            reference = {run["seed"]: run["accuracy"]["student"] for run in group if run["variant"] == REFERENCE}
            for name in variants:
                rows = [run for run in group if run["variant"] == name]
                if not rows:
                    continue
                differences = [run["accuracy"]["student"] - reference[run["seed"]] for run in rows if run["seed"] in reference]
                metrics = [run["final_train_metrics"] for run in rows]
                summary.append(
                    {
                        "task": task,
                        "budget": budget,
                        "variant": name,
                        "val_images": sorted({run["evaluated_images"] for run in rows}),
                        "student": mean_std([run["accuracy"]["student"] for run in rows]),
                        "adapted_teacher": mean_std([run["accuracy"].get("adapted_teacher") for run in rows]),
                        "finetuned_teacher": mean_std([run["accuracy"].get("finetuned_teacher") for run in rows]),
                        "minus_scratch": {**mean_std(differences), "wins": sum(d > 0 for d in differences)},
                        "gate_mean": mean_std([m.get("train/fusion/gate_mean") for m in metrics]),
                        "a0_layer4": mean_std([m.get("train/adapters/a0/layer4") for m in metrics]),
                        "wall_seconds": mean_std([run["wall_seconds"] for run in rows]),
                        "adapter_share": rows[0].get("adapter_share"),
                        "test_student": mean_std([run.get("test_accuracy", {}).get("student") for run in rows]),
                        "test_teacher": mean_std([
                            run.get("test_accuracy", {}).get("adapted_teacher", run.get("test_accuracy", {}).get("finetuned_teacher"))
                            for run in rows]),
                    }
                )
    return summary


NO_STAT = {"mean": None, "std": None, "n": 0}


def markdown(results: dict) -> str:
    def percent(stat: dict) -> str:
        return "-" if stat["mean"] is None else f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"

    def share(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    def number(stat: dict) -> str:
        return "-" if stat["mean"] is None else f"{stat['mean']:.3f}"

    lines = [
        f"# 4Ds investigation on the validation split (`{results['suite']}` schedules)",
        "",
        f"- Command: `{results['command']}`",
        f"- Code: commit `{results['git']['commit']}`",
        f"- Validation: {results['validation']}.",
        f"- Load average at start {results['load_average']['start']}, at end {results['load_average']['end']}.",
        "- gate = mean fusion-activation gate over the last epoch; a0 = weight of the adapted amplitude after layer4 "
        "(0.5 at initialisation).",
        "",
        "| task | budget | variant | val images | student val acc (%) | minus scratch (pp, wins) | adapted teacher | "
        "fine-tuned teacher | gate | a0 layer4 | trained share of teacher | wall s | test: student | test: teacher |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in results["summary"]:
        margin = entry["minus_scratch"]
        margin_text = "-" if margin["mean"] is None else f"{100 * margin['mean']:+.1f} ± {100 * margin['std']:.1f} ({margin['wins']}/{margin['n']})"
        lines.append(
            f"| {entry['task']} | {entry['budget']} | {entry['variant']} | {','.join(map(str, entry['val_images']))} | "
            f"{percent(entry['student'])} | {margin_text} | {percent(entry['adapted_teacher'])} | "
            f"{percent(entry['finetuned_teacher'])} | {number(entry['gate_mean'])} | {number(entry['a0_layer4'])} | "
            f"{share(entry.get('adapter_share'))} | "
            f"{entry['wall_seconds']['mean']:.0f} | {percent(entry.get('test_student', NO_STAT))} | "
            f"{percent(entry.get('test_teacher', NO_STAT))} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
