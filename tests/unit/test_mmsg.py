"""The batched UDP loop (`dynmx.server.mmsg`) by plain calls on real loopback sockets."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator

import dns.message
import dns.name
import dns.zone
import pytest

from dynmx.answer.engine import Engine
from dynmx.answer.zoneset import ZoneData
from dynmx.config import from_mapping
from dynmx.policy.served import build_table, plan_all
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
    udp = BatchedUdp(server, _echo([]), size=4, batches=1)
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


def test_one_wakeup_takes_up_to_its_number_of_full_batches(clients: list[socket.socket]) -> None:
    server = _server()
    udp = BatchedUdp(server, _echo([]), size=4, batches=2)
    client = _client(clients)
    for index in range(10):
        client.sendto(bytes([index]), server.getsockname())
    udp.readable()
    assert udp.received == 8
    udp.readable()
    assert udp.received == 10
    assert sorted(client.recv(100)[-1] for _ in range(10)) == list(range(10))
    udp.close()


def test_a_dual_stack_socket_answers_ipv4_and_ipv6_senders_in_one_batch(clients: list[socket.socket]) -> None:
    server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", 0))
    server.setblocking(False)
    port = server.getsockname()[1]
    seen: list[tuple[bytes, object]] = []
    udp = BatchedUdp(server, _echo(seen))
    four, six = _client(clients), _client(clients, socket.AF_INET6)
    four.sendto(b"v4", ("127.0.0.1", port))
    six.sendto(b"v6", ("::1", port))
    four.sendto(b"v4 again", ("127.0.0.1", port))
    udp.readable()
    assert udp.received == 3
    assert sorted(four.recv(100) for _ in range(2)) == [b"re:v4", b"re:v4 again"]
    assert six.recv(100) == b"re:v6"
    peers = {data: peer for data, peer in seen}
    assert peers[b"v4"] == ("::ffff:127.0.0.1", four.getsockname()[1])  # as the loop's endpoint says it
    assert peers[b"v6"] == six.getsockname()[:2]
    udp.close()


def test_replies_after_a_silent_datagram_go_to_their_own_senders_and_the_next_batch_is_unshifted(
    clients: list[socket.socket],
) -> None:
    server = _server()

    def handler(data: bytes, peer: object, tcp: bool) -> bytes | None:
        return None if data.startswith(b"drop") else b"re:" + data

    udp = BatchedUdp(server, handler)
    a, b = _client(clients), _client(clients)
    a.sendto(b"drop", server.getsockname())
    b.sendto(b"b1", server.getsockname())
    a.sendto(b"a1", server.getsockname())
    udp.readable()
    assert b.recv(100) == b"re:b1"
    assert a.recv(100) == b"re:a1"
    b.sendto(b"b2", server.getsockname())  # reply slot 0 is b's own datagram's sender again
    a.sendto(b"a2", server.getsockname())
    udp.readable()
    assert b.recv(100) == b"re:b2"
    assert a.recv(100) == b"re:a2"
    udp.close()


class _Memoed:
    """A handler's owner that offers a memo (as the engine offers its packet cache)."""

    def __init__(self, memo: dict[bytes, object], hosts: set[str] | None) -> None:
        self.memo = memo
        self.hosts = hosts
        self.offered = True
        self.seen: list[bytes] = []

    def handle(self, data: bytes, peer: object, tcp: bool) -> bytes:
        self.seen.append(data)
        return b"re:" + data

    def udp_memo(self) -> tuple[dict[bytes, object], set[str] | None] | None:
        return (self.memo, self.hosts) if self.offered else None


class _PerSender:
    def __init__(self, silent_port: int) -> None:
        self.silent_port = silent_port

    def reply(self, sender: object) -> bytes | None:
        assert isinstance(sender, tuple)
        return None if sender[1] == self.silent_port else f"to {sender[1]}".encode()


