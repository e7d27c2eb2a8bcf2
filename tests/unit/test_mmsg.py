"""The batched UDP loop (`dynmx.server.mmsg`) by plain calls on real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from dynmx.server.mmsg import BatchedUdp, available

pytestmark = pytest.mark.skipif(not available(), reason="no recvmmsg/sendmmsg here")


def _server(family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    sock.setblocking(False)
    return sock


@pytest.fixture
def clients() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def _client(clients: list[socket.socket], family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    sock.settimeout(2)
    clients.append(sock)
    return sock


def _echo(seen: list[tuple[bytes, object]]):  # type: ignore[no-untyped-def]
    def handler(data: bytes, peer: object, tcp: bool) -> bytes:
        seen.append((data, peer))
        return b"re:" + data

    return handler


def test_every_waiting_datagram_is_answered_to_its_sender_in_one_call(clients: list[socket.socket]) -> None:
    server = _server()
    seen: list[tuple[bytes, object]] = []
    udp = BatchedUdp(server, _echo(seen))
    a, b = _client(clients), _client(clients)
    for index in range(3):
        a.sendto(f"a{index}".encode(), server.getsockname())
    b.sendto(b"b0", server.getsockname())
    udp.readable()
    assert udp.received == 4
    assert sorted(a.recv(100) for _ in range(3)) == [b"re:a0", b"re:a1", b"re:a2"]
    assert b.recv(100) == b"re:b0"
    assert {peer for _, peer in seen} == {a.getsockname(), b.getsockname()}
    udp.close()


def test_more_datagrams_than_a_batch_are_taken_by_the_next_call(clients: list[socket.socket]) -> None:
    server = _server()
    udp = BatchedUdp(server, _echo([]), size=4)
    client = _client(clients)
    for index in range(6):
        client.sendto(bytes([index]), server.getsockname())
    udp.readable()
    assert udp.received == 4
    udp.readable()
    assert udp.received == 6
    assert sorted(client.recv(100)[-1] for _ in range(6)) == list(range(6))
    udp.close()


def test_a_truncated_datagram_gets_no_reply_and_the_others_do(clients: list[socket.socket]) -> None:
    server = _server()
    udp = BatchedUdp(server, _echo([]))
    udp.batch = type(udp.batch)(size=8, datagram=512)
    client = _client(clients)
    client.sendto(b"x" * 600, server.getsockname())
    client.sendto(b"small", server.getsockname())
    udp.readable()
    assert client.recv(100) == b"re:small"
    client.settimeout(0.2)
    with pytest.raises(TimeoutError):
        client.recv(1000)
    udp.close()


def test_ipv6_senders_are_answered_with_their_own_address(clients: list[socket.socket]) -> None:
    server = _server(socket.AF_INET6)
    seen: list[tuple[bytes, object]] = []
    udp = BatchedUdp(server, _echo(seen))
    client = _client(clients, socket.AF_INET6)
    client.sendto(b"six", server.getsockname()[:2])
    udp.readable()
    assert client.recv(100) == b"re:six"
    assert seen[0][1] == client.getsockname()[:2]
    udp.close()


def test_a_silent_handler_sends_nothing_and_a_later_reply_is_sent_when_ready(
    clients: list[socket.socket],
) -> None:
    async def run() -> list[bytes]:
        loop = asyncio.get_running_loop()
        server = _server()

        def handler(data: bytes, peer: object, tcp: bool) -> object:
            if data == b"drop":
                return None
            future = loop.create_future()
            loop.call_later(0.01, future.set_result, b"later:" + data)
            return future

        udp = BatchedUdp(server, handler)  # type: ignore[arg-type]
        udp.start(loop)
        client = _client(clients)
        client.setblocking(False)
        client.sendto(b"drop", server.getsockname())
        client.sendto(b"q", server.getsockname())
        replies = [await asyncio.wait_for(loop.sock_recv(client, 100), 2)]
        udp.close()
        return replies

    assert asyncio.run(run()) == [b"later:q"]
