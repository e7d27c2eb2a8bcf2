"""TCP framing under random input (RFC 7766 8): a real server, random chunking, odd frames.

Valid queries, mutated UPDATE/NOTIFY/XFR messages, garbage and zero-length frames are
sent length-prefixed on one connection, cut into random chunks; a stream may end inside
a length prefix or a message. Every reply must decode (dnspython and dnslib), every
valid query must get its answer in order, and afterwards the server still answers over
UDP and TCP with no traceback in its log.
"""

from __future__ import annotations

import itertools
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import EDITS, RunningServer, start_server, write_config
from tests.helpers_engine import EXAMPLE_ZONE, query
from tests.helpers_fuzz import (
    decode_both,
    edns_seeds,
    fuzz_settings,
    mutated,
    notify_seeds,
    transfer_seeds,
    update_seeds,
)

SEEDS = update_seeds() + notify_seeds() + transfer_seeds() + edns_seeds()
NAMES = ["www.example.test.", "example.test.", "nope.example.test.", "foo.wc.example.test."]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory: Path = tmp_path_factory.mktemp("fuzz-tcp")
    running = start_server("--config", str(write_config(directory, EXAMPLE_ZONE, EDITS)))
    yield running
    running.stop()


def framed(message: bytes) -> bytes:
    return struct.pack(">H", len(message)) + message


def exchange(server: RunningServer, chunks: list[bytes], pause: bool = False) -> bytes:
    """Send `chunks` on one connection, close our side, and read everything until the server closes."""
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for chunk in chunks:
            sock.sendall(chunk)
            if pause:
                time.sleep(0.002)  # separate segments: the server sees each chunk on its own
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data = sock.recv(65535)
            if not data:
                break
            received += data
    return bytes(received)


def replies_in(stream: bytes) -> list[dns.message.Message]:
    """Split the reply stream at its length prefixes and decode each message with both decoders."""
    messages = []
    pos = 0
    while pos < len(stream):
        assert pos + 2 <= len(stream), "reply stream ends inside a length prefix"
        length = struct.unpack(">H", stream[pos : pos + 2])[0]
        assert pos + 2 + length <= len(stream), "reply stream ends inside a message"
        messages.append(decode_both(stream[pos + 2 : pos + 2 + length]))
        pos += 2 + length
    return messages


@st.composite
def frames(draw: st.DrawFn) -> tuple[list[bytes], list[int]]:
    """Frames to send, and the message IDs of the valid queries among them (which must be answered)."""
    sent: list[bytes] = []
    expected: list[int] = []
    for kind in draw(st.lists(st.sampled_from(["query", "mutated", "garbage", "empty"]), max_size=12)):
        if kind == "query":
            msg_id = draw(st.integers(0, 0xFFFF))
            sent.append(framed(query(draw(st.sampled_from(NAMES)), "A", msg_id=msg_id).to_wire()))
            expected.append(msg_id)
        elif kind == "mutated":
            sent.append(framed(draw(mutated(SEEDS))))
        elif kind == "garbage":
            sent.append(framed(draw(st.binary(max_size=300))))
        else:
            sent.append(b"\x00\x00")
    return sent, expected


@fuzz_settings(60)
@given(
    plan=frames(),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
    tail=st.sampled_from([b"", b"\x00", b"\x01", b"\x00\x40abc", b"\xff\xff" + b"x" * 100]),
    pause=st.booleans(),
)
def test_random_chunks_of_valid_and_garbage_frames(
    server: RunningServer, plan: tuple[list[bytes], list[int]], cuts: list[int], tail: bytes, pause: bool
) -> None:
    sent, expected = plan
    stream = b"".join(sent) + tail  # a tail that is a cut length prefix or a message never completed
    points = sorted({cut % (len(stream) + 1) for cut in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points) if b > a]
    replies = replies_in(exchange(server, chunks, pause))
    position = 0
    for msg_id in expected:  # in order: this server answers each message as it completes
        while position < len(replies) and replies[position].id != msg_id:
            position += 1
        assert position < len(replies), f"query {msg_id} got no answer"
        position += 1


def test_zero_length_frames_are_skipped_and_the_next_query_answered(server: RunningServer) -> None:
    probe = query("www.example.test.", "A", msg_id=777)
    replies = replies_in(exchange(server, [b"\x00\x00" * 5, framed(probe.to_wire())]))
    assert [m.id for m in replies] == [777]


@pytest.mark.parametrize("tail", [b"\x00", b"\x00\x0c", b"\x00\x0c\x12\x34", b"\xff\xff" + b"\x00" * 1000])
def test_stream_ending_inside_a_frame_is_closed_quietly(server: RunningServer, tail: bytes) -> None:
    probe = query("www.example.test.", "A", msg_id=778)
    replies = replies_in(exchange(server, [framed(probe.to_wire()), tail]))
    assert [m.id for m in replies] == [778]


def test_server_still_answers_after_the_fuzzing(server: RunningServer) -> None:
    """Runs last in this module: UDP and TCP answers, no crash, no traceback in the log."""
    probe = query("www.example.test.", "A", msg_id=779)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(probe.to_wire(), server.address)
        over_udp = dns.message.from_wire(sock.recv(65535))
    over_tcp = replies_in(exchange(server, [framed(probe.to_wire())]))
    for reply in (over_udp, *over_tcp):
        assert reply.id == 779 and reply.rcode() == dns.rcode.NOERROR and reply.answer
    assert server.process.poll() is None
    log = server.log_text()
    assert "Traceback" not in log and "internal-error" not in log and "Fatal error" not in log
