"""The ``fourds`` command line: every command is a thin translation to one library or pipeline call.

Exit codes: 0 success; 1 a run started and failed (data validation, non-finite loss,
ONNX parity, a rejected weights file...); 2 the command could not start (bad arguments,
configuration or paths); 4 (``distill``, ``demo``, ``watch``) the run finished and its
student was registered but not promoted to champion (the gates it failed are printed).
Errors print one line ``error: ...`` on stderr; ``--debug`` adds the Python traceback.

Adding a command: define a function under ``@cli.command()`` (or a group such as
``teacher``), decorate it with ``@workspace_options`` when it needs the workspace and
configuration, and call the library from it; :func:`main` maps exceptions to exit codes.
Heavy imports (torch, ZenML, MLflow) happen inside commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import functools
import getpass
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import click

from fourds import __version__
from fourds.config import ConfigError, RunConfig, load_config
from fourds.exit_codes import EXIT_NOT_PROMOTED, EXIT_RUN_FAILED, EXIT_USAGE
from fourds.workspace import Workspace

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


class UsageProblem(click.UsageError):
    """The command cannot start: a path, a reference or an argument is wrong (exit 2)."""


@dataclass
class Session:
    """What every command that touches the workspace needs."""

    workspace: Workspace
    config: RunConfig
    config_file: Path | None
    debug: bool = False


def workspace_options(command):
    """Add ``--workspace``, ``--config`` and ``--debug`` to a command and pass it a :class:`Session`."""

    @click.option(
        "--workspace",
        "workspace_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Workspace folder (data, MLflow DB, runs). Default: $FOURDS_HOME, else the current directory.",
    )
    @click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="RunConfig YAML, bare or as zenml_config.yaml (parameters: config:).",
    )
    @click.option("--debug", is_flag=True, help="Show Python tracebacks of errors.")
    @functools.wraps(command)
    def wrapper(workspace_dir: Path | None, config_file: Path | None, debug: bool, **kwargs):
        kwargs["session"] = open_session(workspace_dir, config_file, debug=debug)
        return command(**kwargs)

    return wrapper


def open_session(workspace_dir: Path | None, config_file: Path | None, *, debug: bool = False) -> Session:
    workspace = Workspace(workspace_dir.resolve()) if workspace_dir else Workspace.default()
    if workspace.root.exists() and not workspace.root.is_dir():
        raise UsageProblem(f"workspace {workspace.root} is not a folder")
    return Session(workspace=workspace, config=load_config(config_file), config_file=config_file, debug=debug)


def use_workspace_zenml_store(workspace: Workspace) -> None:
    """Keep ZenML's state inside the workspace unless the user points ZenML elsewhere.

    Must run before ZenML is first imported. Set ``ZENML_CONFIG_PATH`` yourself (e.g. to
    ``~/.config/zenml``) to use your own ZenML server and stacks instead.
    """
    os.environ.setdefault("ZENML_CONFIG_PATH", str(workspace.state_dir / "zenml"))
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def check_data_source(source: str) -> str:
    """A local source must exist before a pipeline starts; URLs are checked by ingest."""
    if "://" in source:
        return source
    path = Path(source).expanduser()
    if not path.exists():
        raise UsageProblem(f"--data {source}: no such file or folder")
    return str(path.resolve())


def check_teacher_reference(session: Session, reference: str | None) -> None:
    """Fail in a second, not after the pipeline has started, when ``--teacher`` names nothing."""
    from fourds.models.weights import SAFETENSORS_SUFFIXES, TORCH_SUFFIXES
    from fourds.registry import configure_mlflow, resolve_model_version

    tracking = session.config.tracking
    if reference and (Path(reference).suffix in SAFETENSORS_SUFFIXES + TORCH_SUFFIXES or Path(reference).exists()):
        if not Path(reference).is_file():
            raise UsageProblem(f"--teacher {reference}: no such weights file")
        return
    configure_mlflow(session.workspace.ensure(), tracking)
    try:
        resolve_model_version(reference or tracking.teacher_model_name, default_name=tracking.teacher_model_name)
    except Exception as exc:
        hint = "" if reference else " (no --teacher given; train one with 'fourds teacher train' or import one)"
        raise UsageProblem(f"--teacher {reference or tracking.teacher_model_name}: {exc}{hint}") from exc


def who_is_acting(who: str | None) -> str:
    return who or os.environ.get("USER") or getpass.getuser()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fourds")
def cli() -> None:
    """Distil a frozen teacher into a small student for a new domain (4Ds), with an audit trail."""


# --- pipelines ---------------------------------------------------------------------------


@cli.command()
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
    workspace = session.workspace.ensure()
    click.echo(f"workspace: {workspace.root}")
    sources = generate_demo_domains(workspace.state_dir / "demo-sources", images_per_class=images_per_class,
                                    image_size=session.config.data.image_size)
    teacher_outcome = _run_teacher_pipeline(session, domain="source", data_source=str(sources["source"]))
    registered_teacher = teacher_outcome.outputs["registered_teacher"]
    teacher_ref = f"{registered_teacher.model_name}/{registered_teacher.version}"
    distill_outcome = _run_distill_pipeline(session, domain="target", data_source=str(sources["target"]),
                                            teacher=teacher_ref)
    promoted = _print_distill_result(session, distill_outcome)
    _print_timings([teacher_outcome, distill_outcome], total_seconds=time.perf_counter() - started)
    if not promoted:
        raise click.exceptions.Exit(EXIT_NOT_PROMOTED)


@cli.group()
def teacher() -> None:
    """Teachers: train one on a source domain, or import existing weights."""


@teacher.command("train")
@click.option("--domain", required=True, help="Name of the source domain, e.g. 'photos'.")
@click.option("--data", "data_source", required=True,
              help="Image folder <class>/<file>, CSV manifest, .tar.gz, or URL.")
@click.option("--sha256", default=None, help="Expected sha256 of a downloaded archive.")
@workspace_options
def teacher_train(session: Session, domain: str, data_source: str, sha256: str | None) -> None:
    """Train a teacher on a source domain and register it in the MLflow registry."""
    outcome = _run_teacher_pipeline(session, domain=domain, data_source=check_data_source(data_source),
                                    data_sha256=sha256)
    registered = outcome.outputs["registered_teacher"]
    click.echo(f"registered teacher {registered.model_name} version {registered.version}")
    _print_timings([outcome], total_seconds=outcome.wall_seconds)


@teacher.command("import")
@click.argument("weights_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--arch", required=True, help="torchvision architecture, e.g. resnet34.")
@click.option("--classes", "classes_spec", required=True,
              help="Comma-separated class names in output order, or a text file with one per line.")
@click.option("--stem", type=click.Choice(["imagenet", "no_maxpool", "small_input"]), default=None,
              help="Input stem the weights were trained with (default: the config's).")
@click.option("--source-domain", default=None,
              help="Domain the teacher was trained on; it becomes an alias (fourds-teacher@<domain>).")
@workspace_options
def teacher_import(session: Session, weights_file: Path, arch: str, classes_spec: str, stem: str | None,
                   source_domain: str | None) -> None:
    """Register existing teacher weights (safetensors or torch weights_only; never pickle)."""
    classes = _parse_classes(classes_spec)
    from fourds.registry import configure_mlflow, import_teacher

    configure_mlflow(session.workspace.ensure(), session.config.tracking)
    registered = import_teacher(weights_file, arch=arch, classes=classes, stem=stem or session.config.model.stem,
                                source_domain=source_domain, config=session.config)
    click.echo(f"registered teacher {registered.model_name} version {registered.version} "
               f"({len(classes)} classes, {arch})")


@cli.command()
@click.option("--domain", required=True, help="Name of the target domain, e.g. 'sketches'.")
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

    Exits with 4 when the run finished but its student stays challenger (docs/REGISTRY.md, promotion gates).
    """
    if cron:
        from fourds.operations.cli_commands import schedule_distill

        return schedule_distill(session, domain=domain, data_source=data_source, teacher=teacher_ref,
                                data_sha256=sha256, cron=cron)
    data_source = check_data_source(data_source)
    check_teacher_reference(session, teacher_ref)
    outcome = _run_distill_pipeline(session, domain=domain, data_source=data_source,
                                    teacher=teacher_ref, data_sha256=sha256)
    promoted = _print_distill_result(session, outcome)
    _print_timings([outcome], total_seconds=outcome.wall_seconds)
    if not promoted:
        raise click.exceptions.Exit(EXIT_NOT_PROMOTED)


