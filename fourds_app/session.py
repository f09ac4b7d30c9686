"""What every command that touches a workspace shares: the session, its options, and checks of what it was given."""

from __future__ import annotations

import functools
import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from fourds.config import RunConfig, load_config
from fourds.exit_codes import EXIT_LOCKED
from fourds.workspace import DomainNameError, Workspace, check_domain_name

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

    def has_registry(self) -> bool:
        """False when tracking is this workspace's SQLite store and it does not exist yet (no model registered)."""
        uri = self.workspace.tracking_uri(self.config.tracking.tracking_uri)
        return not (uri.startswith("sqlite:") and not self.workspace.mlflow_db.is_file())


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


@contextmanager
def exit_3_when_locked() -> Iterator[None]:
    """Around what a command cannot do while another process holds a lock it needs (a domain's runs, an alias
    move): ``error: ...`` naming the lock and its holder, and exit 3 (EXIT_LOCKED)."""
    from fourds.operations.locks import LockHeld

    try:
        yield
    except LockHeld as locked:
        click.echo(f"error: {locked}", err=True)
        raise click.exceptions.Exit(EXIT_LOCKED) from None


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


def domain_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback of every option that names a domain: a bad name stops the command while its
    arguments are parsed, before a folder, an MLflow experiment or a ZenML run exists (exit 2)."""
    if value is None:
        return None
    try:
        return check_domain_name(value)
    except DomainNameError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def check_data_source(source: str) -> str:
    """A local source must exist before a pipeline starts; URLs are checked by ingest."""
    if "://" in source:
        return source
    path = Path(source).expanduser()
    if not path.exists():
        raise UsageProblem(f"--data {source}: no such file or folder")
    return str(path.resolve())


def check_teacher_reference(session: Session, reference: str | None) -> str | None:
    """Fail in seconds, not after the pipeline has ingested the data, when ``--teacher`` names nothing usable;
    returns the reference to run with (a weights file as an absolute path: steps do not run in this folder).

    A weights file is judged by its header (architecture, classes, stem, tensor shapes), without loading it.
    A file must be readable where the steps run: on a cluster, register it first (``fourds teacher import``).
    """
    from fourds.models.weights import SAFETENSORS_SUFFIXES, TORCH_SUFFIXES, WeightsError, read_classifier_info
    from fourds.registry import resolve_model_version
    from fourds.tracking import configure_mlflow

    tracking = session.config.tracking
    if reference and (Path(reference).suffix in SAFETENSORS_SUFFIXES + TORCH_SUFFIXES or Path(reference).exists()):
        if not Path(reference).is_file():
            raise UsageProblem(f"--teacher {reference}: no such weights file")
        try:
            read_classifier_info(reference)
        except WeightsError as exc:
            raise UsageProblem(f"--teacher: {exc}") from None
        return str(Path(reference).resolve())
    configure_mlflow(session.workspace.ensure(), tracking)
    try:
        resolve_model_version(reference or tracking.teacher_model_name, default_name=tracking.teacher_model_name)
    except Exception as exc:
        hint = "" if reference else " (no --teacher given; train one with 'fourds teacher train' or import one)"
        raise UsageProblem(f"--teacher {reference or tracking.teacher_model_name}: {exc}{hint}") from exc
    return reference


def who_is_acting(who: str | None) -> str:
    return who or os.environ.get("USER") or getpass.getuser()


def parse_classes(spec: str) -> list[str]:
    """``--classes``: comma-separated names, or a text file with one per line."""
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
