"""UDP answered in batches: `recvmmsg` takes every waiting datagram in one call, `sendmmsg`
sends every reply in one, through `ctypes` over the C library (no compiler needed).

The event loop's datagram endpoint costs a system call and a Python callback per query on
each side; here a readable socket costs two system calls for up to `BATCH` queries. The
arrays the kernel fills and reads are allocated once; a datagram's length and address are
read from them with `struct`, not with `ctypes` attribute access, and a reply is copied
once, into the send buffer. The socket is non-blocking and the loop only calls when it is
readable, so a lone query is answered at once (the effect of `MSG_WAITFORONE`).

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
import struct
from collections.abc import Callable
from typing import Any

from dynmx.server.udp import Handler

log = logging.getLogger("dynmx.server.udp")

BATCH = 64  # datagrams per system call
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
IOV_SIZE = ctypes.sizeof(_Iovec)
NAME_AT = _Msghdr.name.offset
NAMELEN_AT = _Msghdr.namelen.offset
FLAGS_AT = _Msghdr.flags.offset
LEN_AT = _Mmsghdr.len.offset
IOV_LEN_AT = _Iovec.len.offset
U32 = struct.Struct("=I")
POINTER_FORMAT = struct.Struct("P")
SIZE_FORMAT = struct.Struct("N")  # size_t (native only)
INT = struct.Struct("=i")

_libc: Any = None


def _load() -> Any:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        library = ctypes.CDLL(name, use_errno=True) if name else None
        if library is None or not hasattr(library, "recvmmsg") or not hasattr(library, "sendmmsg"):
            _libc = False
        else:
            for call in (library.recvmmsg, library.sendmmsg):
                call.restype = ctypes.c_int
            library.recvmmsg.argtypes = (
                ctypes.c_int,
                ctypes.POINTER(_Mmsghdr),
                ctypes.c_uint,
                ctypes.c_int,
                ctypes.c_void_p,
            )
            library.sendmmsg.argtypes = (ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int)
            _libc = library
    return _libc


def available() -> bool:
    """Whether this system has recvmmsg and sendmmsg."""
    return bool(_load())


def _address(raw: bytes) -> tuple[str, int]:
    """A sockaddr_in or sockaddr_in6 as the (host, port) the handlers take."""
    family = int.from_bytes(raw[:2], "little")
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port


class Batch:
    """The arrays of one socket's batches: received datagrams and their senders' addresses,
    and the replies going back to them."""

    def __init__(self, size: int = BATCH, datagram: int = DATAGRAM) -> None:
        self.size = size
        self.datagram = datagram
        self._recv_data = ctypes.create_string_buffer(size * datagram)
        self._send_data = ctypes.create_string_buffer(size * datagram)
        self._names = ctypes.create_string_buffer(size * NAME_SIZE)
        self._recv_iov = (_Iovec * size)()
        self._send_iov = (_Iovec * size)()
        self.recv_msgs = (_Mmsghdr * size)()
        self.send_msgs = (_Mmsghdr * size)()
        names = ctypes.addressof(self._names)
        self._names_at = names
        for i in range(size):
            self._recv_iov[i].base = ctypes.addressof(self._recv_data) + i * datagram
            self._recv_iov[i].len = datagram
            self._send_iov[i].base = ctypes.addressof(self._send_data) + i * datagram
            header = self.recv_msgs[i].hdr
            header.name = names + i * NAME_SIZE
            header.namelen = NAME_SIZE
            header.iov = ctypes.pointer(self._recv_iov[i])
            header.iovlen = 1
            sending = self.send_msgs[i].hdr
            sending.iov = ctypes.pointer(self._send_iov[i])
            sending.iovlen = 1
        self.recv_view = memoryview(self._recv_data).cast("B")
        self.send_view = memoryview(self._send_data).cast("B")
        self.names_view = memoryview(self._names).cast("B")
        self.recv_msgs_view = memoryview(self.recv_msgs).cast("B")
        self.send_msgs_view = memoryview(self.send_msgs).cast("B")
        self.send_iov_view = memoryview(self._send_iov).cast("B")
        self._addresses: dict[bytes, tuple[str, int]] = {}
        self._namelens = [0] * size  # of each received datagram's sender address
        self.pending = 0  # replies put, not sent yet

    def received(self, count: int) -> list[tuple[int, bytes, tuple[str, int]]]:
        """The first `count` datagrams as (slot, data, sender); a truncated one is left out
        (its sender gets no reply, as a datagram cut by the kernel cannot be answered)."""
        found = []
        msgs, names, data = self.recv_msgs_view, self.names_view, self.recv_view
        cache = self._addresses
        for slot in range(count):
            at = slot * MMSG_SIZE
            length = U32.unpack_from(msgs, at + LEN_AT)[0]
            flags = INT.unpack_from(msgs, at + FLAGS_AT)[0]
            namelen = U32.unpack_from(msgs, at + NAMELEN_AT)[0]
            U32.pack_into(msgs, at + NAMELEN_AT, NAME_SIZE)  # the kernel wrote the length used
            if flags & MSG_TRUNC:
                continue
            self._namelens[slot] = namelen
            start = slot * NAME_SIZE
            raw = names[start : start + namelen].tobytes()
            sender = cache.get(raw)
            if sender is None:
                if len(cache) >= ADDRESS_CACHE:
                    cache.clear()
                sender = cache[raw] = _address(raw)
            begin = slot * self.datagram
            found.append((slot, data[begin : begin + length].tobytes(), sender))
        return found

    def put(self, slot: int, reply: bytes) -> bool:
        """Queue `reply` to the sender of received datagram `slot`; False when it does not fit."""
        index = self.pending
        if len(reply) > self.datagram:
            return False
        begin = index * self.datagram
        self.send_view[begin : begin + len(reply)] = reply
        SIZE_FORMAT.pack_into(self.send_iov_view, index * IOV_SIZE + IOV_LEN_AT, len(reply))
        at = index * MMSG_SIZE
        POINTER_FORMAT.pack_into(self.send_msgs_view, at + NAME_AT, self._names_at + slot * NAME_SIZE)
        U32.pack_into(self.send_msgs_view, at + NAMELEN_AT, self._namelens[slot])
        self.pending = index + 1
        return True


class BatchedUdp:
    """One UDP socket answered in batches on the running loop; `handler` as `UdpServer`'s."""

    def __init__(self, sock: socket.socket, handler: Handler, size: int = BATCH) -> None:
        self.sock = sock
        self.handler = handler
        self.batch = Batch(size)
        self.received = 0
        self._libc = _load()
        self._fd = sock.fileno()
        self._loop: asyncio.AbstractEventLoop | None = None

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
        """Take what is waiting (one batch), answer it, send the replies in one call."""
        batch = self.batch
        count = self._libc.recvmmsg(self._fd, batch.recv_msgs, batch.size, socket.MSG_DONTWAIT, None)
        if count <= 0:
            if count < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                log.debug("event=udp-error error=%s", errno.errorcode.get(ctypes.get_errno(), "?"))
            return
        self.received += count
        handler = self.handler
        for slot, data, sender in batch.received(count):
            reply = handler(data, sender, False)
            if reply is None:
                continue
            if isinstance(reply, bytes):
                batch.put(slot, reply)
            else:
                asyncio.ensure_future(reply).add_done_callback(self._later(sender))
        if batch.pending:
            self._flush()

    def _flush(self) -> None:
        batch = self.batch
        sent = self._libc.sendmmsg(self._fd, batch.send_msgs, batch.pending, socket.MSG_DONTWAIT)
        if sent < 0:
            log.debug("event=udp-error error=%s", errno.errorcode.get(ctypes.get_errno(), "?"))
        batch.pending = 0  # a reply the kernel would not take now is dropped, as UDP drops

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