# --- using a model ------------------------------------------------------------------------


@cli.command()
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
    from fourds.registry import configure_mlflow, load_onnx_classifier

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


# --- registry ----------------------------------------------------------------------------


@cli.command()
@workspace_options
def status(session: Session) -> None:
    """Domains, their champion and challenger students, and key metrics."""
    from fourds.registry import configure_mlflow, domain_status, render_status_table

    configure_mlflow(session.workspace.ensure(), session.config.tracking)
    rows = domain_status(session.config.tracking)
    if not rows:
        click.echo(f"no models registered yet in {session.workspace.root} "
                   "(run 'fourds demo', or 'fourds teacher train' then 'fourds distill')")
        return
    click.echo(render_status_table(rows))


@cli.command()
@click.argument("model_name")
@click.argument("version")
@click.option("--reason", required=True, help="Why (kept in the registry's audit log).")
@click.option("--who", default=None, help="Who decided. Default: $USER.")
@workspace_options
def promote(session: Session, model_name: str, version: str, reason: str, who: str | None) -> None:
    """Make VERSION of MODEL_NAME the champion by hand (skips the automatic gates)."""
    from fourds.registry import CHAMPION, configure_mlflow, move_alias

    configure_mlflow(session.workspace.ensure(), session.config.tracking)
    previous = move_alias(model_name, CHAMPION, version, who=who_is_acting(who), reason=reason,
                          action="manual promote")
    click.echo(f"{model_name}@{CHAMPION} -> version {version} (was {previous or 'unset'})")


