"""Launch a pipeline on the active ZenML stack and turn its outcome into plain facts.

The CLI, the tests and the benchmark all start pipelines through :func:`launch`, so
that a failed run always surfaces the same way: a :class:`PipelineRunFailed` naming
the step that failed and the library's own message (e.g. the files that failed
validation), with the original exception chained when the orchestrator runs in this
process (the local orchestrator does; remote ones report the message only).
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from fourds.config import ConfigError
from fourds.lineage.record import CODE_COMMIT_ENV, code_commit


class PipelineRunFailed(RuntimeError):
    """A pipeline run started and one of its steps failed; nothing after that step ran."""

    def __init__(self, pipeline: str, run_name: str, step: str | None, message: str, error_type: str | None = None):
        self.pipeline = pipeline
        self.run_name = run_name
        self.step = step
        self.message = message
        self.error_type = error_type
        where = f"step '{step}'" if step else "a step"
        super().__init__(f"pipeline '{pipeline}' run '{run_name}' failed in {where}: {message}")


@dataclass
class PipelineOutcome:
    """What a finished run produced and where its time went."""

    pipeline: str
    run_id: str
    run_name: str
    wall_seconds: float
    """From calling the pipeline to its return, including ZenML's start-up and bookkeeping."""
    step_seconds: dict[str, float] = field(default_factory=dict)
    """Each step's own duration as ZenML recorded it."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """Every named step output, loaded from the artifact store (small records only)."""

    @property
    def steps_total_seconds(self) -> float:
        return sum(self.step_seconds.values())


def new_run_name(pipeline_name: str, domain: str) -> str:
    """Unique, sortable, readable: also the name of the run folder in the workspace."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{pipeline_name}-{domain}-{stamp}-{uuid.uuid4().hex[:6]}"


def zenml_run_options(config_file: Path | None) -> dict[str, Any]:
    """The ZenML run options of a ``zenml_config.yaml``-style file, minus ``parameters``.

    Run parameters (the RunConfig, the domain, the data source) are always passed in
    code, because ZenML refuses a parameter given both in the file and in code. A bare
    RunConfig YAML (no ``parameters`` key) has no ZenML options.
    """
    if config_file is None:
        return {}
    loaded = yaml.safe_load(Path(config_file).read_text()) or {}
    if not isinstance(loaded, dict) or "parameters" not in loaded:
        return {}
    parameters = loaded.get("parameters") or {}
    unexpected = sorted(set(parameters) - {"config"})
    if unexpected:
        raise ConfigError(
            f"{config_file}: parameters.{unexpected[0]} cannot be set in the file: only parameters.config "
            "is read from it; the domain, data source and teacher come from the command line"
        )
    return {key: value for key, value in loaded.items() if key != "parameters"}


