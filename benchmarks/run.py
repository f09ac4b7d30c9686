"""Run a benchmark suite and write its results.

    python -m benchmarks.run --suite quick
    python -m benchmarks.run --suite full --seeds 0 1 2
    python -m benchmarks.run --suite semi --semi-supervised --jobs 2   # unlabelled target images for every method
    python -m benchmarks.run --suite quick --source DIR --target DIR   # any two image folders
    python -m benchmarks.run --suite quick --jobs 2    # one worker process per task group

Finished cells are kept in ``<work>/<suite>/cells.jsonl`` and skipped on a rerun, so
an interrupted run continues where it stopped; ``--report-only`` rewrites the results
from what is recorded without training anything. Results: ``<out>/<suite>.json``,
``<suite>.md`` and ``<suite>.png`` (the suite name gets a suffix for custom tasks).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks import report
from benchmarks.cells import CellStore, cell_key, ensure_teacher, load_average, now, recorded_teacher, run_cell, slug
from benchmarks.deployment import measure_deployment
from benchmarks.domains import load_domain
from benchmarks.provenance import REPO_ROOT, command_line, git_state, machine
from benchmarks.suites import SUITES, Suite, custom_task, fingerprint

DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument("--source", type=Path, help="source image folder (<class>/<image>, or train/ and test/ inside)")
    parser.add_argument("--target", type=Path, help="target image folder, same layout and classes as --source")
    parser.add_argument("--image-size", type=int, default=32, help="input side for --source/--target (default 32)")
    parser.add_argument("--stem", choices=("imagenet", "no_maxpool", "small_input"), default="no_maxpool")
    parser.add_argument("--flip", action="store_true", help="random horizontal flips for --source/--target")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the suite's seeds")
    parser.add_argument("--budgets", nargs="+", metavar="BUDGET",
                        help="run only these label budgets of the suite (e.g. low); cells are keyed by the budgets run")
    parser.add_argument(
        "--semi-supervised", action="store_true",
        help="the semi-supervised setting: target training images outside the label budget are given to every "
        "method as unlabelled images (one per labelled image in each batch); results under <suite>-semi",
    )
    parser.add_argument("--tasks", nargs="+", help="run only these tasks of the suite (e.g. mnist-usps or 'mnist->usps')")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder of the shared tarballs")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "benchmarks" / "work", help="unpacked data, tables, teachers, cells")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--report-only", action="store_true", help="write the results from recorded cells; train nothing")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: the suite's, 1; 0 = torch's choice)")
    parser.add_argument("--skip-deployment", action="store_true", help="do not export or time the models")
    parser.add_argument(
        "--jobs", type=int, default=1,
        help="run the tasks in this many worker processes (one torch thread each), then write the results once",
    )
    parser.add_argument("--no-report", action="store_true", help=argparse.SUPPRESS)  # set on --jobs workers
    arguments = parser.parse_args(argv)
    if (arguments.source is None) != (arguments.target is None):
        parser.error("--source and --target go together")
    if arguments.jobs < 1:
        parser.error("--jobs must be at least 1")
    return arguments


def task_groups(tasks: tuple, jobs: int) -> list[list]:
    """Tasks dealt round-robin to ``jobs`` workers (no empty worker)."""
    return [list(tasks[index::jobs]) for index in range(min(jobs, len(tasks)))]


def run_workers(arguments: argparse.Namespace, suite: Suite, argv: list[str]) -> list[str]:
    """Run the suite's tasks in ``arguments.jobs`` processes; returns the failed workers' task lists.

    A worker is this command again with its own ``--tasks`` and no report (later options
    override earlier ones); every worker appends to the same ``cells.jsonl``, one whole
    line per finished cell, and the parent writes the results from it afterwards.
    """
    workers = []
    for group in task_groups(suite.tasks, arguments.jobs):
        slugs = [slug(task.name) for task in group]
        command = [sys.executable, "-m", "benchmarks.run", *argv, "--tasks", *slugs, "--jobs", "1", "--no-report"]
        print(f"worker for {', '.join(task.name for task in group)}: {' '.join(command[1:])}", flush=True)
        workers.append((slugs, subprocess.Popen(command, cwd=REPO_ROOT)))
    failed = []
    try:
        for slugs, process in workers:
            if process.wait() != 0:
                failed.append(" ".join(slugs))
    except KeyboardInterrupt:
        for _, process in workers:
            process.terminate()
        raise
    return failed


def select_suite(arguments: argparse.Namespace) -> tuple[Suite, str]:
    """The suite to run and the name its results are written under."""
    suite = SUITES[arguments.suite]
    if arguments.semi_supervised:
        suite = suite.semi_supervised()
    name = suite.name
    if arguments.source is not None:
        task = custom_task(
            arguments.source, arguments.target, image_size=arguments.image_size, stem=arguments.stem, horizontal_flip=arguments.flip
        )
        suite = suite.with_tasks((task,))
        name = f"{suite.name}-{slug(task.name)}"
    if arguments.tasks:
        # By name (quote it: "mnist->usps") or by its shell-safe slug (mnist-usps).
        known = {task.name: task for task in suite.tasks} | {slug(task.name): task for task in suite.tasks}
        unknown = [name for name in arguments.tasks if name not in known]
        if unknown:
            names = ", ".join(f"{task.name} ({slug(task.name)})" for task in suite.tasks)
            raise SystemExit(f"unknown task(s) {unknown}; the {suite.name} suite has {names}")
        suite = suite.with_tasks(tuple(dict.fromkeys(known[name] for name in arguments.tasks)))
    if arguments.seeds:
        suite = suite.with_seeds(tuple(arguments.seeds))
    if arguments.budgets:
        known_budgets = {budget.name: budget for budget in suite.budgets}
        unknown = [name for name in arguments.budgets if name not in known_budgets]
        if unknown:
            raise SystemExit(f"unknown budget(s) {unknown}; the {suite.name} suite has {', '.join(known_budgets)}")
        suite = dataclasses.replace(suite, budgets=tuple(known_budgets[name] for name in dict.fromkeys(arguments.budgets)))
    if arguments.threads is not None:
        suite = suite.with_threads(arguments.threads or None)
    return suite, name


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    arguments = parse_arguments(argv)
    suite, results_name = select_suite(arguments)
    if suite.threads:
        torch.set_num_threads(suite.threads)
    started = time.perf_counter()
    load_start = load_average()
    work = arguments.work.resolve()
    # With workers, they train and record everything; this process then only reads the records.
    use_workers = arguments.jobs > 1 and not arguments.report_only and len(suite.tasks) > 1
    recorded_only = arguments.report_only or use_workers
    failed_workers = []
    if use_workers:
        for task in suite.tasks:  # unpack and index the data once, before workers could race on it
            for domain in (task.source, task.target):
                load_domain(domain, data_dir=arguments.data_dir, work_dir=work)
        failed_workers = run_workers(arguments, suite, argv)
    for tasks in failed_workers:
        print(f"worker for {tasks} failed; the results below are partial", flush=True)
    suite_dir = work / results_name
    store = CellStore(suite_dir / "cells.jsonl")
    progress_bar = sys.stderr.isatty()

    print(f"suite {results_name}: {suite.description}", flush=True)
    print(f"  load average {load_start}; {torch.get_num_threads()} torch thread(s); work folder {work}", flush=True)
    code = git_state()
    total_cells = len(suite.tasks) * len(suite.budgets) * len(suite.seeds) * len(suite.all_methods)
    skipped_tasks = [task.name for task in SUITES[arguments.suite].tasks if task not in suite.tasks and not arguments.source]
    expected_cells = total_cells + len(skipped_tasks) * len(suite.budgets) * len(suite.seeds) * len(suite.all_methods)
    teachers, cells, deployments, domains = {}, [], [], {}

    # Data and teachers of every task first, then the cells seed by seed across tasks, so a
    # partial run of a long suite has whole seeds of every task rather than one task only.
    prepared = []
    for task in suite.tasks:
        print(f"task {task.name}", flush=True)
        source = load_domain(task.source, data_dir=arguments.data_dir, work_dir=work)
        target = load_domain(task.target, data_dir=arguments.data_dir, work_dir=work)
        for domain in (source, target):
            domains[domain.name] = _domain_record(domain)
        if recorded_only:
            teacher, teacher_record = None, recorded_teacher(suite, task, source, work / "teachers")
            if teacher_record is None:
                print("  no teacher recorded for these settings; skipping the task", flush=True)
                continue
        else:
            teacher = ensure_teacher(suite, task, source, target, teachers_dir=work / "teachers", progress_bar=progress_bar)
            teacher_record = teacher.record
        teachers[task.name] = teacher_record
        prepared.append((task, target, teacher, teacher_record))

    done = 0
    for seed in suite.seeds:
        for task, target, teacher, teacher_record in prepared:
            kept_student = suite_dir / "students" / f"{slug(task.name)}-4ds.safetensors"
            for budget in suite.budgets:
                for method in suite.all_methods:
                    done += 1
                    key = cell_key(suite, task, budget, method, seed, teacher_record)
                    label = f"[{done}/{total_cells}] {task.name} {budget.name} seed {seed} {method}"
                    record = store.get(key)
                    if record is None and not recorded_only:
                        print(f"  {label}: running", flush=True)
                        keep = seed == suite.seeds[0] and budget == suite.budgets[0] and method == "4ds"
                        record = run_cell(
                            suite, task, budget, method, seed, teacher=teacher, target=target, key=key,
                            progress_bar=progress_bar, keep_student=kept_student if keep else None,
                        )
                        record["code_commit"] = code["commit"]
                        record["command"] = command_line()
                        store.append(record)
                    elif record is not None:
                        print(f"  {label}: recorded earlier, skipped", flush=True)
                    if record is None:
                        continue
                    cells.append(record)
                    _print_cell(label, record)
            if seed == suite.seeds[0] and not arguments.skip_deployment:
                record = _deployment(
                    suite, task, teacher, teacher_record, kept_student, store, suite_dir, measure=not recorded_only
                )
                if record is not None:
                    deployments.append(record)

    load_end = load_average()
    if arguments.no_report:  # a --jobs worker: the parent writes the results
        return 0
    results = _results(
        suite, results_name, teachers=teachers, cells=cells, deployments=deployments, domains=list(domains.values()),
        expected_cells=expected_cells, skipped_tasks=skipped_tasks, load=(load_start, load_end),
        seconds=time.perf_counter() - started, code=code, report_only=arguments.report_only,
        jobs=len(task_groups(suite.tasks, arguments.jobs)) if use_workers else 1,
    )
    out = arguments.out.resolve()
    report.write_json(results, out / f"{results_name}.json")
    (out / f"{results_name}.md").write_text(report.markdown(results))
    report.plot(results, out / f"{results_name}.png")
    report.plot_curves(results, out / f"{results_name}-curves.png")
    print(f"wrote {out / results_name}.json, .md and .png ({len(cells)}/{expected_cells} cells)", flush=True)
    print(f"load average at end {load_end}; this invocation took {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    return 1 if failed_workers else 0


def _deployment(suite, task, teacher, teacher_record, kept_student, store, suite_dir, *, measure: bool) -> dict | None:
    """Sizes, parity and latencies of a task, measured once (after its first seed, which keeps a 4ds student)."""
    key = fingerprint(
        {"task": task.name, "teacher": teacher_record["key"], "student": str(kept_student),
         "student_exists": kept_student.is_file(), "suite": suite.key_settings()}
    )
    record = store.get(key)
    if record is None and measure:
        record = measure_deployment(
            suite, task, teacher=teacher, student_weights=kept_student, onnx_dir=suite_dir / "onnx", key=key
        )
        store.append(record)
    return record


def _results(
    suite: Suite, name: str, *, teachers, cells, deployments, domains, expected_cells, skipped_tasks, load, seconds, code,
    report_only, jobs,
) -> dict:
    recorded = sum(c["wall_seconds"] for c in cells) + sum(t["wall_seconds"] for t in teachers.values())
    recorded += sum(d["seconds"] for d in deployments)
    return {
        "suite": name,
        "description": suite.description,
        "partial": len(cells) < expected_cells,
        "cells_done": len(cells),
        "cells_expected": expected_cells,
        "tasks_not_run": skipped_tasks,
        "command": command_line(),
        "report_only": report_only,
        "worker_processes": jobs,
        "cell_commands": sorted({cell.get("command") or "not recorded" for cell in cells}),
        "git": code,
        "git_at_end": git_state(),
        "cell_commits": sorted({cell.get("code_commit") or "not recorded" for cell in cells}),
        "machine": machine(),
        "written_at": now(),
        "load_average": {"start": load[0], "end": load[1]},
        "invocation_seconds": round(seconds, 1),
        "recorded_seconds": round(recorded, 1),
        "seeds": list(suite.seeds),
        "tasks": [task.name for task in suite.tasks],
        "settings": suite.settings(),
        "domains": domains,
        "teachers": list(teachers.values()),
        "summary": report.summarise(
            cells, teachers, [task.name for task in suite.tasks], [budget.name for budget in suite.budgets], list(suite.all_methods)
        ),
        "deployment": deployments,
        "cells": cells,
    }


def _domain_record(domain) -> dict:
    counts = domain.table["split"].value_counts().to_dict()
    return {
        "name": domain.name,
        "classes": domain.classes,
        "images": {split: int(count) for split, count in counts.items()},
        "split_rule": domain.split_rule,
        "archive_sha256": domain.archive_sha256,
        "content_sha256": domain.content_digest(),
    }


def _print_cell(label: str, record: dict) -> None:
    accuracy = record["accuracy"]
    extra = "".join(f", {role} {value:.3f}" for role, value in accuracy.items() if role != "student")
    print(
        f"  {label}: student {accuracy['student']:.3f}{extra} | {record['wall_seconds']:.0f} s, "
        f"{record['images_per_second']:.0f} img/s | load {record['load_average_after'][0]}",
        flush=True,
    )


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    sys.exit(main())
