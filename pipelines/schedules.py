"""Scheduled distillation: the distill pipeline under a ZenML ``Schedule`` (cron), on orchestrators that keep one.

Kubeflow, Kubernetes, Vertex and Airflow orchestrators keep a schedule themselves; the
local orchestrator cannot (nothing stays running to fire it). Rather than let ZenML fail
deep inside pipeline compilation, :func:`check_stack_can_schedule` says so up front and
points at the two ways that work: a Kubeflow/Kubernetes stack, or cron with ``fourds watch``.
"""

from __future__ import annotations

import re

from fourds.config import RunConfig

CANNOT_SCHEDULE_HINT = (
    "use a Kubeflow/Kubernetes stack (see docs/OPERATIONS.md) or cron with `fourds watch`"
)
# Minute hour day-of-month month day-of-week (Kubernetes CronJob, ZenML's Kubernetes
# orchestrator); Kubeflow Pipelines also accepts a leading seconds field (6 fields).
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,\-#LW]+$")
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


class ScheduleNotSupported(RuntimeError):
    """The active stack's orchestrator cannot run schedules."""


def check_cron(expression: str) -> str:
    """Return ``expression`` stripped if it looks like a cron expression, else raise ValueError naming it."""
    stripped = " ".join(expression.split())
    if stripped in _CRON_MACROS:
        return stripped
    fields = stripped.split(" ")
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(field) for field in fields):
        raise ValueError(
            f"{expression!r} is not a cron expression: expected 5 fields "
            "(minute hour day-of-month month day-of-week, e.g. '0 3 * * *'), "
            "6 with seconds first on Kubeflow, or a macro such as @daily"
        )
    return stripped


def check_stack_can_schedule() -> str:
    """Name and flavor of the active stack's orchestrator; raises :class:`ScheduleNotSupported` if it cannot schedule."""
    from zenml.client import Client

    stack = Client().active_stack_model
    orchestrator = Client().active_stack.orchestrator
    if not orchestrator.config.is_schedulable:
        raise ScheduleNotSupported(
            f"the {orchestrator.flavor} orchestrator '{orchestrator.name}' of the active ZenML stack "
            f"'{stack.name}' cannot run schedules; {CANNOT_SCHEDULE_HINT}"
        )
    return f"{orchestrator.flavor} orchestrator '{orchestrator.name}' of stack '{stack.name}'"


def build_schedule(cron_expression: str, name: str):
    """The ZenML ``Schedule`` for ``cron_expression`` (checked) under ``name``."""
    from zenml.config.schedule import Schedule

    return Schedule(name=name, cron_expression=check_cron(cron_expression))


def schedule_distill(config: RunConfig, *, domain: str, cron: str, zenml_options: dict | None = None,
                     **params) -> str:
    """Hand the distill pipeline to the active stack's orchestrator, to run by ``cron``; returns the
    orchestrator's description. ``params``: see :func:`pipelines.distill.distill_run_params`.

    Raises ValueError for a malformed ``cron`` and :class:`ScheduleNotSupported` when the
    orchestrator cannot keep schedules. Each scheduled run reads the data source when it
    fires, inside the orchestrator's containers: give a URL or a path mounted there.
    """
    from pipelines.distill import distill_pipeline, distill_run_params, student_model
    from pipelines.launch import configured_pipeline

    schedule = build_schedule(cron, name=f"fourds-distill-{domain}")
    orchestrator = check_stack_can_schedule()
    with configured_pipeline(distill_pipeline, run_name=f"distill-{domain}-{{date}}-{{time}}",
                             zenml_options=zenml_options, model=student_model(config, domain),
                             schedule=schedule) as configured:
        configured(**distill_run_params(config, domain=domain, **params))
    return f"scheduled distill of {domain} with cron '{schedule.cron_expression}' on the {orchestrator}"
