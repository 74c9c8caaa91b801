"""The probe: every command (as ``build_parser()`` lists them, so a new one is covered too), each
of its numeric options at 0, -1, a huge value, nan and inf. Each value is refused in one line,
argparse's usage error or the command's own message, with no traceback, before any work; or, for
0 only, accepted (a seed, no weight decay, no warm-up), and then the command gets as far as the
start of its work and no further.

In-process: the argv is parsed as ``python -m minires`` parses it; a value the parser accepts goes
on to the command's ``main`` with the start of any work (taking the run folder, writing a file,
training) replaced by a stop, so no case trains or writes. A command without ``--out`` is checked
at parsing only: its numbers are used only by its work.
"""
import argparse
import contextlib
import io as text_io

import pytest

from minires import io, train
from minires.cli import build_parser, options

VALUES = ("0", "-1", "1000000000000", "1e300", "nan", "inf")
SAMPLES = ("1", "3", "20", "0.5")  # what a numeric option's type parses, one at least


class Started(Exception):
    """The command got to the start of its work."""


def stop(*args, **kwargs):
    raise Started


def subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


def is_numeric(action):
    if not action.option_strings or action.type is None or action.nargs == 0:
        return False
    for text in SAMPLES:
        with contextlib.suppress(Exception):
            if isinstance(action.type(text), (int, float)):
                return True
    return False


def positionals(subparser):
    """What a positional argument needs: its first choice (summary's model), else nothing."""
    argv = []
    for action in subparser._actions:
        if not action.option_strings and action.nargs not in ("*", "?"):
            argv.append(str(next(iter(action.choices))) if action.choices else "x")
    return argv


def cases():
    _, commands = subcommands()
    for name, subparser in commands.items():
        for action in subparser._actions:
            if is_numeric(action):
                for value in VALUES:
                    yield name, action.option_strings[-1], value


CASES = list(cases())


def test_the_probe_covers_every_command_with_numeric_options():
    _, commands = subcommands()
    probed = {name for name, _, _ in CASES}
    assert {"summary", "train", "flow", "degradation", "responses", "lesion", "paths",
            "landscape", "identity", "shatter", "check"} <= set(commands)
    assert probed == {name for name, p in commands.items() if any(map(is_numeric, p._actions))}
    assert len(CASES) >= 181


@pytest.mark.parametrize("command, option, value", CASES,
                         ids=[f"{c} {o} {v}" for c, o, v in CASES])
def test_a_bad_number_is_one_line_before_any_work(command, option, value, tmp_path,
                                                  monkeypatch):
    parser, commands = subcommands()
    subparser = commands[command]
    action = next(a for a in subparser._actions if option in a.option_strings)
    count = action.nargs if isinstance(action.nargs, int) else 1
    argv = [command, *positionals(subparser), option, *[value] * count]
    if any("--out" in a.option_strings for a in subparser._actions):
        argv += ["--out", str(tmp_path / "out")]
    for where, name in ((options, "lock_out"), (io, "lock_folder"), (io, "atomic_write"),
                        (train, "fit")):
        monkeypatch.setattr(where, name, stop)
    err = text_io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(text_io.StringIO()):
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:
            lines = err.getvalue().strip().splitlines()
            assert e.code == 2 and lines, err.getvalue()
            assert lines[-1].startswith(f"python -m minires {command}: error: argument "), lines
            assert all(line.startswith(("usage:", " ")) for line in lines[:-1]), lines
            return
        assert value == "0", f"{' '.join(argv)}: accepted by the parser"
        if not any("--out" in a.option_strings for a in subparser._actions):
            return  # checked at parsing only (see the module's docstring)
        try:
            args.run(args)
        except Started:
            return  # 0 is a legal value here, and nothing ran
        except SystemExit as e:
            assert isinstance(e.code, str) and "\n" not in e.code.strip(), e.code
            assert "Traceback" not in err.getvalue()
            return
        raise AssertionError(f"{' '.join(argv)} ran to its end without starting any work")
