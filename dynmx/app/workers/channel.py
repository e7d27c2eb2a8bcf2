"""Messages between the control process and its answer processes (`--workers`).

A stream socket pair per worker; each message is a 4-byte length and a pickled tuple
whose first item names it. Both ends are this program, started by the control process,
so pickle carries our own frozen dataclasses (config, pool plans, loaded zones) as they are.

    control -> worker   ("init", index, config, plans, behind_zones, unavailable_zones)
                        ("plans", seq, plans)            ("zone", seq, loaded_zone)
                        ("reload", seq, config, plans, behind_files, written_digests)
                        ("reply", request_id, reply)     ("stop",)
    worker -> control   ("ready", index, entries)        ("ack", seq)
                        ("forward", request_id, data, peer, tcp)
                        ("nonce", qname)                 ("stats", hot_stats)
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

HEADER = 4
MAX_MESSAGE = 1 << 30  # a whole zone travels in one message


async def receive(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None when the other end has gone."""
    try:
        header = await reader.readexactly(HEADER)
        size = int.from_bytes(header, "big")
        if size > MAX_MESSAGE:
            return None
        message = pickle.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return message if isinstance(message, tuple) and message else None


def send(writer: asyncio.StreamWriter, *message: object) -> None:
    """Queue one message; the transport writes it without blocking the loop."""
    if writer.is_closing():
        return
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(len(body).to_bytes(HEADER, "big") + body)
