"""The ``fourds`` command line: every command is a thin translation to one library or pipeline call.

Exit codes: 0 success; 1 a run started and failed (data validation, non-finite loss,
ONNX parity, a rejected weights file...); 2 the command could not start (bad arguments,
configuration or paths); 3 another run holds the lock (``distill``, ``teacher train`` and
``demo`` of the same domain, ``watch`` of the same workspace, or a registry alias being
moved): nothing was done; 4 (``distill``, ``demo``, ``watch``) the run finished and its
student was registered but not promoted to champion (the gates it failed are printed).
Errors print one line ``error: ...`` on stderr; ``--debug`` adds the Python traceback.

Adding a command: define it with ``@click.command()`` in a module of
``fourds_app/commands/`` (decorated with ``@workspace_options`` when it needs the
workspace and configuration), call the library or a pipeline from it, and add it to
``COMMANDS`` below; :func:`main` maps exceptions to exit codes. Heavy imports (torch,
ZenML, MLflow) happen inside commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

import click

from fourds import __version__
from fourds.config import ConfigError
from fourds.exit_codes import EXIT_RUN_FAILED, EXIT_USAGE
from fourds_app.commands.models import predict, promote, rollback, status
from fourds_app.commands.operations import clean, lineage, watch
from fourds_app.commands.pipelines import demo, distill, teacher
from fourds_app.session import UsageProblem

COMMANDS = (demo, teacher, distill, predict, status, promote, rollback, watch, lineage, clean)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fourds")
def cli() -> None:
    """Distil a frozen teacher into a small student for a new domain (4Ds), with an audit trail."""


for _command in COMMANDS:
    cli.add_command(_command)


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
    # The S3 clients log routine facts at INFO ("Found credentials in environment variables"), which
    # ZenML's logging prints on stdout, where they would break the --json outputs.
    for chatty in ("botocore", "aiobotocore", "s3fs"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
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
