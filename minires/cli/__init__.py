"""Command line: ``python -m minires COMMAND ...``, one module of this package per command.

Each command module has ``HELP`` (its line in ``--help``), ``add_arguments(parser)`` and
``main(args) -> exit code``; the options several commands share are in ``options``. The
experiments themselves live in ``minires.experiments`` (``experiments.flow``,
``experiments.degradation``, ...): what is here only parses, checks and reports.

SIGTERM and SIGHUP (what ``kill``, a closed terminal, a batch scheduler or a container stop send)
stop a command as Ctrl-C does: ``main`` turns them into ``Stopped``, a KeyboardInterrupt, so a
command's Ctrl-C handling runs (``train`` says which epoch its checkpoint keeps), and the exit
status is 128 + the signal's number (143 for SIGTERM, 129 for SIGHUP; 130 for Ctrl-C).
"""
import argparse
import contextlib
import importlib
import os
import signal as signals  # `signal` names the signal command here (cli/signal.py)
import sys
import threading

# In the order ``--help`` lists them.
COMMANDS = ("summary", "train", "flow", "degradation", "responses", "lesion", "paths", "landscape",
            "identity", "signal", "normfree", "rank", "sharpness", "shatter", "check")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minires",
                                description="ResNet from scratch in NumPy/CuPy.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        command = importlib.import_module(f"{__name__}.{name}")
        parser = sub.add_parser(name, help=command.HELP, description=command.HELP)
        command.add_arguments(parser)
        parser.set_defaults(run=command.main)
    return p


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: raised where the command is, as Ctrl-C's KeyboardInterrupt is.
    ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum):
        self.signum, self.name = signum, signals.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(self.name)


STOP_SIGNALS = tuple(getattr(signals, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signals, name))  # Windows has no SIGHUP


def _stop(signum, frame):
    signals.signal(signum, signals.SIG_DFL)  # a second one ends the process at once
    raise Stopped(signum)


@contextlib.contextmanager
def stop_signals_as_interrupts():
    """While inside, SIGTERM and SIGHUP raise ``Stopped``; the handlers before are put back."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers (a command called from a thread)
        return
    before = {signum: signals.signal(signum, _stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signals.signal(signum, handler)


def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..fast.memory import tune_allocator
    tune_allocator()  # a run starts: glibc keeps freed memory for the next step (fast/memory.py)
    try:
        with stop_signals_as_interrupts():
            return args.run(args) or 0
    except KeyboardInterrupt as e:  # a command without its own Ctrl-C handling: one line
        how = f"stopped by {e.name}" if isinstance(e, Stopped) else "interrupted"
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"{how}: every file written so far is complete (each is written whole)",
                  file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except BrokenPipeError:
        # The reader went away (``... | head``): stop quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
