"""The `kbert` command group: one line on stderr and exit code 2 for user errors.

Bad input raises `kbert.KbertError`; the group turns it into one line on stderr
and exit code 2, with no traceback; so does an `OSError` the user can fix (no
space left, no permission, read-only filesystem). TensorFlow's C++ log lines are kept off the
terminal for every command, on success or error, unless `--verbose` (see
`kbert.runtime.filter_native_logs`).
"""

import os
import sys

import click

from kbert.runtime import VERBOSE_ENV, filter_native_logs, verbose_requested
from kbert.version import __version__


class _Group(click.Group):
    def invoke(self, ctx):
        from kbert.errors import KbertError
        from kbert.outputs import error_reason, is_user_os_error

        try:
            return super().invoke(ctx)
        except KbertError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(2)
        except Exception as e:
            # No space, no permission, read-only mount: the user's to fix, one
            # line. Anything else is a bug and keeps its traceback.
            if not is_user_os_error(e):
                raise
            name = getattr(e, "filename", None)
            click.echo(f"Error: {f'{name}: ' if name else ''}{error_reason(e)}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kbert")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log lines and full error details.")
def main(verbose):
    """kbert: BERT in TensorFlow/Keras 3, from raw text to TF Serving and a phone."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    elif not verbose_requested():
        filter_native_logs()


def _register():
    from kbert.cli import (adapter, checkpoints, datasets, demo, distill, embed, export, finetune, pretrain,
                           quickstart, vocab)

    for module in (quickstart, vocab, checkpoints, pretrain, finetune, adapter, distill, embed, export, demo,
                   datasets):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
