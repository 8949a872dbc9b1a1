"""The `lpzero` command line: the commands, and how errors are printed.

Each command is declared in its own module of `lpzero.commands` (its options, one
settings object, one call into the layer that owns the workflow) and imported only
when it runs: `lpzero --help` and `lpzero ops` must not pay for torch and
transformers. `COMMANDS` below is the one list of commands.

Bad input (missing data, malformed files, unknown benchmark or id, a value out of
range) is reported as one line on stderr with exit code 2, never a traceback:
every `LPZeroError` becomes a `UserError`, and so do the OS errors a user can fix
(a full disk, a read-only folder).
"""
from __future__ import annotations

import errno
import logging
import sys

import click

from .errors import LPZeroError
from .registry import load_object

#: command -> ("module:command object", one-line help shown by `lpzero --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("lpzero.commands.info:info", "Summarise BENCHMARK: count, ground-truth range, parameter range."),
    "cache": ("lpzero.commands.cache:cache", "Compute and store the six inputs (and baseline proxies) of every "
                                             "architecture."),
    "rank": ("lpzero.commands.rank:rank", "Score every architecture with each proxy; print and write the ρ/τ table."),
    "evolve": ("lpzero.commands.evolve:evolve", "Search for a proxy with genetic programming (paper Algorithm 1)."),
    "score": ("lpzero.commands.score:score", "Score one model with a proxy: a checkpoint directory or a config.json "
                                             "(any transformers family)."),
    "export": ("lpzero.commands.export:export", "Print the simplified formula of a found proxy (best.json)."),
    "ops": ("lpzero.commands.ops:ops", "Print the primitive op table (Markdown)."),
    "nas": ("lpzero.commands.nas:nas", "Pick architectures with a proxy: NSGA-II over (proxy score, costs) under "
                                       "limits."),
    "build": ("lpzero.commands.build:build", "Build NAME with its ground truth: lonas-mini (a LoNAS super-network "
                                             "and its sub-networks) or neox-mini (GPT-NeoX models trained here)."),
}


class UserError(click.ClickException):
    """A user's mistake, printed as `lpzero: error: ...` with exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"lpzero: error: {self.format_message()}", err=True)


#: OS errors that are the user's to fix (a full disk, a read-only or misplaced output path, a folder
#: that cannot be made where the file system allows none, e.g. under /proc, a name longer than it allows)
USER_OS_ERRORS = {errno.ENOENT, errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR,
                  errno.EEXIST, errno.EDQUOT, errno.ENAMETOOLONG}


class LPZeroGroup(click.Group):
    """Loads each command when it is asked for; turns every `LPZeroError` (and a user-fixable
    `OSError`) into a one-line `UserError`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return load_object(COMMANDS[name][0], "command")

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # from the table: listing the commands imports none of them
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, help_text) in COMMANDS.items()])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LPZeroError as e:
            raise UserError(str(e)) from e
        except OSError as e:
            if e.errno not in USER_OS_ERRORS:
                raise
            raise UserError(f"{e.filename or ''}: {e.strerror}".lstrip(": ")) from e


class _WarningLines(logging.Handler):
    """lpzero's warnings (a damaged cache file being rebuilt, ...) as `lpzero: warning: ...` on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"lpzero: warning: {record.getMessage()}", err=True)


def _show_warnings() -> None:
    logger = logging.getLogger("lpzero")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        logger.addHandler(_WarningLines(logging.WARNING))
        logger.setLevel(logging.WARNING)


@click.group(cls=LPZeroGroup)
@click.version_option(package_name="lpzero")
def main() -> None:
    """Find and use zero-cost proxies for language-model architecture search."""
    _show_warnings()


if __name__ == "__main__":
    sys.exit(main())
