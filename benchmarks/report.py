"""From recorded cells to the published results: summary statistics, JSON, markdown, plot.

Spread is the sample standard deviation over seeds. Margins of 4ds over an
alternative are paired by seed (same labelled images, same student initialisation):
the mean and standard deviation of ``acc(4ds, seed) - acc(alternative, seed)``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fourds.method.registry import method_names, method_spec

METHOD_LABELS = {
    "student_scratch": "scratch",
    "kd": "kd",
    "two_stage": "two_stage",
    "4ds": "4ds",
    "4ds+guard": "4ds + scratch guard",
    "4ds_adapted_teacher": "4ds adapted teacher",
    "two_stage_finetuned_teacher": "fine-tuned teacher",
}
"""How the report names a method or a role; the registered name where none is given."""
COLOURS = {
    "student_scratch": "#7f7f7f",
    "kd": "#1f77b4",
    "two_stage": "#2ca02c",
    "4ds": "#d62728",
    "4ds+guard": "#9467bd",
    "4ds_adapted_teacher": "#ff9896",
}
GUARDED = "4ds+guard"


def alternatives(columns: list[str]) -> list[str]:
    """Every registered method but 4ds (what 4ds is compared with), in the results' column order, any not run last."""
    others = [name for name in method_names() if name != "4ds"]
    return sorted(others, key=lambda name: columns.index(name) if name in columns else len(columns))


def _label(name: str) -> str:
    return METHOD_LABELS.get(name, name)


def method_columns(settings: dict) -> list[str]:
    """The plain methods, then the guarded ones (``<method>+guard``), as in the suite."""
    return list(settings["methods"]) + [f"{method}+guard" for method in settings.get("guarded_methods", [])]


