"""The process lifecycle (`dynmx.app.lifecycle`, uvicorn's serve -> startup -> main_loop ->
shutdown): a start-up that fails half way stops what it had started, as a stop would."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from dynmx.app.root import App
from dynmx.config import load_config
from tests.conftest import write_config

ZONE = """\
$ORIGIN example.test.
$TTL 300
@    SOA ns1 hostmaster 1 7200 900 1209600 300
@    NS  ns1
ns1  A   192.0.2.53
"""
HOSTS = '[[dyndns2.host]]\nhostname = "home.example.test."\nusername = "home"\npassword = "s3cret"\n'


def _refused(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) != 0


def test_a_start_that_fails_half_way_closes_its_dns_listeners_and_releases_state_dir(tmp_path: Path) -> None:
    """The dyndns2 listener is opened after the DNS listeners and the services: its address
    taken, the start fails, and the DNS listener and state_dir's lock are given back."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        dyndns2 = f'[dyndns2]\nenabled = true\nlisten = "127.0.0.1:{port}"\n{HOSTS}'
        config = load_config(write_config(tmp_path, ZONE, dyndns2))

        async def failed_start() -> tuple[list[tuple[str, int]], bool]:
            app = App(config)
            with pytest.raises(OSError):
                await app.serve_forever()
            return app.bound, all(_refused(host, dns_port) for host, dns_port in app.bound)

        bound, closed = asyncio.run(failed_start())
    assert bound  # it got as far as answering
    assert closed
    again = App(config)  # StateDirBusy if the failed start still held state_dir
    again.store.close()
    again.owner.close()
