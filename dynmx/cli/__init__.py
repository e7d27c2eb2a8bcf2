"""The `dynmx` command: parse the command line (`parser`), run the command, and turn a
`DynmxError` into `dynmx: reason` on stderr with exit status 2.

Each command lives in a module of its own (`serve`, `check`, `running` for those that act on
the running server, `records`, `zones`, `pools`, ...) and imports what it runs inside the
function that runs it, so that `--version`, `--help` and completion start fast.
"""

from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:  # as the parser says it, unbuilt
        from dynmx import __version__

        print(f"dynmx {__version__}")
        return 0
    from dynmx.cli import configpath
    from dynmx.cli.parser import build_parser
    from dynmx.errors import DynmxError

    parser = build_parser()
    args = parser.parse_args(argv)
    missing = configpath.apply(args)
    if missing is not None:
        parser.exit(2, f"dynmx: {missing}\n")
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except DynmxError as error:
        print(f"dynmx: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _stdout_closed() -> int:
    """The reader of stdout went away (`dynmx status | head -1`): exit quietly, as `cat` does,
    with the status a process killed by SIGPIPE has; what is left unwritten goes nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