def test_a_datagram_in_the_memo_is_answered_with_its_own_first_two_octets_and_no_handler_call(
    clients: list[socket.socket],
) -> None:
    server = _server()
    owner = _Memoed({b"question": b"answer"}, None)
    udp = BatchedUdp(server, owner.handle)
    client = _client(clients)
    client.sendto(b"\x12\x34question", server.getsockname())
    client.sendto(b"\xab\xcdquestion", server.getsockname())
    client.sendto(b"\x00\x01other", server.getsockname())
    udp.readable()
    assert [client.recv(100) for _ in range(3)] == [b"\x12\x34answer", b"\xab\xcdanswer", b"re:\x00\x01other"]
    assert owner.seen == [b"\x00\x01other"]
    udp.close()


def test_a_sender_the_memo_does_not_name_goes_to_the_handler(clients: list[socket.socket]) -> None:
    """The engine names RRL's exempt sources; any other source's reply is rate limited."""
    server = _server()
    owner = _Memoed({b"question": b"answer"}, {"192.0.2.1"})
    udp = BatchedUdp(server, owner.handle)
    client = _client(clients)
    client.sendto(b"\x12\x34question", server.getsockname())
    udp.readable()
    assert client.recv(100) == b"re:\x12\x34question"
    owner.hosts = {"127.0.0.1"}
    client.sendto(b"\x12\x35question", server.getsockname())
    udp.readable()
    assert client.recv(100) == b"\x12\x35answer"
    udp.close()


def test_without_a_memo_every_datagram_goes_to_the_handler(clients: list[socket.socket]) -> None:
    """The engine offers none while a zone gate is set (the answer depends on the source)."""
    server = _server()
    owner = _Memoed({b"question": b"answer"}, None)
    owner.offered = False
    udp = BatchedUdp(server, owner.handle)
    client = _client(clients)
    client.sendto(b"\x12\x34question", server.getsockname())
    udp.readable()
    assert client.recv(100) == b"re:\x12\x34question"
    udp.close()


def test_a_memo_value_decided_per_datagram_is_asked_with_its_sender_and_may_stay_silent(
    clients: list[socket.socket],
) -> None:
    server = _server()
    a, b = _client(clients), _client(clients)
    owner = _Memoed({b"pool": _PerSender(a.getsockname()[1])}, None)
    udp = BatchedUdp(server, owner.handle)
    a.sendto(b"\x00\x01pool", server.getsockname())
    b.sendto(b"\x00\x02pool", server.getsockname())
    a.sendto(b"\x00\x03mine", server.getsockname())
    udp.readable()
    assert b.recv(100) == b"\x00\x02" + f"to {b.getsockname()[1]}".encode()
    assert a.recv(100) == b"re:\x00\x03mine"
    a.settimeout(0.2)
    with pytest.raises(TimeoutError):
        a.recv(100)
    udp.close()


def test_a_new_handler_brings_its_own_memo(clients: list[socket.socket]) -> None:
    """A worker that builds a new engine sets its handle as the loop's handler."""
    server = _server()
    udp = BatchedUdp(server, _Memoed({b"question": b"old"}, None).handle)
    udp.handler = _Memoed({b"question": b"new"}, None).handle
    client = _client(clients)
    client.sendto(b"\x12\x34question", server.getsockname())
    udp.readable()
    assert client.recv(100) == b"\x12\x34new"
    udp.close()


def test_replies_made_per_sender_reach_their_own_senders_when_the_whole_batch_is_answered_from_the_memo(
    clients: list[socket.socket],
) -> None:
    """Each reply is sent from where it lies, so one made per query must live until the send."""
    server = _server()
    senders = [_client(clients) for _ in range(6)]
    owner = _Memoed({b"pool": _PerSender(0)}, {"127.0.0.1"})
    udp = BatchedUdp(server, owner.handle)
    for _ in range(2):  # the first round names the senders, the second is answered in one run
        for client in senders:
            client.sendto(b"\x00\x07pool", server.getsockname())
        udp.readable()
        for client in senders:
            assert client.recv(100) == b"\x00\x07" + f"to {client.getsockname()[1]}".encode()
    udp.close()


