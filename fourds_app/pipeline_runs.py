"""Starting the pipelines from a session: the domain's lock, ZenML's store in the workspace, the run options
of ``--config``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import click

from fourds.operations.locks import domain_lock
from fourds_app.session import Session, UsageProblem, use_workspace_zenml_store


def run_teacher_pipeline(session: Session, *, domain: str, **params):
    """``pipelines.train_teacher.run_train_teacher`` for this session (``params``: data_source...)."""
    with _pipeline_run(session, domain) as common:
        from pipelines.train_teacher import run_train_teacher

        return run_train_teacher(session.config, **common, **params)


def run_distill_pipeline(session: Session, *, domain: str, **params):
    """``pipelines.distill.run_distill`` for this session (``params``: data_source, teacher...)."""
    with _pipeline_run(session, domain) as common:
        from pipelines.distill import run_distill

        return run_distill(session.config, **common, **params)


@contextmanager
def _pipeline_run(session: Session, domain: str) -> Iterator[dict]:
    """Hold ``domain``'s lock for the whole run (:class:`~fourds.operations.locks.DomainLocked` when another run has
    it), keep ZenML's store in the workspace, and give the arguments every pipeline run takes."""
    with _domain_run_lock(session, domain):
        use_workspace_zenml_store(session.workspace)  # before ZenML is first imported
        from pipelines.launch import zenml_run_options

        _hide_tracebacks_in_logs(unless=session.debug)
        yield {"workspace": session.workspace.ensure(), "domain": domain,
               "zenml_options": zenml_run_options(session.config_file)}


def _domain_run_lock(session: Session, domain: str):
    """Taken before anything else, so a refused run has ingested, created and registered nothing."""
    return domain_lock(session.workspace, domain, on_takeover=lambda message: click.echo(f"warning: {message}",
                                                                                        err=True))


def schedule_distill_pipeline(session: Session, *, cron: str, **params) -> str:
    """``fourds distill --schedule CRON``: hand the pipeline to an orchestrator that keeps schedules.

    Each scheduled run reads the data source when it fires, inside the orchestrator's
    containers: give a URL or a path mounted there, not a path on this machine.
    """
    use_workspace_zenml_store(session.workspace)
    from pipelines.launch import zenml_run_options
    from pipelines.schedules import ScheduleNotSupported, check_cron, schedule_distill

    try:
        check_cron(cron)
    except ValueError as exc:
        raise UsageProblem(f"--schedule: {exc}") from None
    try:
        return schedule_distill(session.config, cron=cron, workspace=session.workspace,
                                zenml_options=zenml_run_options(session.config_file), **params)
    except ScheduleNotSupported as exc:
        raise UsageProblem(str(exc)) from None


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
