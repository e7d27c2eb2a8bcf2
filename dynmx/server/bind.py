"""A listen address that cannot be bound, named: which address, which protocol, what for.

`bind()`'s OSError says only `Address already in use`; an operator with three listeners
needs to know which one (`listen-failed addr=127.0.0.1:9153 proto=tcp service=http`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class ListenFailed(OSError):
    """Binding `host:port` for `proto` (udp, tcp) of `service` (dns, http, dyndns2) failed."""

    def __init__(self, host: str, port: int, proto: str, service: str, error: OSError) -> None:
        super().__init__(error.errno, error.strerror or str(error))
        self.host, self.port, self.proto, self.service = host, port, proto, service
        self.reason = error.strerror or str(error)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@contextmanager
def naming(host: str, port: int, proto: str, service: str) -> Iterator[None]:
    """Turn an OSError of the bind inside into a ListenFailed naming the address."""
    try:
        yield
    except ListenFailed:
        raise
    except OSError as error:
        raise ListenFailed(host, port, proto, service, error) from error
