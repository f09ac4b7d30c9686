"""What the pipeline commands print: a run's accuracies, the promotion decision, where the champion is, timings."""

from __future__ import annotations

from pathlib import Path

import click

from fourds.exit_codes import EXIT_NOT_PROMOTED
from fourds_app.session import Session


def print_distill_result(session: Session, outcome) -> bool:
    """The run's accuracies, the promotion decision and where the champion is; returns whether it was promoted."""
    from fourds.tracking import configure_mlflow

    configure_mlflow(session.workspace, session.config.tracking)
    registered = outcome.outputs["registered_version"]
    promotion = outcome.outputs["promotion"]
    onnx = outcome.outputs["onnx_model"]
    evaluation = outcome.outputs["evaluation"]
    click.echo(f"registered {registered.model_name} version {registered.version} (alias challenger)")
    guard = registered.tags.get("fourds.guard")
    if guard is not None:
        click.echo(f"  scratch guard: {guard}")
    click.echo("  target test accuracy:")
    for name in sorted(evaluation.metrics):
        if name.endswith("/accuracy"):
            click.echo(f"    {name.removeprefix('test/').removesuffix('/accuracy')}: {evaluation.metrics[name]:.4f}")
    champion = evaluation.champion
    if champion is not None:
        shown = (f"{champion.accuracy:.4f} on this run's test split" if champion.accuracy is not None
                 else f"not re-scored ({champion.problem})")
        if champion.recorded_accuracy is not None:
            shown += f", {champion.recorded_accuracy:.4f} recorded at its registration"
        click.echo(f"  champion before this run: version {champion.version}, test accuracy {shown}")
    if promotion.promoted:
        click.echo(f"promoted to champion: version {promotion.version}")
    else:
        click.echo(f"not promoted: version {promotion.version} stays challenger "
                   f"(exit status {EXIT_NOT_PROMOTED}); the gates:")
    for reason in promotion.reasons:
        click.echo(f"  {reason}")
    if promotion.champion_version is None:
        click.echo(f"champion: none yet (models:/{promotion.model_name}@champion is not set)")
    else:
        from mlflow import MlflowClient

        click.echo(f"champion: models:/{promotion.model_name}@champion = version {promotion.champion_version}")
        files = MlflowClient().get_model_version_download_uri(promotion.model_name, promotion.champion_version)
        click.echo(f"  its files: {files.removeprefix('file://')}/data/classifier/ (model.onnx, student.safetensors)")
        click.echo(f"  use it: fourds predict {promotion.model_name}@champion IMAGE_OR_FOLDER...")
    if Path(onnx.path).is_file():  # written where the export step ran: here unless steps run elsewhere
        click.echo(f"this run's ONNX file: {onnx.path} (sha256 {onnx.sha256[:12]}...)")
    return promotion.promoted


PRODUCT_STEPS = ("train_teacher_model", "distill_student", "evaluate_models", "export_onnx")
"""Steps whose time is the product's own work (training, scoring, ONNX export). Every other second of a
command is orchestration overhead: process start-up and imports, ZenML, MLflow runs and registry, GX
validation, DVC versioning (the issue 11 budget: at most 10% of the demo's wall time)."""


def print_timings(outcomes, *, total_seconds: float, startup_seconds: float = 0.0,
                  excluded: dict[str, float] | None = None) -> None:
    """Training time (inside the trainer) against everything else (stack start-up, steps' I/O), then the
    orchestration overhead as a share of the wall time. ``startup_seconds`` ran before ``total_seconds``
    began (process start, imports); ``excluded`` names work inside ``total_seconds`` that is neither the
    product's nor orchestration (the demo's image generation)."""
    from fourds.runs.records import TrainedWeights

    excluded = excluded or {}
    training = sum(record.wall_seconds for outcome in outcomes for record in outcome.outputs.values()
                   if isinstance(record, TrainedWeights))
    pipeline_seconds = sum(outcome.wall_seconds for outcome in outcomes)
    steps_seconds = sum(outcome.steps_total_seconds for outcome in outcomes)
    product_seconds = sum(seconds for outcome in outcomes for name, seconds in outcome.step_seconds.items()
                          if name in PRODUCT_STEPS)
    for outcome in outcomes:
        steps = ", ".join(f"{name} {seconds:.1f}" for name, seconds in outcome.step_seconds.items())
        click.echo(f"seconds per step of {outcome.run_name}: {steps}")
    click.echo(
        f"time: total {total_seconds:.1f}s = training {training:.1f}s"
        f" + other step work {steps_seconds - training:.1f}s (data, validation, evaluation, export, MLflow)"
        f" + ZenML orchestration {pipeline_seconds - steps_seconds:.1f}s"
        f" + outside pipelines {total_seconds - pipeline_seconds:.1f}s"
        + "".join(f" (of which {name} {seconds:.1f}s)" for name, seconds in excluded.items())
    )
    wall = startup_seconds + total_seconds
    overhead = wall - product_seconds - sum(excluded.values())
    click.echo(
        f"orchestration overhead: {overhead:.1f}s = {100 * overhead / wall:.1f}% of {wall:.1f}s wall"
        f" (process start-up {startup_seconds:.1f}s, ZenML, MLflow, GX, DVC; everything but the steps "
        f"{', '.join(PRODUCT_STEPS)}{''.join(f' and {name}' for name in excluded)})"
    )
