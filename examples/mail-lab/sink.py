"""One SMTP sink of the mail lab: accepts every message and records it durably.

Each accepted message becomes one JSON line {"message_id", "time", "sink"} appended to
--log and fsync'ed *before* the 250 reply, so a message the sender saw accepted is on
disk. SIGTERM stops listening, lets a message in DATA finish (bounded), then exits.
With --cert and --key it offers STARTTLS and refuses MAIL before it (the DANE lab).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import time
from email.parser import BytesHeaderParser

from aiosmtpd.smtp import SMTP, Envelope, Session


class Recorder:
    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.in_flight = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.in_flight += 1
        try:
            raw = envelope.original_content or b""
            headers = BytesHeaderParser().parsebytes(raw)
            line = json.dumps(
                {
                    "message_id": str(headers.get("Message-ID", "")).strip(),
                    "time": time.time(),
                    "sink": self.name,
                }
            )
            os.write(self.fd, line.encode() + b"\n")
            os.fsync(self.fd)
            return "250 OK recorded"
        finally:
            self.in_flight -= 1


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=25)
    parser.add_argument("--log", required=True)
    parser.add_argument("--cert", help="PEM certificate: offer STARTTLS and require it")
    parser.add_argument("--key", help="PEM private key of --cert")
    args = parser.parse_args()
    recorder = Recorder(args.name, args.log)
    tls: ssl.SSLContext | None = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            recorder,
            hostname=f"{args.name}.example.test",
            ident="lab-sink",
            tls_context=tls,
            require_starttls=tls is not None,
        ),
        host=args.address,
        port=args.port,
        reuse_address=True,
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"sink {args.name} listening on {args.address}:{args.port}", flush=True)
    await stop.wait()
    server.close()  # no new connections: probes and senders now get "connection refused"
    for _ in range(50):  # at most 5 s for a message in DATA to be recorded and answered
        if recorder.in_flight == 0:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.2)  # let the last 250 reach the sender
    os.close(recorder.fd)
    os._exit(0)  # drop idle sessions (a cached connection) like a dying server


if __name__ == "__main__":
    asyncio.run(main())