def mean_std(values: list[float]) -> dict:
    values = [value for value in values if value is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": spread, "n": len(values)}


def summarise(cells: list[dict], teachers: dict[str, dict], tasks: list[str], budgets: list[str], methods: list[str]) -> list[dict]:
    """One entry per (task, budget): accuracies, margins, wall times and ratios."""
    summary = []
    for task in tasks:
        for budget in budgets:
            group = [cell for cell in cells if cell["task"] == task and cell["budget"] == budget]
            by_method = {method: sorted((c for c in group if c["method"] == method), key=lambda c: c["seed"]) for method in methods}
            accuracy = {method: mean_std([c["accuracy"]["student"] for c in rows]) for method, rows in by_method.items()}
            if "4ds" in by_method:
                accuracy["4ds_adapted_teacher"] = mean_std(
                    [c["accuracy"].get("adapted_teacher") for c in by_method["4ds"]]
                )
            if "two_stage" in by_method:
                accuracy["two_stage_finetuned_teacher"] = mean_std(
                    [c["accuracy"].get("finetuned_teacher") for c in by_method["two_stage"]]
                )
            teacher = teachers.get(task)
            entry = {
                "task": task,
                "budget": budget,
                "labelled_images": sorted({c["labelled_images"] for c in group}),
                "unlabelled_images": sorted({c.get("unlabelled_images", 0) for c in group if c.get("unlabelled_images")}),
                "teacher_source_only": teacher["target_test_accuracy"] if teacher else None,
                "accuracy": accuracy,
                "margins_4ds": _margins(by_method),
                "wall_seconds": {m: mean_std([c["wall_seconds"] for c in rows]) for m, rows in by_method.items()},
                "images_per_second": {m: mean_std([c["images_per_second"] for c in rows]) for m, rows in by_method.items()},
                "wall_ratio_4ds_over": _wall_ratios(by_method),
                "validation_curves": _curve_summary(by_method),
            }
            if GUARDED in by_method:
                entry["guard"] = _guard_summary(by_method)
            summary.append(entry)
    return summary


def _margins(by_method: dict[str, list[dict]]) -> dict:
    fourds = {c["seed"]: c["accuracy"]["student"] for c in by_method.get("4ds", [])}
    margins = {}
    for alternative in alternatives(list(by_method)):
        other = {c["seed"]: c["accuracy"]["student"] for c in by_method.get(alternative, [])}
        seeds = sorted(set(fourds) & set(other))
        differences = [fourds[seed] - other[seed] for seed in seeds]
        margins[alternative] = {**mean_std(differences), "wins": sum(d > 0 for d in differences), "seeds": seeds}
    return margins


def _curve_summary(by_method: dict[str, list[dict]]) -> dict:
    """Per method: the student's mean validation curve over seeds, and how much it still moved over
    the last quarter of training (last point minus the first point at or after 75% of the steps).
    Empty where the cells recorded no curve (no monitoring images)."""
    summary = {}
    for method, rows in by_method.items():
        curves = [c["validation_curves"]["student"] for c in rows if c.get("validation_curves", {}).get("student")]
        if not curves:
            continue
        steps = [step for step, _ in curves[0]]
        late = next(index for index, step in enumerate(steps) if step >= 0.75 * steps[-1])
        summary[method] = {
            "steps": steps,
            "mean_accuracy": [statistics.fmean(curve[i][1] for curve in curves) for i in range(len(steps))],
            "last_quarter_change": mean_std([curve[-1][1] - curve[late][1] for curve in curves]),
            "from_step": steps[late],
        }
    return summary


def _guard_summary(by_method: dict[str, list[dict]]) -> dict:
    """How often the guard kept the scratch student, and the guarded student against scratch and 4ds."""
    guarded = {c["seed"]: c for c in by_method[GUARDED]}
    summary = {"kept_scratch": sum(c["guard"]["decision"] == "scratch" for c in guarded.values() if c.get("guard")),
               "seeds": sorted(guarded)}
    for name in ("student_scratch", "4ds"):
        other = {c["seed"]: c["accuracy"]["student"] for c in by_method.get(name, [])}
        seeds = sorted(set(guarded) & set(other))
        differences = [guarded[seed]["accuracy"]["student"] - other[seed] for seed in seeds]
        summary[f"minus_{name}"] = {**mean_std(differences), "wins": sum(d > 0 for d in differences), "seeds": seeds,
                                    "worst": min(differences, default=None)}
    return summary


def _wall_ratios(by_method: dict[str, list[dict]]) -> dict:
    fourds = mean_std([c["wall_seconds"] for c in by_method.get("4ds", [])])["mean"]
    ratios = {}
    for alternative in alternatives(list(by_method)):
        other = mean_std([c["wall_seconds"] for c in by_method.get(alternative, [])])["mean"]
        ratios[alternative] = fourds / other if fourds and other else None
    return ratios


# ---------------------------------------------------------------------- JSON


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


# ---------------------------------------------------------------------- markdown


def _percent(stat: dict | None, *, spread: bool = True) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    text = f"{100 * stat['mean']:.1f}"
    if spread and stat.get("n", 0) > 1:
        text += f" ± {100 * stat['std']:.1f}"
    return text


def _points(stat: dict) -> str:
    if stat.get("mean") is None:
        return "-"
    sign = "+" if stat["mean"] >= 0 else "−"
    return f"{sign}{abs(100 * stat['mean']):.1f} ± {100 * stat['std']:.1f} ({stat['wins']}/{stat['n']})"


def _seconds(stat: dict) -> str:
    return "-" if stat.get("mean") is None else f"{stat['mean']:.0f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f}"


def markdown(results: dict) -> str:
    summary = results["summary"]
    methods = method_columns(results["settings"])
    compared = alternatives(methods)
    distilling = [other for other in compared if method_spec(other).needs_teacher]
    seeds = results["seeds"]
    lines = [f"# Benchmark results: `{results['suite']}` suite" + (" (PARTIAL)" if results["partial"] else ""), ""]
    if results["partial"]:
        lines += [
            f"**Partial:** {results['cells_done']} of {results['cells_expected']} cells finished; "
            "rows with fewer seeds than listed are incomplete"
            + (f"; tasks not run: {', '.join(results['tasks_not_run'])}" if results.get("tasks_not_run") else "")
            + ".",
            "",
        ]
    git = results["git"]
    lines += [
        f"- Command: `{results['command']}`"
        + (" (results rewritten from recorded cells; see `cell_commands` in the JSON)" if results.get("report_only") else ""),
        f"- Code: commit `{git['commit']}`" + (" (working tree had other changes, see JSON)" if git.get("dirty") else "")
        + (f"; cells computed at {', '.join(c[:12] for c in results['cell_commits'])}" if results.get("cell_commits") else ""),
        f"- Machine: {results['machine']['cpu_model']}, {results['machine']['logical_cores']} cores, "
        f"torch {results['machine']['torch']} ({results['machine']['torch_threads']} threads), no GPU",
        f"- Load average (1/5/15 min) at start {results['load_average']['start']}, at end {results['load_average']['end']}",
        f"- This invocation: {results['invocation_seconds'] / 60:.1f} min"
        + (f" with {results['worker_processes']} worker processes" if results.get("worker_processes", 1) > 1 else "")
        + f"; compute recorded in all cells, teachers and deployment checks: {results['recorded_seconds'] / 60:.1f} min",
        f"- Seeds {', '.join(map(str, seeds))}; teacher {results['settings']['teacher_arch']}, "
        f"student {results['settings']['student_arch']}; nothing is selected on a test split (last step kept).",
        "",
        f"## Target test accuracy (%), mean ± std over seeds",
        "",
    ]
    header = ["task", "budget (labels)", "teacher, source only"] + [_label(m) for m in methods]
    extra_roles = [role for role in ("4ds_adapted_teacher", "two_stage_finetuned_teacher") if any(role in s["accuracy"] for s in summary)]
    header += [_label(role) for role in extra_roles]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in summary:
        best = max(
            (entry["accuracy"][m]["mean"] for m in methods if entry["accuracy"][m]["mean"] is not None), default=None
        )
        cells = []
        for method in methods:
            text = _percent(entry["accuracy"][method])
            if best is not None and entry["accuracy"][method]["mean"] == best:
                text = f"**{text}**"
            cells.append(text)
        teacher = entry["teacher_source_only"]
        budget = f"{entry['budget']} ({_labels(entry['labelled_images'])}"
        budget += f" + {_labels(entry['unlabelled_images'])} unlabelled)" if entry.get("unlabelled_images") else ")"
        row = [entry["task"], budget, "-" if teacher is None else f"{100 * teacher:.1f}"]
        row += cells + [_percent(entry["accuracy"].get(role)) for role in extra_roles]
        lines.append("| " + " | ".join(row) + " |")

    lines += [
        "",
        "## 4ds student minus each alternative (percentage points; paired by seed: mean ± std (4ds wins/seeds))",
        "",
        "| task | budget | " + " | ".join(f"vs {_label(other)}" for other in compared) + " |",
        "|" + "---|" * (len(compared) + 2),
    ]
    for entry in summary:
        margins = entry["margins_4ds"]
        lines.append(
            f"| {entry['task']} | {entry['budget']} | "
            + " | ".join(_points(margins[alternative]) for alternative in compared)
            + " |"
        )

    guarded = [entry for entry in summary if entry.get("guard")]
    if guarded:
        lines += [
            "",
            "## Scratch guard: 4ds, or the scratch student when that scores higher on held-out labels",
            "",
            "`4ds+guard` holds a stratified quarter of the labelled images out as a validation split, trains 4ds and a "
            "scratch student (same steps and initial weights) on the rest, and keeps whichever is more accurate on "
            "the held-out quarter (`fourds.training.guard`). Paired by seed against the plain cells, which train on "
            "all the labels: mean ± std (guarded wins/seeds), worst seed.",
            "",
            "| task | budget | kept scratch | 4ds+guard minus scratch | worst seed | 4ds+guard minus 4ds | worst seed |",
            "|---|---|---|---|---|---|---|",
        ]
        for entry in guarded:
            guard = entry["guard"]
            row = [entry["task"], entry["budget"], f"{guard['kept_scratch']}/{len(guard['seeds'])}"]
            for name in ("student_scratch", "4ds"):
                stat = guard[f"minus_{name}"]
                row += [_points(stat), "-" if stat["worst"] is None else f"{100 * stat['worst']:+.1f}"]
            lines.append("| " + " | ".join(row) + " |")

    curves = [entry for entry in summary if entry.get("validation_curves")]
    if curves:
        lines += [
            "",
            "## Had the students stopped improving? Validation accuracy (%) along training",
            "",
            "Held-out labelled target training images (never trained on, never used to select: the last step is "
            "kept). Mean over seeds at the last step, and the change over the last quarter of training (last point "
            "minus the point at 75% of the steps), mean ± std over seeds. Curves: the `-curves.png` plot.",
            "",
            "| task | budget | " + " | ".join(_label(m) for m in methods) + " |",
            "|" + "---|" * (len(methods) + 2),
        ]
        for entry in curves:
            row = [entry["task"], entry["budget"]]
            for method in methods:
                curve = entry["validation_curves"].get(method)
                if curve is None:
                    row.append("-")
                    continue
                change = curve["last_quarter_change"]
                row.append(
                    f"{100 * curve['mean_accuracy'][-1]:.1f} ({100 * change['mean']:+.1f} ± {100 * change['std']:.1f})"
                )
            lines.append("| " + " | ".join(row) + " |")

    lines += [
        "",
        "## Training cost: wall seconds per run (mean), training images/s, and 4ds time ratios",
        "",
        "two_stage includes its teacher fine-tuning, 4ds + scratch guard its scratch student. "
        "Every student gets the same optimiser steps.",
        "",
        "| task | budget | " + " | ".join(f"{_label(m)} s (img/s)" for m in methods)
        + "".join(f" | 4ds / {_label(other)}" for other in distilling) + " |",
        "|" + "---|" * (len(methods) + len(distilling) + 2),
    ]
    for entry in summary:
        row = [entry["task"], entry["budget"]]
        for method in methods:
            speed = entry["images_per_second"][method]
            row.append(f"{_seconds(entry['wall_seconds'][method])} ({_seconds(speed)})")
        ratios = entry["wall_ratio_4ds_over"]
        row += [_ratio(ratios.get(other)) for other in distilling]
        lines.append("| " + " | ".join(row) + " |")

    if results["deployment"]:
        lines += [
            "",
            f"## Deployment: student vs teacher (CPU, {results['deployment'][0].get('latency_threads', '?')} thread(s) "
            "in both runtimes; latency = median ms per call)",
            "",
            "| task | input | parameters student / teacher | ONNX MB student / teacher | student ONNX b1 / b64 | "
            "teacher PyTorch b1 / b64 | student PyTorch b1 / b64 | teacher ONNX b1 / b64 | student parity max abs diff |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for record in results["deployment"]:
            latency = record["latency_ms"]

            def pair(name: str) -> str:
                return " / ".join(f"{latency[name][b]['median_ms']:.1f}" for b in ("1", "64"))

            params, sizes = record["parameters"], record["onnx_bytes"]
            lines.append(
                f"| {record['task']} | {record['image_size']} px | {params['student'] / 1e6:.1f} M / {params['teacher'] / 1e6:.1f} M "
                f"({params['student'] / params['teacher']:.2f}x) | {_megabytes(sizes['student'])} / {_megabytes(sizes['teacher'])} | "
                f"{pair('onnx_student')} | {pair('torch_teacher')} | {pair('torch_student')} | {pair('onnx_teacher')} | "
                f"{record['parity_max_abs_diff']['student']:.1e} |"
            )

    lines += [
        "",
        "## Source teachers (trained from scratch, once per task)",
        "",
        "| task | arch | source training images | steps x batch | wall s | source test acc | target test acc (source only) |",
        "|---|---|---|---|---|---|---|",
    ]
    for teacher in results["teachers"]:
        lines.append(
            f"| {teacher['task']} | {teacher['arch']} | {teacher['source_train_images']} | {teacher['steps']} x {teacher['batch_size']} | "
            f"{teacher['wall_seconds']:.0f} | {100 * teacher['source_test_accuracy']:.1f} ({teacher['source_test_images']} img) | "
            f"{100 * teacher['target_test_accuracy']:.1f} ({teacher['target_test_images']} img) |"
        )
    schedule = results["settings"]["schedule"]
    lines += [
        "",
        "## Settings",
        "",
        f"- Student steps {schedule['student_steps']} x batch {schedule['batch_size']} for every student method; "
        f"two_stage fine-tunes the teacher for {schedule['finetune_steps']} steps first.",
        f"- Teacher: {schedule['teacher_steps']} steps x batch {schedule['teacher_batch_size']}, "
        f"{schedule['teacher_optimizer']} lr {schedule['teacher_lr']} (warm-up {schedule['teacher_warmup_steps']} steps, cosine), "
        f"source images per class: {schedule['teacher_images_per_class'] or 'all'}.",
        f"- Test images per class: {schedule['test_images_per_class'] or 'all'} (a fixed stratified subset when set).",
        (
            f"- Semi-supervised: every target training image outside the label budget (and the monitoring images) "
            f"is given as unlabelled, {results['settings']['unlabelled_ratio']:g} per labelled image in each batch, "
            "the same images at the same step for every method of a seed; scratch uses none (no label-free term)."
            if results["settings"].get("unlabelled_ratio")
            else "- Labelled only: no unlabelled images."
        ),
        f"- Monitoring images per class (validation curves): {schedule.get('monitor_images_per_class') or 'none'}.",
        "- Label budgets: " + "; ".join(
            f"{b['name']} = {100 * b['fraction']:g}% of each target training class, at least {b['min_per_class']}"
            for b in results["settings"]["budgets"]
        ) + ".",
        "- 4Ds settings: " + ", ".join(f"{k}={v}" for k, v in results["settings"]["fourds"].items()) + ".",
        "- Data: " + "; ".join(f"{d['name']}: {d['split_rule']}" for d in results["domains"]) + ".",
        "",
    ]
    return "\n".join(lines)


def _labels(counts: list[int]) -> str:
    if not counts:
        return "-"
    return str(counts[0]) if len(counts) == 1 else f"{min(counts)}-{max(counts)}"


# ---------------------------------------------------------------------- plot


def plot(results: dict, path: Path) -> None:
    """Accuracy per method and budget, one panel per task, error bars = std over seeds."""
    summary = results["summary"]
    tasks = list(dict.fromkeys(entry["task"] for entry in summary))
    roles = method_columns(results["settings"]) + ["4ds_adapted_teacher"]
    figure = Figure(figsize=(5.5 * len(tasks), 4.2))
    width = 0.8 / len(roles)
    # Zoom in on the range the bars span (10-point steps): differences of a point or two are the story.
    lowest = min(
        (100 * (stat["mean"] - stat["std"]) for entry in summary for role in roles
         if (stat := entry["accuracy"].get(role)) and stat["mean"] is not None),
        default=0.0,
    )
    teachers = [100 * entry["teacher_source_only"] for entry in summary if entry["teacher_source_only"] is not None]
    bottom = max(0.0, 10 * ((min([lowest, *teachers]) - 5) // 10))
    for index, task in enumerate(tasks):
        axes = figure.add_subplot(1, len(tasks), index + 1)
        entries = [entry for entry in summary if entry["task"] == task]
        for position, role in enumerate(roles):
            means, errors, xs = [], [], []
            for x, entry in enumerate(entries):
                stat = entry["accuracy"].get(role)
                if stat and stat["mean"] is not None:
                    xs.append(x + (position - (len(roles) - 1) / 2) * width)
                    means.append(100 * stat["mean"])
                    errors.append(100 * stat["std"])
            axes.bar(xs, means, width, yerr=errors, capsize=3, label=_label(role), color=COLOURS.get(role))
        teacher = entries[0]["teacher_source_only"] if entries else None
        if teacher is not None:
            axes.axhline(100 * teacher, color="black", linestyle="--", linewidth=1, label="teacher, source only")
        axes.set_xticks(
            range(len(entries)), labels=[f"{e['budget']}\n({_labels(e['labelled_images'])} labels)" for e in entries]
        )
        axes.set_ylim(bottom, 100)
        axes.set_ylabel("target test accuracy (%)")
        axes.set_title(task)
        axes.grid(axis="y", alpha=0.3)
        if index == 0:
            axes.legend(fontsize=8, loc="lower right")
    seeds = len(results["seeds"])
    figure.suptitle(
        f"{results['suite']} suite: mean ± std over {seeds} seeds" + (" (partial)" if results["partial"] else "")
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure).print_png(str(path))



def plot_curves(results: dict, path: Path) -> bool:
    """Mean validation accuracy along training per method, one panel per (task, budget); False if no curves."""
    entries = [entry for entry in results["summary"] if entry.get("validation_curves")]
    if not entries:
        return False
    figure = Figure(figsize=(4.2 * len(entries), 3.6))
    for index, entry in enumerate(entries):
        axes = figure.add_subplot(1, len(entries), index + 1)
        for method, curve in entry["validation_curves"].items():
            axes.plot(curve["steps"], [100 * value for value in curve["mean_accuracy"]], marker="o", markersize=3,
                      label=_label(method), color=COLOURS.get(method))
        axes.set_title(f"{entry['task']} {entry['budget']}", fontsize=10)
        axes.set_xlabel("student step")
        axes.set_ylabel("validation accuracy (%)")
        axes.grid(alpha=0.3)
        if index == 0:
            axes.legend(fontsize=8, loc="lower right")
    figure.suptitle(f"{results['suite']}: validation curves, mean over seeds")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure).print_png(str(path))
    return True
