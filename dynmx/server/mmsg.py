"""UDP answered in batches: `recvmmsg` takes every waiting datagram in one call, `sendmmsg`
sends every reply in one, through `ctypes` over the C library (no compiler needed).

The event loop's datagram endpoint costs a system call and a Python callback per query on
each side; here a readable socket costs two system calls for up to `BATCH` queries. The
arrays the kernel fills and reads are allocated once; the lengths and senders of a whole
batch are read from them through `memoryview` slices (one call each, no `ctypes`
attribute access per datagram). A reply is not copied at all: each is sent from two
pieces, the query's own first two octets (its ID) read from the receive buffer, and the
rest of the reply read from the bytes object that holds it (CPython keeps a bytes object's
octets at a fixed offset from its `id()`; `available()` checks that, and the objects are
held until the send returns). Only the piece's address and length are written per reply.

A handler bound to an object with `udp_memo()` (the engine) offers its replies memo: a dict
from a datagram's bytes after its first two to the reply's bytes after its first two, which
are the datagram's own (a DNS message ID). Datagrams found there are answered in the loop,
with no call into the handler; a memo value that is not bytes is asked per datagram
(`reply(sender)`: the rest of the reply, or None for silence). The memo answers only the
senders it names (RRL's exempt sources), or any where it names none; which senders it
named is learnt per sender address, so a whole batch is checked with one set operation.
The first datagram the memo does not hold ends the run: the replies so far are sent, and
the handler takes over from there (its calls may change the memo).

The socket is non-blocking and the loop only calls when it is readable, so a lone query
is answered at once (the effect of `MSG_WAITFORONE`); a wakeup takes up to `DRAIN` full
batches before it yields to the loop. The libc calls are made without `argtypes`, each
argument passed ready, so no call converts its arguments.

`available()` says whether the calls exist (Linux); elsewhere the listeners keep the event
loop's datagram endpoint (`dynmx.server.udp.UdpServer`), which behaves the same.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any, Protocol

from dynmx.server.udp import Handler

log = logging.getLogger("dynmx.server.udp")

BATCH = 64  # datagrams per system call
DRAIN = 4  # batches taken per wakeup at most, so TCP and timers on the same loop still run
DATAGRAM = 65535  # the largest UDP payload: nothing a client sends is cut
NAME_SIZE = 128  # sizeof(struct sockaddr_storage)
ADDRESS_CACHE = 4096  # sockaddr bytes -> (host, port), so few peers cost no inet_ntop each
MSG_TRUNC = 0x20
# Where a bytes object's octets start, from its id(): CPython's layout (id() is the object's
# address; the octets end with one NUL not counted). `available()` checks it before use.
BYTES_DATA = bytes.__basicsize__ - 1


class _Iovec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(_Iovec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("hdr", _Msghdr), ("len", ctypes.c_uint))


MMSG_SIZE = ctypes.sizeof(_Mmsghdr)
MSG_WORDS = MMSG_SIZE // ctypes.sizeof(ctypes.c_void_p)  # a message's name pointer: its first word
FLAGS_AT = _Msghdr.flags.offset
LEN_AT = _Mmsghdr.len.offset
SOCKADDR_LEN: dict[int, int] = {
    socket.AF_INET: 16,
    socket.AF_INET6: 28,
}  # what the kernel writes as msg_namelen

_libc: Any = None


def _load() -> Any:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        library = ctypes.CDLL(name, use_errno=True) if name else None
        if library is None or not hasattr(library, "recvmmsg") or not hasattr(library, "sendmmsg"):
            _libc = False
        else:
            # No argtypes: each argument is passed ready (small ints, a c_void_p made once per
            # batch, None), so a call converts nothing.
            for call in (library.recvmmsg, library.sendmmsg):
                call.restype = ctypes.c_int
            _libc = library if _bytes_in_place() else False
    return _libc


def _bytes_in_place() -> bool:
    """Whether a bytes object's octets lie at id() + BYTES_DATA, so a reply is sent from
    where it is (CPython; elsewhere the event loop's endpoint serves)."""
    word = ctypes.sizeof(ctypes.c_void_p)
    if (
        ctypes.sizeof(ctypes.c_size_t) != word
        or MMSG_SIZE % word
        or _Mmsghdr.hdr.offset
        or _Msghdr.name.offset
    ):
        return False  # the arrays are written as pointer-sized words: a message's name is its first
    probe = bytes(range(256)) * 2
    try:
        return ctypes.string_at(id(probe) + BYTES_DATA, len(probe)) == probe
    except (OSError, ValueError):  # pragma: no cover - an interpreter where id() is no address
        return False


def available() -> bool:
    """Whether this system has recvmmsg and sendmmsg."""
    return bool(_load())


class Picked(Protocol):
    """A memo value decided per datagram (a pool's answer)."""

    def reply(self, sender: object) -> bytes | None: ...


# The memo (datagram after its first two octets -> reply after them), and the hosts whose
# datagrams it may answer (None: any).
Memo = tuple[dict[bytes, Any], "set[str] | None"]


def _memo_of(handler: Handler) -> Callable[[], Memo | None] | None:
    """The `udp_memo` of the object `handler` is bound to, if it offers one."""
    return getattr(getattr(handler, "__self__", None), "udp_memo", None)


def _address(raw: bytes) -> tuple[str, int]:
    """A sockaddr_in or sockaddr_in6 as the (host, port) the handlers take."""
    family = int.from_bytes(raw[:2], sys.byteorder)
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port


class Batch:
    """The arrays of one socket's batches: received datagrams and their senders' addresses,
    and the replies going back to them.

    Reply `j` goes to the sender of datagram `j` unless moved (`reply_to`). It is sent from
    two pieces, no copy made: the first two octets of datagram `j` (the message ID), read
    from the receive buffer, then the reply's own bytes, wherever they are (`answer`); a
    reply that carries its own first two octets is sent whole (an empty first piece)."""

    def __init__(self, size: int = BATCH, datagram: int = DATAGRAM, family: int = socket.AF_INET) -> None:
        self.size = size
        self.datagram = datagram
        self.family = family
        self.namelen = SOCKADDR_LEN[family]
        self._recv_data = ctypes.create_string_buffer(size * datagram)
        self.recv_data: Any = self._recv_data  # sliced per datagram: a c_char array's slice is bytes
        self._recv_at = ctypes.addressof(self._recv_data)
        self._names = ctypes.create_string_buffer(size * NAME_SIZE)
        self._recv_iov = (_Iovec * size)()
        self._send_iov = (_Iovec * (2 * size))()  # per reply: its ID, its rest
        # The send iovecs as words: reply j's ID piece at [4j] (base) and [4j + 1] (length), the
        # rest at [4j + 2] and [4j + 3].
        self.send_iov_words = memoryview(self._send_iov).cast("B").cast("P")
        self.recv_msgs = (_Mmsghdr * size)()
        self.send_msgs = (_Mmsghdr * size)()
        self._names_at = ctypes.addressof(self._names)
        self.recv_at = ctypes.c_void_p(ctypes.addressof(self.recv_msgs))  # the arrays as passed to libc
        self.send_at = ctypes.c_void_p(ctypes.addressof(self.send_msgs))
        for i in range(size):
            self._recv_iov[i].base = self._recv_at + i * datagram
            self._recv_iov[i].len = datagram
            header = self.recv_msgs[i].hdr
            header.name = self._names_at + i * NAME_SIZE
            header.namelen = NAME_SIZE  # the kernel writes the length used: the family's, each time
            header.iov = ctypes.pointer(self._recv_iov[i])
            header.iovlen = 1
            sending = self.send_msgs[i].hdr
            sending.iov = ctypes.pointer(self._send_iov[2 * i])
            sending.iovlen = 2
            self._reply_to(i, i)
        self.names_view = memoryview(self._names).cast("B")
        self.names_u64 = self.names_view.cast("Q")
        self.recv_u32 = memoryview(self.recv_msgs).cast("B").cast("I")
        # Per count of datagrams: where their lengths and sender keys lie, as array slices.
        self._length_at = [
            slice(LEN_AT // 4, LEN_AT // 4 + n * MMSG_SIZE // 4, MMSG_SIZE // 4) for n in range(size + 1)
        ]
        self._key_at = [slice(0, n * NAME_SIZE // 8, NAME_SIZE // 8) for n in range(size + 1)]
        self.begins = range(0, size * datagram, datagram)  # each datagram's offset
        self.addresses: dict[object, tuple[str, int]] = {}
        # The send messages as words (a message's name pointer is its first), and both send
        # arrays as they stand now, every reply to its own datagram's sender with its ID:
        # copied back whole after a send that changed them (`sent`).
        self.send_msg_words = memoryview(self.send_msgs).cast("B").cast("P")
        self._send_iov_bytes = memoryview(self._send_iov).cast("B")
        self._send_msg_bytes = memoryview(self.send_msgs).cast("B")
        self._iov_as_built = self._send_iov_bytes.tobytes()
        self._msgs_as_built = self._send_msg_bytes.tobytes()
        self.touched = False  # a reply moved or sent whole since the arrays were as built

    def _reply_to(self, index: int, slot: int) -> None:
        header = self.send_msgs[index].hdr
        header.name = self._names_at + slot * NAME_SIZE
        header.namelen = self.namelen
        words = self.send_iov_words
        words[4 * index] = self._recv_at + slot * self.datagram
        words[4 * index + 1] = 2

    def lengths(self, count: int) -> list[int]:
        """The sizes of the first `count` datagrams, in one call; a truncated one as -1 (the
        kernel cut it: it cannot be answered)."""
        sizes: list[int] = self.recv_u32[self._length_at[count]].tolist()
        if self.datagram < DATAGRAM:  # a full-size buffer holds any UDP payload whole
            stride = MMSG_SIZE // 4
            flags = self.recv_u32[FLAGS_AT // 4 : FLAGS_AT // 4 + count * stride : stride].tolist()
            sizes = [-1 if flag & MSG_TRUNC else size for size, flag in zip(sizes, flags, strict=True)]
        return sizes

    def keys(self, count: int) -> list[Any]:
        """A hashable stand-in for each sender's address: for IPv4 the first 8 octets of its
        sockaddr (family, port, address) as one integer, read for all in one call."""
        if self.family == socket.AF_INET:
            return self.names_u64[self._key_at[count]].tolist()
        return [
            self.names_view[slot * NAME_SIZE : slot * NAME_SIZE + self.namelen].tobytes()
            for slot in range(count)
        ]

    def sender(self, slot: int, key: object) -> tuple[str, int]:
        """The (host, port) of datagram `slot`'s sender, remembered under `key`."""
        if len(self.addresses) >= ADDRESS_CACHE:
            self.addresses.clear()
        start = slot * NAME_SIZE
        found = self.addresses[key] = _address(self.names_view[start : start + self.namelen].tobytes())
        return found

    def answer(self, index: int, rest: bytes) -> None:
        """Reply `index` is its datagram's ID and then `rest` (held by the caller until sent)."""
        words = self.send_iov_words
        words[4 * index + 2] = id(rest) + BYTES_DATA
        words[4 * index + 3] = len(rest)

    def reply_to(self, index: int, slot: int) -> None:
        """Send reply `index` to the sender of datagram `slot` (a datagram before it got none),
        with that datagram's ID."""
        self.send_msg_words[index * MSG_WORDS] = self._names_at + slot * NAME_SIZE
        self.send_iov_words[4 * index] = self._recv_at + slot * self.datagram
        self.touched = True

    def sent(self) -> None:
        """After a send: every reply slot is its own datagram's ID and sender again."""
        self._send_iov_bytes[:] = self._iov_as_built
        self._send_msg_bytes[:] = self._msgs_as_built
        self.touched = False


class BatchedUdp:
    """One UDP socket answered in batches on the running loop; `handler` as `UdpServer`'s."""

    def __init__(
        self, sock: socket.socket, handler: Handler, size: int = BATCH, batches: int = DRAIN
    ) -> None:
        self.sock = sock
        self.handler = handler  # and its memo, if it offers one
        self.batch = Batch(size, family=sock.family)
        self.batches = batches
        self.received = 0
        self._libc = _load()
        self._fd = sock.fileno()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hosts: object = None  # the memo's named hosts as last seen (a set is never None)
        self._named: set[object] = set()  # keys of senders those hosts name

    @property
    def handler(self) -> Handler:
        return self._handler

    @handler.setter
    def handler(self, handler: Handler) -> None:
        self._handler = handler
        self._memo = _memo_of(handler)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sock.setblocking(False)
        self._loop = loop
        loop.add_reader(self._fd, self.readable)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None
        self.sock.close()

    def readable(self) -> None:
        """Take what is waiting (up to `batches` full batches), answer each batch and send
        its replies in one call."""
        batch = self.batch
        for _ in range(self.batches):
            count = self._libc.recvmmsg(self._fd, batch.recv_at, batch.size, socket.MSG_DONTWAIT, None)
            if count <= 0:
                if count < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    log.debug("event=udp-error error=%s", errno.errorcode.get(ctypes.get_errno(), "?"))
                return
            self.received += count
            self._answer(batch, count)
            if count < batch.size:  # the socket is drained
                return

    def _answer(self, batch: Batch, count: int) -> None:
        """Answer datagrams 0, 1, ... from the memo, each with the reply of its own index, until
        one it does not hold; send those, and hand the rest to `_each` (its handler calls may
        change the memo). The memo holds its bytes until the send; what a value asked per
        sender made is held here."""
        keys = batch.keys(count)
        lengths = batch.lengths(count)
        found = self._memo() if self._memo is not None else None
        done = 0
        if found is not None:
            memo, hosts = found
            if hosts is not self._hosts:  # another rate limiter: its sources are learnt again
                self._hosts = hosts
                self._named.clear()
            if hosts is None or self._named.issuperset(keys):
                get, data, words, addresses = memo.get, batch.recv_data, batch.send_iov_words, batch.addresses
                ident, size, offset = id, len, BYTES_DATA  # as locals: read once, not per datagram
                held: list[bytes] = []
                silent = False
                at = 2  # the reply's rest iovec, as words: [4 * index + 2]
                for key, begin, length in zip(keys, batch.begins, lengths, strict=False):
                    rest = get(data[begin + 2 : begin + length])
                    if rest.__class__ is not bytes:
                        if rest is None:
                            break
                        try:
                            rest = rest.reply(addresses.get(key) or batch.sender(at >> 2, key))
                        except Exception:  # a bug of the memo's: the handler answers (SERVFAIL)
                            log.exception("event=internal-error kind=udp-memo")
                            break
                        if rest is None:  # silence: the handler starts one further
                            silent = True
                            break
                        held.append(rest)
                    words[at] = ident(rest) + offset  # sent from where it is, alive until then
                    words[at + 1] = size(rest)
                    at += 4
                else:
                    self._send(batch, 0, count)
                    return
                done = at >> 2
                if done:
                    self._send(batch, 0, done)
                done += silent
        self._each(batch, done, count, keys, lengths, found)

    def _each(
        self,
        batch: Batch,
        start: int,
        count: int,
        keys: list[object],
        lengths: list[int],
        found: Memo | None,
    ) -> None:
        """Datagrams `start` on, one by one: from the memo for the senders it names, else
        through the handler. The memo is the one read for the batch: a handler call may add
        to it or empty it, never replace it (a new table is swapped in between batches)."""
        handler, data, datagram, addresses = self._handler, batch.recv_data, batch.datagram, batch.addresses
        words = batch.send_iov_words
        memo, hosts = found if found is not None else (None, None)
        named = self._named
        held: list[bytes] = []  # the replies sent from where they are, alive until sent
        replies = start
        for slot in range(start, count):
            length = lengths[slot]
            if length < 0:
                continue
            key = keys[slot]
            sender = addresses.get(key) or batch.sender(slot, key)
            begin = slot * datagram
            rest = None
            if memo is not None and (hosts is None or sender[0] in hosts):
                if len(named) >= ADDRESS_CACHE:
                    named.clear()
                named.add(key)
                rest = memo.get(data[begin + 2 : begin + length])
            if rest is not None and rest.__class__ is not bytes:
                try:
                    rest = rest.reply(sender)
                except Exception:  # a bug of the memo's: the handler answers (SERVFAIL)
                    log.exception("event=internal-error kind=udp-memo")
                    rest = None
                else:
                    if rest is None:
                        continue
            if rest is not None:
                held.append(rest)
                if replies != slot:
                    batch.reply_to(replies, slot)
                batch.answer(replies, rest)
                replies += 1
                continue
            reply = handler(data[begin : begin + length], sender, False)
            if reply is None:
                continue
            if isinstance(reply, bytes):
                if reply.__class__ is not bytes:
                    reply = bytes(reply)
                held.append(reply)
                if replies != slot:
                    batch.reply_to(replies, slot)
                words[4 * replies + 1] = 0  # no ID piece: the reply is sent whole, as it is
                words[4 * replies + 2] = id(reply) + BYTES_DATA
                words[4 * replies + 3] = len(reply)
                batch.touched = True
                replies += 1
            else:
                asyncio.ensure_future(reply).add_done_callback(self._later(sender))
        if replies > start:
            self._send(batch, start, replies - start)

    def _send(self, batch: Batch, first: int, replies: int) -> None:
        """Send `replies` replies from reply `first` on, in one call."""
        at = batch.send_at if not first else ctypes.c_void_p(batch.send_at.value + first * MMSG_SIZE)  # type: ignore[operator]
        sent = self._libc.sendmmsg(self._fd, at, replies, socket.MSG_DONTWAIT)
        if sent < 0:  # a reply the kernel will not take now is dropped, as UDP drops
            log.debug("event=udp-error error=%s", errno.errorcode.get(ctypes.get_errno(), "?"))
        if batch.touched:
            batch.sent()

    def _later(self, sender: tuple[str, int]) -> Callable[[asyncio.Future[Any]], None]:
        """A reply decided elsewhere (a worker forwards UPDATE/NOTIFY): sent on its own."""

        def send(done: asyncio.Future[Any]) -> None:
            reply = None if done.cancelled() or done.exception() else done.result()
            if isinstance(reply, bytes) and self._loop is not None:
                try:
                    self.sock.sendto(reply, sender)
                except OSError as error:
                    log.debug("event=udp-error error=%s", error)

        return send