def launch(pipeline_instance, *, run_name: str, params: dict[str, Any], zenml_options: dict[str, Any] | None = None,
           model=None, model_metadata: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> PipelineOutcome:
    """Run ``pipeline_instance(**params)`` as ``run_name`` and report its outcome.

    ``zenml_options`` are ZenML run options (``enable_cache``, ``settings``, ``tags``...)
    as they would appear in a run configuration file; ``model`` is the ZenML Model
    (Model Control Plane) the run's artifacts are linked to, and ``model_metadata`` turns a
    finished run's outputs into the metadata logged on that model version.
    """
    from zenml.client import Client

    started = time.perf_counter()
    try:
        with configured_pipeline(pipeline_instance, run_name=run_name, zenml_options=zenml_options,
                                 model=model) as configured:
            configured(**params)
    except Exception as exc:
        raise _failure(pipeline_instance.name, run_name, exc) from exc
    wall_seconds = time.perf_counter() - started

    run = Client().get_pipeline_run(run_name, allow_name_prefix_match=False)
    if str(run.status) != "completed":
        raise PipelineRunFailed(pipeline_instance.name, run_name, None, f"run ended with status {run.status}")
    outputs = _load_outputs(run)
    if model_metadata is not None and run.model_version is not None:
        from zenml import log_metadata

        log_metadata(metadata=model_metadata(outputs), model_version_id=run.model_version.id)
    return PipelineOutcome(
        pipeline=pipeline_instance.name,
        run_id=str(run.id),
        run_name=run_name,
        wall_seconds=wall_seconds,
        step_seconds=_step_seconds(run),
        outputs=outputs,
    )


@contextmanager
def configured_pipeline(pipeline_instance, *, run_name: str, zenml_options: dict[str, Any] | None = None,
                        model=None, schedule=None) -> Iterator[Any]:
    """The pipeline with its run name, model, schedule and run options applied, ready to call.

    The options travel as a ZenML run configuration file, written for the duration of the block.
    """
    # Steps in a container image have no .git: hand them this checkout's commit for the lineage.
    options = dict(zenml_options or {})
    options["environment"] = {CODE_COMMIT_ENV: code_commit(), **(options.get("environment") or {})}
    with tempfile.TemporaryDirectory(prefix="fourds-zenml-") as folder:
        options_file = Path(folder) / "run_options.yaml"
        options_file.write_text(yaml.safe_dump(options))
        yield pipeline_instance.with_options(run_name=run_name, model=model, schedule=schedule,
                                             config_path=str(options_file))


def _failure(pipeline: str, run_name: str, exc: Exception) -> PipelineRunFailed:
    """Find which step failed and with what message; fall back to the exception itself."""
    from zenml.client import Client

    try:
        run = Client().get_pipeline_run(run_name, allow_name_prefix_match=False)
    except KeyError:
        # The run was never created: ZenML rejected the configuration before starting.
        return PipelineRunFailed(pipeline, run_name, None, f"{type(exc).__name__}: {exc}", type(exc).__name__)
    _mark_mlflow_run_failed(run)
    for name, step in run.steps.items():
        if str(step.status) == "failed":
            info = step.exception_info
            message = (info.message if info and info.message else None) or str(exc)
            error_type = (info.source.rsplit(".", 1)[-1] if info and info.source else None) or type(exc).__name__
            return PipelineRunFailed(pipeline, run_name, name, message, error_type)
    return PipelineRunFailed(pipeline, run_name, None, f"{type(exc).__name__}: {exc}", type(exc).__name__)


def _mark_mlflow_run_failed(run) -> None:
    """A failed pipeline's MLflow run ends FAILED, whichever step failed and wherever (a step marks it only
    when it fails while it has the run open)."""
    from fourds.runs.context import mark_failed

    started = run.steps.get("start_run")
    versions = started.outputs.get("run_context") if started is not None else None
    try:
        if versions:
            mark_failed(versions[0].load())
    except Exception as exc:  # noqa: BLE001 - the pipeline's own failure is what the user must see
        logging.getLogger(__name__).warning("could not mark the run's MLflow run FAILED: %s", exc)


def _step_seconds(run) -> dict[str, float]:
    seconds = {}
    for name, step in run.steps.items():
        if step.start_time and step.end_time:
            seconds[name] = (step.end_time - step.start_time).total_seconds()
    return seconds


def _load_outputs(run) -> dict[str, Any]:
    outputs = {}
    for step in run.steps.values():
        for output_name, versions in step.outputs.items():
            if versions:
                outputs[output_name] = versions[0].load()
    return outputs


def read_zenml_run(run_id: str):
    """The lineage audit's view of a ZenML pipeline run (``fourds.lineage.audit.OrchestratorRun``).

    Raises LookupError naming the store searched when the active ZenML store has no such run.
    """
    from zenml.client import Client

    from fourds.lineage.audit import OrchestratorRun

    try:
        run = Client().get_pipeline_run(run_id, allow_name_prefix_match=False)
    except KeyError:
        raise LookupError(f"ZenML run {run_id} is not in the active ZenML store ({Client().zen_store.url})") from None
    steps = sorted(run.steps.values(), key=lambda step: step.start_time or run.start_time)
    return OrchestratorRun(name=run.name, pipeline=run.pipeline.name if run.pipeline else None, status=str(run.status),
                           steps={step.name: str(step.status) for step in steps})


UNFINISHED = ("initializing", "provisioning", "queued", "running")


def fail_unfinished_runs(run_ids: list[str]) -> list[str]:
    """Mark failed those of these ZenML runs that never finished; returns their names. For ``fourds clean``,
    which passes the runs of dead MLflow runs while it holds their domain's lock."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineRunUpdate

    client = Client()
    ended = []
    for run_id in run_ids:
        try:
            run = client.get_pipeline_run(run_id, allow_name_prefix_match=False)
        except KeyError:
            continue  # not in this ZenML store
        if str(run.status) in UNFINISHED:
            client.zen_store.update_run(run.id, PipelineRunUpdate(
                status=ExecutionStatus.FAILED, status_reason="fourds clean: its process is gone"))
            ended.append(run.name)
    return ended
