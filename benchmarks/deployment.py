"""What a deployment of the student saves over the teacher, measured once per task.

Parameters and ONNX file size of student vs teacher; ONNX parity of the student
(onnxruntime vs PyTorch, max abs diff of logits); CPU latency at batch 1 and 64 of the
student in onnxruntime (how it is served) vs the teacher in PyTorch (how it was
trained and would otherwise be used), plus the other two combinations for context.
Both runtimes use the same number of CPU threads (PyTorch's setting, ``--threads``).
Everything goes through ``fourds.export.onnx``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.cells import Teacher, load_average, now, slug
from benchmarks.suites import Suite, TaskSpec
from fourds.config import ExportConfig
from fourds.export.onnx import export_and_check, measure_torch_latency
from fourds.models import build_classifier, load_classifier

LATENCY_BATCH_SIZES = (1, 64)


def measure_deployment(
    suite: Suite,
    task: TaskSpec,
    *,
    teacher: Teacher,
    student_weights: Path | None,
    onnx_dir: Path,
    key: str,
) -> dict:
    """Sizes, parity and latencies of the student (trained 4ds weights when given) and the teacher."""
    classes = teacher.record["classes"]
    if student_weights is not None and student_weights.is_file():
        student, _ = load_classifier(student_weights, arch=suite.student_arch, classes=classes, stem=task.stem)
        student_origin = f"trained 4ds student ({student_weights.name})"
    else:
        student = build_classifier(suite.student_arch, len(classes), stem=task.stem)
        student_origin = "freshly initialised student (no trained 4ds student was kept)"
    side = task.image_size
    load_before = load_average()
    started = time.perf_counter()
    print(f"  deployment of {task.name}: ONNX export, parity and latency", flush=True)

    models = {"student": (suite.student_arch, student), "teacher": (suite.teacher_arch, teacher.model)}
    threads = torch.get_num_threads()  # onnxruntime gets as many threads as PyTorch, for a like-for-like latency
    measured = ExportConfig(latency_batch_sizes=list(LATENCY_BATCH_SIZES), latency_repeats=suite.schedule.latency_repeats)
    checked = {
        role: export_and_check(model, onnx_dir / f"{slug(task.name)}-{role}.onnx", image_size=side, config=measured,
                               arch=arch, threads=threads)
        for role, (arch, model) in models.items()
    }
    exports = {role: result.export for role, result in checked.items()}
    parity = {role: result.parity_max_abs_diff for role, result in checked.items()}
    latency: dict[str, dict[str, dict[str, float]]] = {}
    for role, (_, model) in models.items():
        latency[f"onnx_{role}"] = {str(batch): summary for batch, summary in checked[role].latency.items()
                                   if batch in LATENCY_BATCH_SIZES}
        latency[f"torch_{role}"] = {
            str(batch_size): measure_torch_latency(model, batch_size=batch_size, image_size=side,
                                                   repeats=suite.schedule.latency_repeats)
            for batch_size in LATENCY_BATCH_SIZES
        }

    record = {
        "kind": "deployment",
        "key": key,
        "task": task.name,
        "image_size": side,
        "student_origin": student_origin,
        "parameters": {"student": _parameters(student), "teacher": _parameters(teacher.model)},
        "onnx_bytes": {role: result.size_bytes for role, result in exports.items()},
        "onnx_sha256": {role: result.sha256 for role, result in exports.items()},
        "onnx_opset": {role: result.opset for role, result in exports.items()},
        "parity_max_abs_diff": parity,
        "latency_threads": threads,
        "latency_ms": latency,
        "seconds": round(time.perf_counter() - started, 2),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "finished_at": now(),
    }
    student_ms = latency["onnx_student"]
    teacher_ms = latency["torch_teacher"]
    print(
        "    student ONNX "
        + ", ".join(f"b{b} {student_ms[str(b)]['median_ms']:.1f} ms" for b in LATENCY_BATCH_SIZES)
        + " | teacher PyTorch "
        + ", ".join(f"b{b} {teacher_ms[str(b)]['median_ms']:.1f} ms" for b in LATENCY_BATCH_SIZES)
        + f" | parity {parity['student']:.2e}",
        flush=True,
    )
    return record


def _parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
