"""The commands that use and manage registered models: ``predict``, ``status``, ``promote`` and ``rollback``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from fourds_app.session import Session, UsageProblem, exit_3_when_locked, who_is_acting, workspace_options


@click.command()
@click.argument("model_ref", metavar="MODEL_REF")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE_OR_FOLDER...")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (every class's probability) instead of a table.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1),
              help="Images per onnxruntime call.")
@workspace_options
def predict(session: Session, model_ref: str, images: tuple[str, ...], as_json: bool, batch_size: int) -> None:
    """Classify images with a student: the class and its probability per image.

    MODEL_REF is a registered student (NAME@ALIAS such as fourds-student-x@champion,
    NAME/VERSION, or a bare NAME for its champion) or an exported .onnx file. Folders are
    searched recursively for image files. The model's own recorded preprocessing (input
    size, resize, crop, normalisation) and class names are used; a model exported before
    fourds recorded its preprocessing is given the configuration's data section, with a warning.
    """
    from fourds.inference import ModelInputError, classify_images, collect_images, preprocessing_for, render_predictions
    from fourds.registry import load_onnx_classifier
    from fourds.tracking import configure_mlflow

    try:
        files = collect_images(images)
    except FileNotFoundError as exc:
        raise UsageProblem(str(exc)) from None
    if not model_ref.endswith(".onnx") and not Path(model_ref).is_file():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        configure_mlflow(session.workspace.ensure(), session.config.tracking)
    try:
        assumed = (f"the data section of {session.config_file}" if session.config_file
                   else "the default data section: give the model's own with --config")
        classifier, loaded = load_onnx_classifier(
            model_ref, fallback_preprocessing=preprocessing_for(session.config.data),
            warn=lambda message: click.echo(f"warning: {message} ({assumed})", err=True))
        predictions = classify_images(classifier, files, batch_size=batch_size)
    except ModelInputError as exc:
        raise UsageProblem(str(exc)) from None
    if not as_json:
        click.echo(f"model: {loaded} ({len(classifier.classes)} classes, input "
                   f"{classifier.preprocessing.image_size}x{classifier.preprocessing.image_size})")
    click.echo(render_predictions(predictions, as_json=as_json))


@click.command()
@workspace_options
def status(session: Session) -> None:
    """Domains, their champion and challenger students, and key metrics."""
    from fourds.registry import domain_status, render_status_table
    from fourds.tracking import configure_mlflow

    configure_mlflow(session.workspace.ensure(), session.config.tracking)
    rows = domain_status(session.config.tracking)
    if not rows:
        click.echo(f"no models registered yet in {session.workspace.root} "
                   "(run 'fourds demo', or 'fourds teacher train' then 'fourds distill')")
        return
    click.echo(render_status_table(rows))


@click.command()
@click.argument("model_name")
@click.argument("version")
@click.option("--reason", required=True, help="Why (kept in the registry's audit log).")
@click.option("--who", default=None, help="Who decided. Default: $USER.")
@workspace_options
def promote(session: Session, model_name: str, version: str, reason: str, who: str | None) -> None:
    """Make VERSION of MODEL_NAME the champion by hand (skips the automatic gates)."""
    from fourds.registry import CHAMPION, move_alias
    from fourds.tracking import configure_mlflow

    configure_mlflow(session.workspace.ensure(), session.config.tracking)
    with exit_3_when_locked():
        previous = move_alias(model_name, CHAMPION, version, who=who_is_acting(who), reason=reason,
                              action="manual promote")
    click.echo(f"{model_name}@{CHAMPION} -> version {version} (was {previous or 'unset'})")


@click.command()
@click.argument("model_name")
@click.option("--reason", required=True, help="Why (kept in the registry's audit log).")
@click.option("--who", default=None, help="Who decided. Default: $USER.")
@workspace_options
def rollback(session: Session, model_name: str, reason: str, who: str | None) -> None:
    """Give the champion alias back to the previous champion of MODEL_NAME."""
    from fourds.registry import rollback as rollback_champion
    from fourds.tracking import configure_mlflow

    configure_mlflow(session.workspace.ensure(), session.config.tracking)
    with exit_3_when_locked():
        version = rollback_champion(model_name, reason=reason, who=who_is_acting(who))
    click.echo(f"{model_name}@champion -> version {version}")
