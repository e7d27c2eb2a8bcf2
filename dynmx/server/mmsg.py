"""UDP answered in batches: `recvmmsg` takes every waiting datagram in one call, `sendmmsg`
sends every reply in one, through `ctypes` over the C library (no compiler needed).

The event loop's datagram endpoint costs a system call and a Python callback per query on
each side; here a readable socket costs two system calls for up to `BATCH` queries. The
arrays the kernel fills and reads are allocated once; the lengths and senders of a whole
batch are read from them through `memoryview` slices (one call each, no `ctypes`
attribute access per datagram), a reply is copied once, into the send buffer, and only
its length is written per reply.

A handler bound to an object with `udp_memo()` (the engine) offers its replies memo: a dict
from a datagram's bytes after its first two to the reply's bytes after its first two, which
are the datagram's own (a DNS message ID). A datagram found there is answered in the loop,
with no call: the two octets copied from the received slot to the send slot, the rest
from the memo. A memo value that is not bytes is asked per datagram (`reply(sender)`: the
rest of the reply, or None for silence). Only senders the memo names (or all, where it
names none) are answered from it; everything else goes to the handler.

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
            _libc = library
    return _libc


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
    and the replies going back to them. Reply `j` goes to the sender of datagram `j` unless
    moved (`reply_to`): with every query answered, nothing but the lengths is written."""

    def __init__(self, size: int = BATCH, datagram: int = DATAGRAM, family: int = socket.AF_INET) -> None:
        self.size = size
        self.datagram = datagram
        self.stride = datagram + (datagram & 1)  # slots start at even offsets: IDs copy as one u16
        self.family = family
        self.namelen = SOCKADDR_LEN[family]
        self._recv_data = ctypes.create_string_buffer(size * self.stride)
        self._send_data = ctypes.create_string_buffer(size * self.stride)
        self.recv_data: Any = self._recv_data  # sliced per datagram: a c_char array's slice is bytes
        self._names = ctypes.create_string_buffer(size * NAME_SIZE)
        self._recv_iov = (_Iovec * size)()
        self._send_iov = (_Iovec * size)()
        self.recv_msgs = (_Mmsghdr * size)()
        self.send_msgs = (_Mmsghdr * size)()
        self._names_at = ctypes.addressof(self._names)
        self.recv_at = ctypes.c_void_p(ctypes.addressof(self.recv_msgs))  # the arrays as passed to libc
        self.send_at = ctypes.c_void_p(ctypes.addressof(self.send_msgs))
        for i in range(size):
            self._recv_iov[i].base = ctypes.addressof(self._recv_data) + i * self.stride
            self._recv_iov[i].len = datagram
            self._send_iov[i].base = ctypes.addressof(self._send_data) + i * self.stride
            header = self.recv_msgs[i].hdr
            header.name = self._names_at + i * NAME_SIZE
            header.namelen = NAME_SIZE  # the kernel writes the length used: the family's, each time
            header.iov = ctypes.pointer(self._recv_iov[i])
            header.iovlen = 1
            sending = self.send_msgs[i].hdr
            sending.iov = ctypes.pointer(self._send_iov[i])
            sending.iovlen = 1
            self._reply_to(i, i)
        self.recv_view = memoryview(self._recv_data).cast("B")
        self.send_view = memoryview(self._send_data).cast("B")
        self.recv_u16 = self.recv_view.cast("H")  # a slot's first two octets: [slot * stride // 2]
        self.send_u16 = self.send_view.cast("H")
        self.names_view = memoryview(self._names).cast("B")
        self.names_u64 = self.names_view.cast("Q")
        self.recv_u32 = memoryview(self.recv_msgs).cast("B").cast("I")
        self.send_iov_sizes = memoryview(self._send_iov).cast("B").cast("L")  # size_t on Linux
        self.addresses: dict[object, tuple[str, int]] = {}
        self._moved: list[int] = []  # replies sent elsewhere than to their own datagram's sender

    def _reply_to(self, index: int, slot: int) -> None:
        header = self.send_msgs[index].hdr
        header.name = self._names_at + slot * NAME_SIZE
        header.namelen = self.namelen

    def lengths(self, count: int) -> list[int]:
        """The sizes of the first `count` datagrams, in one call; a truncated one as -1 (the
        kernel cut it: it cannot be answered)."""
        stride = MMSG_SIZE // 4
        sizes = self.recv_u32[LEN_AT // 4 : LEN_AT // 4 + count * stride : stride].tolist()
        if self.datagram < DATAGRAM:  # a full-size buffer holds any UDP payload whole
            flags = self.recv_u32[FLAGS_AT // 4 : FLAGS_AT // 4 + count * stride : stride].tolist()
            sizes = [-1 if flag & MSG_TRUNC else size for size, flag in zip(sizes, flags, strict=True)]
        return sizes

    def keys(self, count: int) -> list[object]:
        """A hashable stand-in for each sender's address: for IPv4 the first 8 octets of its
        sockaddr (family, port, address) as one integer, read for all in one call."""
        if self.family == socket.AF_INET:
            stride = NAME_SIZE // 8
            return list(self.names_u64[0 : count * stride : stride].tolist())
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

    def reply_to(self, index: int, slot: int) -> None:
        """Send reply `index` to the sender of datagram `slot` (a datagram before it got none)."""
        self._reply_to(index, slot)
        self._moved.append(index)

    def sent(self) -> None:
        """After a send: every reply slot points at its own datagram's sender again."""
        for index in self._moved:
            self._reply_to(index, index)
        self._moved.clear()


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
        handler, stride, data, out = self._handler, batch.stride, batch.recv_data, batch.send_view
        addresses, sizes, lengths = batch.addresses, batch.send_iov_sizes, batch.lengths(count)
        ids, out_ids, half = batch.recv_u16, batch.send_u16, stride >> 1
        found = self._memo() if self._memo is not None else None
        memo: dict[bytes, Any] = found[0] if found is not None else {}
        hosts: set[str] | None = found[1] if found is not None else set()  # without one: nobody
        replies = 0
        slot = -1
        for key in batch.keys(count):
            slot += 1
            length = lengths[slot]
            if length < 0:
                continue
            sender = addresses.get(key) or batch.sender(slot, key)
            begin = slot * stride
            if hosts is None or sender[0] in hosts:
                tail = memo.get(data[begin + 2 : begin + length])
                if tail is not None:
                    if tail.__class__ is not bytes:
                        tail = tail.reply(sender)
                        if tail is None:
                            continue
                    start = replies * stride
                    out_ids[replies * half] = ids[slot * half]
                    out[start + 2 : start + 2 + len(tail)] = tail
                    sizes[replies * 2 + 1] = len(tail) + 2  # the iovec's iov_len
                    if replies != slot:
                        batch.reply_to(replies, slot)
                    replies += 1
                    continue
            reply = handler(data[begin : begin + length], sender, False)
            if reply is None:
                continue
            if reply.__class__ is bytes:
                start = replies * stride
                out[start : start + len(reply)] = reply
                sizes[replies * 2 + 1] = len(reply)
                if replies != slot:
                    batch.reply_to(replies, slot)
                replies += 1
            else:
                asyncio.ensure_future(reply).add_done_callback(self._later(sender))  # type: ignore[arg-type]
        if replies:
            sent = self._libc.sendmmsg(self._fd, batch.send_at, replies, socket.MSG_DONTWAIT)
            if sent < 0:  # a reply the kernel will not take now is dropped, as UDP drops
                log.debug("event=udp-error error=%s", errno.errorcode.get(ctypes.get_errno(), "?"))
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
