"""The DANE-aware smtp probe (RFC 7672) against a real aiosmtpd sink with STARTTLS on loopback,
and the TLSA match itself (dynmx.health.dane) by plain calls. Certificates are made here, and
the expected association data is computed with hashlib, apart from the code under test."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dynmx.config import load_config
from dynmx.errors import ConfigError
from dynmx.health.dane import Tlsa, judge
from dynmx.health.probes import REASONS, ProbeResult, run_probe
from dynmx.health.spec import ProbeSpec
from tests.dane_sink import Cert, make_cert
from tests.fake_servers import Behaviour, FakeServer, banner, fake_server

LOCAL = "127.0.0.1"


def tlsa(text: str) -> Tlsa:
    usage, selector, mtype, data = text.split()
    return Tlsa(int(usage), int(selector), int(mtype), bytes.fromhex(data))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cert, Cert]:
    """The sink's certificate and another one (whose records never match the sink)."""
    directory = tmp_path_factory.mktemp("certs")
    return make_cert(directory, "mx1.example.test"), make_cert(directory, "other.example.test")


@pytest.fixture
def sink(smtp_controllers: Callable[..., Any], certs: tuple[Cert, Cert]) -> Callable[..., int]:
    """Start a sink (STARTTLS with the first certificate unless starttls=False); its port."""

    def start(starttls: bool = True) -> int:
        options = {"tls_context": certs[0].context()} if starttls else {}
        return int(smtp_controllers("mx1.example.test", **options).port)

    return start


def probe(port: int, *records: str) -> ProbeResult:
    spec = ProbeSpec("smtp", LOCAL, port, timeout=3.0, tlsa=tuple(tlsa(r) for r in records))
    return asyncio.run(run_probe(spec))


def test_dane_ee_spki_sha256_match_passes(sink: Callable[..., int], certs: tuple[Cert, Cert]) -> None:
    result = probe(sink(), certs[0].tlsa(1, 1))
    assert (result.ok, result.reason) == (True, "ok"), result
    assert result.evidence.startswith("TLSA 3 1 1 ")


def test_dane_ee_full_cert_sha256_match_passes(sink: Callable[..., int], certs: tuple[Cert, Cert]) -> None:
    result = probe(sink(), certs[0].tlsa(0, 1))
    assert (result.ok, result.reason) == (True, "ok"), result
    assert result.evidence.startswith("TLSA 3 0 1 ")


def test_mismatch_fails_naming_the_records_tried_and_the_cert_spki(
    sink: Callable[..., int], certs: tuple[Cert, Cert]
) -> None:
    result = probe(sink(), certs[1].tlsa(1, 1), certs[1].tlsa(0, 2))
    assert (result.ok, result.reason) == (False, "tlsa-mismatch")
    assert "tlsa-mismatch" in REASONS
    spki_sha256 = certs[0].tlsa(1, 1).split()[3]
    assert f"spki-sha256={spki_sha256}" in result.evidence
    assert "3 1 1 " + certs[1].tlsa(1, 1).split()[3][:16] in result.evidence
    assert "3 0 2 " in result.evidence


def test_rfc7672_3_1_one_matching_record_is_enough(
    sink: Callable[..., int], certs: tuple[Cert, Cert]
) -> None:
    result = probe(sink(), certs[1].tlsa(1, 1), certs[0].tlsa(1, 2))
    assert (result.ok, result.reason) == (True, "ok"), result


def test_rfc7672_2_2_no_starttls_while_tlsa_published_fails(
    sink: Callable[..., int], certs: tuple[Cert, Cert]
) -> None:
    result = probe(sink(starttls=False), certs[0].tlsa(1, 1))
    assert (result.ok, result.reason) == (False, "no-starttls")
    assert result.evidence.startswith("TLSA published")


def test_no_tlsa_rrset_is_the_plain_smtp_probe(sink: Callable[..., int]) -> None:
    assert probe(sink()).reason == "ok"
    assert probe(sink(starttls=False)).reason == "ok"


def test_dane_ta_only_is_not_checked(sink: Callable[..., int], certs: tuple[Cert, Cert]) -> None:
    """Usage 2 (and the PKIX usages) would need the chain: judged on the rest, not failed."""
    result = probe(sink(), certs[1].tlsa(1, 1, usage=2), certs[1].tlsa(0, 1, usage=1))
    assert (result.ok, result.reason) == (True, "ok"), result
    assert "not checked" in result.evidence


def test_dane_ta_beside_a_mismatching_dane_ee_still_fails(
    sink: Callable[..., int], certs: tuple[Cert, Cert]
) -> None:
    result = probe(sink(), certs[0].tlsa(1, 1, usage=2), certs[1].tlsa(1, 1))
    assert result.reason == "tlsa-mismatch"


# -- the match by plain calls ---------------------------------------------------------------


@pytest.mark.parametrize(("selector", "mtype"), [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)])
def test_every_selector_and_matching_type_matches_its_own_cert(
    certs: tuple[Cert, Cert], selector: int, mtype: int
) -> None:
    cert, other = certs
    assert judge(cert.der, [tlsa(cert.tlsa(selector, mtype))]).reason == "ok"
    assert judge(cert.der, [tlsa(other.tlsa(selector, mtype))]).reason == "tlsa-mismatch"


def test_unknown_selector_or_matching_type_is_not_checked(certs: tuple[Cert, Cert]) -> None:
    records = [Tlsa(3, 2, 1, b"\0" * 32), Tlsa(3, 1, 255, b"\0" * 32)]
    verdict = judge(certs[0].der, records)
    assert (verdict.reason, verdict.evidence) == ("ok", "TLSA not checked: no DANE-EE record")


