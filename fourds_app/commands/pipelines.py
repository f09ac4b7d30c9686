"""The commands that run pipelines: ``demo``, ``teacher train``, ``teacher import`` and ``distill``."""

from __future__ import annotations

import time
from pathlib import Path

import click
import psutil

from fourds.exit_codes import EXIT_NOT_PROMOTED
from fourds_app.pipeline_runs import run_distill_pipeline, run_teacher_pipeline, schedule_distill_pipeline
from fourds_app.report import print_distill_result, print_timings
from fourds_app.session import (
    DEMO_CONFIG,
    Session,
    UsageProblem,
    check_data_source,
    check_teacher_reference,
    domain_option,
    exit_3_when_locked,
    open_session,
    parse_classes,
    workspace_options,
)


@click.command()
@click.option("--images-per-class", default=60, show_default=True, type=click.IntRange(min=10),
              help="Labelled images per class of the generated target domain (the source gets 150 per class "
                   "and the target 800 unlabelled images besides).")
@workspace_options
def demo(session: Session, images_per_class: int) -> None:
    """Generate two demo domains, train a teacher on 'source', distil it into 'target', promote.

    Uses configs/demo.yaml (32 px images, ResNet-34 -> ResNet-18, short schedules) unless
    --config is given; runs on 2 CPU cores in about five minutes.
    """
    if session.config_file is None:
        if not DEMO_CONFIG.is_file():
            raise UsageProblem(f"the demo configuration {DEMO_CONFIG} is missing: pass --config FILE")
        session = open_session(session.workspace.root, DEMO_CONFIG, debug=session.debug)
    from fourds.data import generate_demo_domains

    started = time.perf_counter()
    startup_seconds = time.time() - psutil.Process().create_time()  # process start and imports
    workspace = session.workspace.ensure()
    click.echo(f"workspace: {workspace.root}")
    sources = generate_demo_domains(workspace.state_dir / "demo-sources", images_per_class=images_per_class,
                                    image_size=session.config.data.image_size)
    generating_seconds = time.perf_counter() - started
    with exit_3_when_locked():
        teacher_outcome = run_teacher_pipeline(session, domain="source", data_source=str(sources["source"]))
        registered_teacher = teacher_outcome.outputs["registered_teacher"]
        teacher_ref = f"{registered_teacher.model_name}/{registered_teacher.version}"
        distill_outcome = run_distill_pipeline(session, domain="target", data_source=str(sources["target"]),
                                                teacher=teacher_ref)
    promoted = print_distill_result(session, distill_outcome)
    print_timings([teacher_outcome, distill_outcome], total_seconds=time.perf_counter() - started,
                  startup_seconds=startup_seconds, excluded={"generating the demo images": generating_seconds})
    if not promoted:
        raise click.exceptions.Exit(EXIT_NOT_PROMOTED)


@click.group()
def teacher() -> None:
    """Teachers: train one on a source domain, or import existing weights."""


@teacher.command("train")
@click.option("--domain", required=True, callback=domain_option, help="Name of the source domain, e.g. 'photos'.")
@click.option("--data", "data_source", required=True,
              help="Image folder <class>/<file>, CSV manifest, .tar.gz, or URL.")
@click.option("--sha256", default=None, help="Expected sha256 of a downloaded archive.")
@workspace_options
def teacher_train(session: Session, domain: str, data_source: str, sha256: str | None) -> None:
    """Train a teacher on a source domain and register it in the MLflow registry.

    Exits with 3, doing nothing, while another run of the same domain is in progress.
    """
    data_source = check_data_source(data_source)
    with exit_3_when_locked():
        outcome = run_teacher_pipeline(session, domain=domain, data_source=data_source, data_sha256=sha256)
    registered = outcome.outputs["registered_teacher"]
    click.echo(f"registered teacher {registered.model_name} version {registered.version}")
    print_timings([outcome], total_seconds=outcome.wall_seconds)


@teacher.command("import")
@click.argument("weights_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--arch", required=True, help="torchvision architecture, e.g. resnet34.")
@click.option("--classes", "classes_spec", required=True,
              help="Comma-separated class names in output order, or a text file with one per line.")
@click.option("--stem", type=click.Choice(["imagenet", "no_maxpool", "small_input"]), default=None,
              help="Input stem the weights were trained with (default: the config's).")
@click.option("--source-domain", default=None, callback=domain_option,
              help="Domain the teacher was trained on; it becomes an alias (fourds-teacher@<domain>).")
@workspace_options
def teacher_import(session: Session, weights_file: Path, arch: str, classes_spec: str, stem: str | None,
                   source_domain: str | None) -> None:
    """Register existing teacher weights (safetensors or torch weights_only; never pickle)."""
    classes = parse_classes(classes_spec)
    from fourds.registry import import_teacher
    from fourds.tracking import configure_mlflow

    configure_mlflow(session.workspace.ensure(), session.config.tracking)
    registered = import_teacher(weights_file, arch=arch, classes=classes, stem=stem or session.config.model.stem,
                                source_domain=source_domain, config=session.config)
    click.echo(f"registered teacher {registered.model_name} version {registered.version} "
               f"({len(classes)} classes, {arch})")


@click.command()
@click.option("--domain", required=True, callback=domain_option, help="Name of the target domain, e.g. 'sketches'.")
@click.option("--data", "data_source", required=True,
              help="Image folder <class>/<file>, CSV manifest, .tar.gz, or URL.")
@click.option("--teacher", "teacher_ref", default=None,
              help="Registered teacher: NAME@ALIAS, NAME/VERSION or a version number; "
                   "or a weights file. Default: the latest registered teacher.")
@click.option("--sha256", default=None, help="Expected sha256 of a downloaded archive.")
@click.option("--schedule", "cron", default=None, metavar="CRON",
              help="Do not run now: schedule runs by cron, e.g. '0 3 * * *' "
                   "(Kubeflow/Kubernetes stacks; see docs/OPERATIONS.md).")
@workspace_options
def distill(session: Session, domain: str, data_source: str, teacher_ref: str | None, sha256: str | None,
            cron: str | None) -> None:
    """Distil the frozen teacher into a student for DOMAIN; register it and promote if it wins.

    Exits with 4 when the run finished but its student stays challenger (docs/REGISTRY.md, promotion gates),
    with 3, doing nothing, while another run of the same domain is in progress.
    """
    if cron:
        click.echo(schedule_distill_pipeline(session, cron=cron, domain=domain, data_source=data_source,
                                             teacher=teacher_ref, data_sha256=sha256))
        return
    data_source = check_data_source(data_source)
    teacher_ref = check_teacher_reference(session, teacher_ref)
    with exit_3_when_locked():
        outcome = run_distill_pipeline(session, domain=domain, data_source=data_source,
                                        teacher=teacher_ref, data_sha256=sha256)
    promoted = print_distill_result(session, outcome)
    print_timings([outcome], total_seconds=outcome.wall_seconds)
    if not promoted:
        raise click.exceptions.Exit(EXIT_NOT_PROMOTED)
