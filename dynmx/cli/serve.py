"""`dynmx serve`: start the server in the foreground, with uvloop when it is installed."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import NoReturn

from dynmx.cli.options import config_from_args

log = logging.getLogger("dynmx.cli")


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; a server that stopped in order ends its process at once
    (`exit_now`), a start that failed returns its status."""
    from dynmx.control.lock import StateDirBusy
    from dynmx.logs import setup_logging
    from dynmx.server.bind import ListenFailed

    config = config_from_args(args)
    setup_logging(config.log.level)
    from dynmx.app.lifecycle import run
    from dynmx.app.root import App

    try:
        import uvloop

        uvloop.install()
        log.debug("event=event-loop kind=uvloop")
    except ImportError:
        log.info("event=event-loop kind=asyncio reason=uvloop-missing")
    try:
        app = App(config, (lambda: config_from_args(args)) if args.config else None)
    except StateDirBusy as error:
        log.error("event=start-refused state_dir=%s holder=%r", error.state_dir, error.holder)
        print(f"dynmx: {error}: one server per state_dir; stop it or give this one another", file=sys.stderr)
        return 1
    try:
        run(app)
    except ListenFailed as error:
        log.error(
            "event=listen-failed addr=%s proto=%s service=%s error=%r",
            error.address,
            error.proto,
            error.service,
            error.reason,
        )
        print(
            f"dynmx: cannot listen on {error.address} ({error.proto}, {error.service}): {error.reason}",
            file=sys.stderr,
        )
        return 1
    except OSError as error:
        log.error("event=start-failed error=%r", str(error))
        print(f"dynmx: cannot start: {error}", file=sys.stderr)
        return 1
    exit_now(0)


def exit_now(code: int) -> NoReturn:
    """End the process after an orderly stop: zone files written, the journal and the state
    stores closed, the log flushed here. What `sys.exit` would add is freeing the heap object
    by object (every compiled answer; among 100,000 zones, seconds of one core) and joining
    the threads `lifecycle.run` leaves, which hold nothing that must be finished."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)