def test_a_datagram_the_memo_lacks_ends_the_run_and_the_handler_answers_the_rest(
    clients: list[socket.socket],
) -> None:
    server = _server()
    owner = _Memoed({b"question": b"answer"}, None)
    udp = BatchedUdp(server, owner.handle)
    client = _client(clients)
    for wire in (b"\x00\x01question", b"\x00\x02other", b"\x00\x03question", b"\x00\x04more"):
        client.sendto(wire, server.getsockname())
    udp.readable()
    replies = [client.recv(100) for _ in range(4)]
    assert replies == [b"\x00\x01answer", b"re:\x00\x02other", b"\x00\x03answer", b"re:\x00\x04more"]
    assert owner.seen == [b"\x00\x02other", b"\x00\x04more"]
    udp.close()


def test_the_engine_answers_through_the_loop_as_through_handle_and_a_pool_rotates_across_both(
    clients: list[socket.socket],
) -> None:
    """A question cached by the engine is answered in the loop; the rotation is one per pool."""
    origin = "example.test."
    text = f"$ORIGIN {origin}\n$TTL 60\n@ SOA ns hm 1 7200 3600 1209600 300\n@ NS ns\nns A 192.0.2.53\n"
    text += "".join(f"mx{i} A 192.0.2.{i}\n" for i in (1, 2, 3)) + "www A 192.0.2.80\npool MX 10 mx1\n"
    pool = {
        "name": f"pool.{origin}",
        "strategy": "round-robin",
        "member": [{"host": f"mx{i}.{origin}", "preference": 10 * i, "probe": "none"} for i in (1, 2, 3)],
    }
    config = from_mapping({"pool": [pool]})
    plans = {p.name: plan_all(p, {}) for p in config.pool}
    zone = ZoneData(dns.name.from_text(origin), dns.zone.from_text(text, origin=origin, relativize=False))
    engine = Engine(build_table(config, [zone], lambda p: plans[p.name], rng=random.Random(3).random))
    server = _server()
    udp = BatchedUdp(server, engine.handle)
    client = _client(clients)

    def asked(name: str, qid: int) -> bytes:
        client.sendto(dns.message.make_query(name, "MX", id=qid).to_wire(), server.getsockname())
        udp.readable()
        return client.recv(1000)

    def first(reply: bytes) -> str:
        (rrset,) = dns.message.from_wire(reply).answer
        return str(min(rrset, key=lambda mx: mx.preference).exchange)

    www = dns.message.make_query("www.example.test.", "MX", id=7).to_wire()
    assert asked("www.example.test.", 7) == engine.handle(www, client.getsockname(), False)
    assert asked("www.example.test.", 8)[:2] == b"\x00\x08"  # from the memo, its own ID
    firsts = [first(asked(f"pool.{origin}", qid)) for qid in range(3)]
    via_handle = engine.handle(
        dns.message.make_query(f"pool.{origin}", "MX").to_wire(), ("127.0.0.1", 9), False
    )
    assert isinstance(via_handle, bytes)
    assert [*firsts, first(via_handle), first(asked(f"pool.{origin}", 4))] == [*firsts, *firsts[:2]]
    assert len(set(firsts)) == 3
    udp.close()


class _Broken:
    def reply(self, sender: object) -> bytes | None:
        raise RuntimeError("a bug")


def test_a_memo_value_that_fails_leaves_its_datagram_to_the_handler(clients: list[socket.socket]) -> None:
    """As `Engine.handle` answers its own internal errors (SERVFAIL), never the loop raising."""
    server = _server()
    owner = _Memoed({b"pool": _Broken(), b"question": b"answer"}, {"127.0.0.1"})
    udp = BatchedUdp(server, owner.handle)
    client = _client(clients)
    for _ in range(2):  # datagram by datagram while the sender is new, then in one run
        client.sendto(b"\x00\x01pool", server.getsockname())
        client.sendto(b"\x00\x02question", server.getsockname())
        udp.readable()
        assert [client.recv(100) for _ in range(2)] == [b"re:\x00\x01pool", b"\x00\x02answer"]
    udp.close()
