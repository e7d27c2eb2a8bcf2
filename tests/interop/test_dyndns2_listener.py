"""`[dyndns2] listen`: the dyndns2 endpoint on a listener of its own (issue 23, item 10).

It serves GET /nic/update and nothing else, over TLS when `tls_cert`/`tls_key` are set
(certificates read again on reload), with its own connection limits; the control listener
then no longer serves /nic/update.
"""

from __future__ import annotations

import base64
import http.client
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.conftest import RunningServer, write_config
from tests.control_token import auth

Serve = Callable[..., RunningServer]
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
home A   192.0.2.1
"""
HOSTS = '[[dyndns2.host]]\nhostname = "home.example.test."\nusername = "home"\npassword = "s3cret"\n'
LISTENING = re.compile(r"event=listening proto=dyndns2 address=\S+ port=(\d+) scheme=(\w+)")


def _serve(serve: Serve, tmp_path: Path, extra: str = "") -> tuple[RunningServer, int]:
    config = write_config(
        tmp_path,
        ZONE,
        '[http]\nlisten = "127.0.0.1:0"\n'
        f'[dyndns2]\nenabled = true\nttl = 60\nmin_interval = 0\nlisten = "127.0.0.1:0"\n{extra}{HOSTS}',
    )
    server = serve("--config", str(config))
    match = LISTENING.search(server.wait_for_log("event=listening proto=dyndns2"))
    assert match is not None
    return server, int(match.group(1))


def _get(
    port: int,
    path: str,
    method: str = "GET",
    password: str = "s3cret",
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, http.client.HTTPResponse]:
    connection: http.client.HTTPConnection
    if context is not None:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    token = base64.b64encode(f"home:{password}".encode()).decode()
    try:
        connection.request(method, path, headers={"Authorization": f"Basic {token}", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read().decode().strip(), response
    finally:
        connection.close()


def _address(server: RunningServer) -> list[str]:
    query = dns.message.make_query("home.example.test", "A")
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    return [r.address for r in reply.answer[0]]


UPDATE = "/nic/update?hostname=home.example.test&myip=192.0.2.7"


def test_only_nic_update_is_served_there_and_no_longer_on_the_control_listener(
    serve: Serve, tmp_path: Path
) -> None:
    server, port = _serve(serve, tmp_path)
    assert _get(port, UPDATE)[:2] == (200, "good 192.0.2.7")
    assert _address(server) == ["192.0.2.7"]
    for path in ("/status", "/metrics", "/routes", "/explain?name=home.example.test", "/"):
        assert _get(port, path)[0] == 404, path
    for path in ("/reload", "/members/drain?pool=x&host=y&drained=1", "/update", "/zones/add?zone=x."):
        assert _get(port, path, "POST")[0] == 404, path
    assert _get(port, UPDATE, "POST")[0] == 405
    assert _get(server.http_port, UPDATE, headers=auth(server))[:2] == (404, "not found")
    assert "s3cret" not in server.log_text()


def test_wrong_passwords_there_are_slowed_and_logged(serve: Serve, tmp_path: Path) -> None:
    server, port = _serve(serve, tmp_path)
    for attempt in range(3):
        assert _get(port, UPDATE, password=f"Guess-{attempt}")[:2] == (401, "badauth")
    status, body, response = _get(port, UPDATE)  # the right one, too soon
    assert (status, body, response.headers["Retry-After"]) == (429, "badauth", "1")
    assert _address(server) == ["192.0.2.1"]
    line = server.wait_for_log("failures=3")
    assert "event=dyndns2-refused reason=badauth host=home.example.test source=127.0.0.1 user='home'" in line
    assert "wait=1" in line
    assert "reason=waiting" in server.wait_for_log("reason=waiting")
    time.sleep(1.1)
    assert _get(port, UPDATE)[:2] == (200, "good 192.0.2.7")
    assert "Guess-" not in server.log_text()


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def _trusting(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    return context


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_tls_with_a_self_signed_certificate_renewed_by_reload(serve: Serve, tmp_path: Path) -> None:
    first_cert, first_key = _certificate(tmp_path, "first")
    cert, key = tmp_path / "dyndns.pem", tmp_path / "dyndns.key"
    shutil.copy(first_cert, cert)
    shutil.copy(first_key, key)
    server, port = _serve(serve, tmp_path, f'tls_cert = "{cert}"\ntls_key = "{key}"\n')
    assert "scheme=https" in server.wait_for_log("event=listening proto=dyndns2")
    assert _get(port, UPDATE, context=_trusting(first_cert))[:2] == (200, "good 192.0.2.7")
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        _get(port, UPDATE)  # plain HTTP to the TLS port: no answer
    with pytest.raises(ssl.SSLCertVerificationError):
        _get(port, UPDATE, context=ssl.create_default_context())  # not trusted without the cert
    second_cert, second_key = _certificate(tmp_path, "second")
    shutil.copy(second_cert, cert)
    shutil.copy(second_key, key)
    status, _, _ = _get(server.http_port, "/reload", "POST", headers=auth(server))
    assert status == 200
    update = UPDATE.replace("192.0.2.7", "192.0.2.8")
    assert _get(port, update, context=_trusting(second_cert))[:2] == (200, "good 192.0.2.8")
    with pytest.raises(ssl.SSLCertVerificationError):
        _get(port, update, context=_trusting(first_cert))
    time.sleep(0.2)
    assert "Traceback" not in server.log_text()
    assert "event=dyndns2-plaintext" not in server.log_text()


def test_its_connections_are_capped_per_source_and_timed_out(serve: Serve, tmp_path: Path) -> None:
    server, port = _serve(serve, tmp_path, "max_connections = 4\nmax_per_source = 2\ntimeout = 1\n")
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(10)]
    try:
        time.sleep(0.3)
        open_ones = 0
        for sock in held:
            sock.settimeout(0.05)
            try:
                open_ones += sock.recv(1) != b""
            except TimeoutError:
                open_ones += 1
            except ConnectionResetError:
                pass
        assert open_ones == 2
        time.sleep(1.2)
        status, body, _ = _get(port, UPDATE)  # the two were cut off: there is room again
        assert (status, body) == (200, "good 192.0.2.7")
    finally:
        for sock in held:
            sock.close()
    assert "event=http-connections-full listener=dyndns2" in server.log_text()
    assert "Traceback" not in server.log_text()


def test_a_tls_key_without_a_certificate_is_a_config_error(serve: Serve, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="tls_cert and tls_key go together"):
        _serve(serve, tmp_path, 'tls_key = "x.key"\n')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_reload_moves_closes_and_opens_it(serve: Serve, tmp_path: Path) -> None:
    server, port = _serve(serve, tmp_path)
    config = tmp_path / "dynmx.toml"
    original = config.read_text()
    moved = _free_port()

    def reload(text: str) -> None:
        config.write_text(text)
        assert _get(server.http_port, "/reload", "POST", headers=auth(server))[0] == 200

    reload(original.replace('listen = "127.0.0.1:0"\n[[dyndns2', f'listen = "127.0.0.1:{moved}"\n[[dyndns2'))
    assert _get(moved, UPDATE)[:2] == (200, "good 192.0.2.7")
    with pytest.raises(ConnectionRefusedError):
        _get(port, UPDATE)
    reload(original.replace('listen = "127.0.0.1:0"\n[[dyndns2', 'listen = ""\n[[dyndns2'))
    with pytest.raises(ConnectionRefusedError):
        _get(moved, UPDATE)
    update = UPDATE.replace("192.0.2.7", "192.0.2.9")
    assert _get(server.http_port, update)[:2] == (200, "good 192.0.2.9")  # back on the control listener
    reload(
        original.replace("enabled = true", "enabled = false").replace(
            '127.0.0.1:0"\n[[dyndns2', f'127.0.0.1:{moved}"\n[[dyndns2'
        )
    )
    with pytest.raises(ConnectionRefusedError):
        _get(moved, UPDATE)
    assert _get(server.http_port, update)[0] == 404
    server.wait_for_log(f"event=listener-closed proto=dyndns2 port={moved}")