def test_mismatch_evidence_stays_within_200_characters(certs: tuple[Cert, Cert]) -> None:
    records = [tlsa(certs[1].tlsa(s, m)) for s in (0, 1) for m in (0, 1, 2)]
    verdict = judge(certs[0].der, records)
    assert verdict.reason == "tlsa-mismatch"
    assert len(verdict.evidence) <= 200 and "(+3 more)" in verdict.evidence


# -- where it may be asked for --------------------------------------------------------------


def test_spec_refuses_tlsa_on_another_probe_kind(certs: tuple[Cert, Cert]) -> None:
    with pytest.raises(ValueError, match="tlsa"):
        ProbeSpec("tcp", LOCAL, 25, tlsa=(tlsa(certs[0].tlsa(1, 1)),))


@pytest.mark.parametrize("member", ['host = "mx1.example.test."\nprobe = "tcp"', 'host = "192.0.2.1"'])
def test_config_refuses_tlsa_without_smtp_probe_or_host_name(tmp_path: Path, member: str) -> None:
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nzones_dir = "{tmp_path}"\n[[pool]]\nname = "example.test."\n'
        f"[[pool.member]]\n{member}\ntlsa = true\n"
    )
    with pytest.raises(ConfigError, match=r"dynmx\.toml:\d+: .*tlsa: needs probe"):
        load_config(config)


# -- STARTTLS faults from a misbehaving peer ---------------------------------------------------

EHLO_STARTTLS = "250-fake.invalid\r\n250 STARTTLS\r\n"


def starttls_reply(reply: bytes) -> Behaviour:
    """Greet, offer STARTTLS, answer it with `reply` (nothing: stay silent), then hang up."""

    async def serve(server: FakeServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake.invalid ESMTP\r\n")
        while line := await reader.readline():
            server.received.append(line.rstrip(b"\r\n"))
            if line.upper().startswith(b"EHLO"):
                writer.write(EHLO_STARTTLS.encode())
            elif line.upper().startswith(b"STARTTLS"):
                writer.write(reply)
                await writer.drain()
                if not reply:  # silence until the prober hangs up
                    await reader.read()
                return
            await writer.drain()

    return serve


async def probe_fake(
    behaviour: Behaviour, certs: tuple[Cert, Cert], timeout: float = 2.0
) -> tuple[ProbeResult, FakeServer]:
    records = (tlsa(certs[0].tlsa(1, 1)),)
    async with fake_server(behaviour) as server:
        result = await run_probe(ProbeSpec("smtp", LOCAL, server.port, timeout=timeout, tlsa=records))
    return result, server


def test_starttls_refused_by_the_server_fails(certs: tuple[Cert, Cert]) -> None:
    result, server = asyncio.run(probe_fake(banner("220 fake.invalid\r\n", ehlo=EHLO_STARTTLS), certs))
    assert (result.ok, result.reason) == (False, "starttls-rejected")
    assert result.evidence.startswith("502")
    assert b"STARTTLS" in server.received


def test_rfc3207_bytes_after_the_starttls_220_fail_as_injection(certs: tuple[Cert, Cert]) -> None:
    result, _ = asyncio.run(probe_fake(starttls_reply(b"220 go ahead\r\n250 injected\r\n"), certs))
    assert (result.ok, result.reason) == (False, "garbage")


def test_no_tls_after_the_starttls_220_fails_the_handshake(certs: tuple[Cert, Cert]) -> None:
    result, _ = asyncio.run(probe_fake(starttls_reply(b"220 go ahead\r\n"), certs))
    assert (result.ok, result.reason) == (False, "tls-handshake")


# -- the same verdict as OpenSSL's DANE (which Postfix's smtp client uses) ----------------------

OPENSSL = shutil.which("openssl")


def openssl_dane_verdict(port: int, records: list[str]) -> bool:
    """Whether `openssl s_client -dane_tlsa_rrdata` verifies the sink's certificate."""
    assert OPENSSL is not None
    command = [OPENSSL, "s_client", "-starttls", "smtp", "-connect", f"{LOCAL}:{port}", "-brief"]
    command += ["-dane_tlsa_domain", "mx1.example.test", "-verify_return_error"]
    for record in records:
        command += ["-dane_tlsa_rrdata", record]
    done = subprocess.run(command, input="QUIT\n", capture_output=True, text=True, timeout=10, check=False)
    return done.returncode == 0 and "Verification: OK" in done.stdout + done.stderr


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
@pytest.mark.parametrize(
    "which",
    [
        [("own", 1, 1)],
        [("own", 0, 0)],
        [("own", 0, 2)],
        [("own", 1, 2)],
        [("other", 1, 1)],
        [("other", 0, 1), ("other", 1, 2)],
        [("other", 1, 1), ("own", 0, 1)],
    ],
)
def test_dane_ee_verdict_agrees_with_openssl_s_client(
    sink: Callable[..., int], certs: tuple[Cert, Cert], which: list[tuple[str, int, int]]
) -> None:
    port = sink()
    records = [(certs[0] if who == "own" else certs[1]).tlsa(s, m) for who, s, m in which]
    ours, theirs = probe(port, *records).ok, openssl_dane_verdict(port, records)
    print(f"dynmx={ours} openssl={theirs}")
    assert ours == theirs


def test_silence_after_starttls_is_timeout_starttls(certs: tuple[Cert, Cert]) -> None:
    result, _ = asyncio.run(probe_fake(starttls_reply(b""), certs, timeout=0.3))
    assert (result.ok, result.reason) == (False, "timeout-starttls")
    assert result.reason in REASONS
