"""The operations commands: ``watch`` (distil new and changed domains, for cron) and ``lineage`` (the audit).

Exit codes beyond the CLI's usual 0/1/2 are returned through ``click.exceptions.Exit``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from fourds.exit_codes import EXIT_LOCKED, EXIT_OK
from fourds.operations import watch as watching
from fourds_app.pipeline_runs import run_distill_pipeline
from fourds_app.session import (
    Session,
    UsageProblem,
    check_teacher_reference,
    use_workspace_zenml_store,
    workspace_options,
)


@click.command()
@click.option("--source", "source_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="FOURDS_WATCH_SOURCE", show_envvar=True,
              help="Folder of domain folders (<domain>/<class>/<file>). "
                   "Default: the workspace's DVC-tracked data folder (data/domains/<domain>).")
@click.option("--teacher", "teacher_ref", default=None,
              help="Teacher for every run: NAME@ALIAS, NAME/VERSION or a version. Default: the latest registered.")
@click.option("--exclude", multiple=True, metavar="DOMAIN",
              help="A domain never to distil. Repeatable. Registered teachers' source domains are always left out.")
@click.option("--dry-run", is_flag=True, help="List what would run; run nothing, change nothing.")
@workspace_options
def watch(session: Session, source_dir: Path | None, teacher_ref: str | None, exclude: tuple[str, ...],
          dry_run: bool) -> None:
    """One pass: distil every new domain and every domain whose data changed, one at a time.

    Compares each domain's DVC md5 with the one of its last successful run. Meant for
    cron or a systemd timer (docs/OPERATIONS.md). Exit codes: 0 nothing to do or every
    run succeeded and was promoted; 1 a run failed or a domain folder is invalid; 2 usage
    error; 3 another watcher is running on this workspace (nothing was done); 4 every run
    succeeded but at least one student was not promoted (it stays challenger).
    """
    workspace = session.workspace
    source = source_dir or workspace.data_dir
    if source_dir is None and not source.is_dir():
        raise UsageProblem(f"nothing to watch: {workspace.root} has no data folder yet; "
                           "give --source FOLDER (a folder of domain folders)")
    if not source.is_dir():
        raise UsageProblem(f"--source {source}: no such folder")
    excluded = {name: "--exclude" for name in exclude}
    excluded |= {name: "a registered teacher's source domain" for name in _teacher_source_domains(session)}
    if dry_run:
        plan = watching.plan_watch(source, workspace, excluded)
        _print_plan(plan)
        click.echo(f"dry run: {len(plan.due)} domain(s) would be distilled; nothing was run")
        return

    def run_distill_for(domain: watching.WatchedDomain) -> watching.RunSummary:
        outcome = run_distill_pipeline(session, domain=domain.name, data_source=str(domain.folder),
                                        teacher=teacher_ref)
        registered = outcome.outputs.get("registered_version")
        promotion = outcome.outputs.get("promotion")
        return watching.RunSummary(run_name=outcome.run_name,
                                   model_version=registered.version if registered else None,
                                   promoted=promotion.promoted if promotion else None)

    try:
        with watching.watch_lock(workspace.ensure(),
                                 on_takeover=lambda message: click.echo(f"warning: {message}", err=True)):
            plan = watching.plan_watch(source, workspace, excluded)
            _print_plan(plan)
            if plan.due:  # a missing teacher would fail every run: say so once, before any starts
                teacher_ref = check_teacher_reference(session, teacher_ref)
            report = watching.run_watch(plan, workspace, run_distill_for, echo=click.echo)
    except watching.WatchLocked as locked:
        click.echo(f"error: {locked}", err=True)
        raise click.exceptions.Exit(EXIT_LOCKED) from None
    click.echo(watching.summarize(report))
    if report.exit_code != EXIT_OK:
        raise click.exceptions.Exit(report.exit_code)


def _teacher_source_domains(session: Session) -> set[str]:
    """Domains registered teachers were trained on: distilling a teacher into its own domain is not a use."""
    workspace = session.workspace
    tracking = session.config.tracking
    if not session.has_registry():
        return set()  # no registry yet, hence no teacher
    from mlflow import MlflowClient

    from fourds.registry.versions import SOURCE_DOMAIN_TAG
    from fourds.tracking import configure_mlflow

    configure_mlflow(workspace, tracking)
    versions = MlflowClient().search_model_versions(f"name='{tracking.teacher_model_name}'")
    return {version.tags[SOURCE_DOMAIN_TAG] for version in versions if SOURCE_DOMAIN_TAG in version.tags}


def _print_plan(plan: watching.WatchPlan) -> None:
    kind = "the workspace's DVC-tracked data" if plan.ingested else "a folder of domain folders"
    click.echo(f"watching {plan.source} ({kind}): {len(plan.decisions)} domain(s)")
    for decision in plan.decisions:
        click.echo(f"  {decision.describe()}")


@click.command()
@click.argument("reference", metavar="MODEL[@ALIAS|/VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Emit the chain as JSON instead of text.")
@workspace_options
def lineage(session: Session, reference: str, as_json: bool) -> None:
    """The audit chain of a registered model version, every link checked (bare MODEL = MODEL@champion).

    registry version -> MLflow run -> ZenML run and steps -> data (DVC md5s, git revision,
    table hash) -> validation -> teacher and its data -> code and config -> ONNX (re-hashed).
    Exit codes: 0 every link present and consistent; 1 a link is missing or inconsistent;
    2 no such model version.
    """
    workspace = session.workspace
    if not session.has_registry():
        raise UsageProblem(f"no MLflow registry in {workspace.root} ({workspace.mlflow_db} does not exist)")
    use_workspace_zenml_store(workspace)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep the report readable
    from fourds.lineage.audit import format_audit, trace_lineage
    from fourds.registry import RegistryError
    from pipelines.launch import read_zenml_run

    try:
        audit = trace_lineage(reference, workspace, session.config.tracking, read_orchestrator_run=read_zenml_run)
    except RegistryError as exc:
        raise UsageProblem(f"{reference}: {exc}") from None
    click.echo(json.dumps(audit.as_dict(), indent=2, default=str) if as_json else format_audit(audit))
    if not audit.complete:
        raise click.exceptions.Exit(1)


@click.command()
@click.option("--dry-run", is_flag=True, help="List what would be ended and removed; change nothing.")
@workspace_options
def clean(session: Session, dry_run: bool) -> None:
    """End what killed runs left behind: MLflow and ZenML runs stuck 'running', run folders (checkpoints, copies).

    Only domains that no live run holds (each run holds its domain's lock) are touched.
    Everything a finished run keeps is in MLflow, the artifact store and the DVC remote;
    its run folder is a scratch copy, removed too.
    """
    from fourds.operations.cleanup import CannotJudgeLiveness, clean_workspace

    workspace = session.workspace
    if not session.has_registry():
        click.echo(f"nothing to clean: {workspace.root} has no MLflow store yet")
        return
    use_workspace_zenml_store(workspace)
    from pipelines.launch import fail_unfinished_runs

    try:
        report = clean_workspace(workspace, session.config.tracking, dry_run=dry_run,
                                 end_orchestrator_runs=fail_unfinished_runs)
    except CannotJudgeLiveness as exc:
        raise UsageProblem(str(exc)) from None
    zenml_runs = report.stale_orchestrator_runs
    verb = "would end" if dry_run else "ended"
    click.echo(f"{verb} {len(report.stale_mlflow_runs)} MLflow run(s) left RUNNING: "
               + (", ".join(report.stale_mlflow_runs) or "none"))
    if not dry_run:
        click.echo(f"ended {len(zenml_runs)} ZenML run(s) left running: " + (", ".join(zenml_runs) or "none"))
    click.echo(f"{'would remove' if dry_run else 'removed'} {len(report.run_folders)} run folder(s), "
               f"{report.freed_bytes / 2**20:.1f} MB")
    for domain in report.busy_domains:
        click.echo(f"left alone: a run of '{domain}' is in progress")