@cli.command()
@click.argument("model_name")
@click.option("--reason", required=True, help="Why (kept in the registry's audit log).")
@click.option("--who", default=None, help="Who decided. Default: $USER.")
@workspace_options
def rollback(session: Session, model_name: str, reason: str, who: str | None) -> None:
    """Give the champion alias back to the previous champion of MODEL_NAME."""
    from fourds.registry import configure_mlflow
    from fourds.registry import rollback as rollback_champion

    configure_mlflow(session.workspace.ensure(), session.config.tracking)
    version = rollback_champion(model_name, reason=reason, who=who_is_acting(who))
    click.echo(f"{model_name}@champion -> version {version}")


# --- helpers of the commands above ---------------------------------------------------------


def _run_teacher_pipeline(session: Session, **params):
    use_workspace_zenml_store(session.workspace)
    from pipelines.launch import zenml_run_options
    from pipelines.train_teacher import run_train_teacher

    _hide_tracebacks_in_logs(unless=session.debug)
    return run_train_teacher(session.config, workspace=session.workspace.ensure(),
                             zenml_options=zenml_run_options(session.config_file), **params)


def _run_distill_pipeline(session: Session, **params):
    use_workspace_zenml_store(session.workspace)
    from pipelines.distill import run_distill
    from pipelines.launch import zenml_run_options

    _hide_tracebacks_in_logs(unless=session.debug)
    return run_distill(session.config, workspace=session.workspace.ensure(),
                       zenml_options=zenml_run_options(session.config_file), **params)


