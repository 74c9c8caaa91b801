"""Command line: ``python -m minires COMMAND ...``, one module of this package per command.

Each command module has ``HELP`` (its line in ``--help``), ``add_arguments(parser)`` and
``main(args) -> exit code``; the options several commands share are in ``options``. The
experiments themselves live in ``minires.experiments`` (``experiments.flow``,
``experiments.degradation``, ...): what is here only parses, checks and reports.
"""
import argparse
import importlib
import os
import sys

# In the order ``--help`` lists them.
COMMANDS = ("summary", "train", "flow", "degradation", "responses", "lesion", "paths", "landscape", "identity",
            "shatter", "check")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minires", description="ResNet from scratch in NumPy/CuPy.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        command = importlib.import_module(f"{__name__}.{name}")
        parser = sub.add_parser(name, help=command.HELP, description=command.HELP)
        command.add_arguments(parser)
        parser.set_defaults(run=command.main)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..fast.memory import tune_allocator
    tune_allocator()  # a run starts: glibc keeps freed memory for the next step (fast/memory.py)
    try:
        return args.run(args) or 0
    except BrokenPipeError:
        # The reader went away (``... | head``): stop quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
