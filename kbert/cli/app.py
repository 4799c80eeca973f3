"""The `kbert` command group: one line on stderr and exit code 2 for user errors.

Bad input raises `kbert.KbertError`; the group turns it into one line on stderr
and exit code 2, with no traceback. TensorFlow's start-up notices are kept off
the terminal unless `--verbose` (see `kbert.runtime.start_tensorflow`).
"""

import os
import sys

import click

from kbert.runtime import VERBOSE_ENV
from kbert.version import __version__


class _Group(click.Group):
    def invoke(self, ctx):
        from kbert.errors import KbertError

        try:
            return super().invoke(ctx)
        except KbertError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kbert")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log lines and full error details.")
def main(verbose):
    """kbert: BERT in TensorFlow/Keras 3, from raw text to TF Serving and a phone."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"


def _register():
    from kbert import cli_demo
    from kbert.cli import checkpoints, datasets, export, finetune, pretrain, quickstart, vocab

    for module in (quickstart, vocab, checkpoints, pretrain, finetune, export, cli_demo, datasets):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