class _WithoutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def _hide_tracebacks_in_logs(*, unless: bool) -> None:
    """ZenML logs a failed step's traceback; the user gets the one-line error instead (``--debug`` keeps it)."""
    if unless:
        return
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, _WithoutTraceback) for existing in handler.filters):
            handler.addFilter(_WithoutTraceback())


def _parse_classes(spec: str) -> list[str]:
    path = Path(spec)
    if path.is_file():
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        names = [name.strip() for name in spec.split(",") if name.strip()]
    if len(names) < 2:
        raise UsageProblem(f"--classes {spec!r}: need at least two class names (comma-separated or a file)")
    if len(set(names)) != len(names):
        raise UsageProblem(f"--classes {spec!r}: class names repeat")
    return names


def _print_distill_result(session: Session, outcome) -> bool:
    """The run's accuracies, the promotion decision and where the champion is; returns whether it was promoted."""
    from fourds.registry import configure_mlflow

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
    click.echo(f"this run's ONNX file: {onnx.path} (sha256 {onnx.sha256[:12]}...)")
    return promotion.promoted


def _print_timings(outcomes, *, total_seconds: float) -> None:
    """Training time (inside the trainer) against everything else (stack start-up, steps' I/O)."""
    from steps.artifacts import TrainedModels

    training = sum(record.wall_seconds for outcome in outcomes for record in outcome.outputs.values()
                   if isinstance(record, TrainedModels))
    pipeline_seconds = sum(outcome.wall_seconds for outcome in outcomes)
    steps_seconds = sum(outcome.steps_total_seconds for outcome in outcomes)
    for outcome in outcomes:
        steps = ", ".join(f"{name} {seconds:.1f}" for name, seconds in outcome.step_seconds.items())
        click.echo(f"seconds per step of {outcome.run_name}: {steps}")
    click.echo(
        f"time: total {total_seconds:.1f}s = training {training:.1f}s"
        f" + other step work {steps_seconds - training:.1f}s (data, validation, evaluation, export, MLflow)"
        f" + ZenML orchestration {pipeline_seconds - steps_seconds:.1f}s"
        f" + outside pipelines {total_seconds - pipeline_seconds:.1f}s"
    )


# --- commands defined beside their library code (they attach themselves to `cli`) ---------

import fourds.operations.cli_commands  # noqa: E402,F401  (watch, lineage)


# --- entry point ---------------------------------------------------------------------------


def _exit_code(exc: BaseException) -> int:
    """2 when the command could not start on what the user gave it, 1 when a run started and failed."""
    from fourds.models.weights import WeightsError
    from fourds.registry.errors import RegistryError

    if isinstance(exc, (click.UsageError, ConfigError, RegistryError, WeightsError)):
        return EXIT_USAGE
    return EXIT_RUN_FAILED


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the command, map errors to one line on stderr and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    # Before torch loads: OpenMP threads that spin while waiting made training ~10x slower
    # on a machine whose cores other processes also use. Set it yourself to override.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        # Without standalone mode, click returns the code of a raised click.exceptions.Exit.
        exit_code = cli.main(args=args, prog_name="fourds", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help(), err=True)
        sys.exit(2)
    except click.UsageError as exc:
        if debug:
            traceback.print_exc()
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx and not isinstance(exc, UsageProblem) else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except Exception as exc:  # every other error: one line, the traceback only on request
        if debug:
            traceback.print_exc()
        click.echo(f"error: {_describe(exc)}", err=True)
        sys.exit(_exit_code(exc))
    sys.exit(exit_code if isinstance(exit_code, int) else 0)


def _describe(exc: BaseException) -> str:
    message = str(exc).strip() or type(exc).__name__
    if isinstance(exc, (ConfigError, click.ClickException)):
        return message
    known = type(exc).__module__.startswith(("fourds", "pipelines", "steps"))
    return message if known else f"{type(exc).__name__}: {message} (run again with --debug for the traceback)"


if __name__ == "__main__":
    main()
