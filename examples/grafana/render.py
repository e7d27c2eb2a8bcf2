"""Render examples/grafana/dynmx.json as an SVG picture from a real run of dynmx (no Grafana).

Grafana cannot be installed here, so this draws what its panels would show: it starts a real
`dynmx serve` on loopback with an MX pool of two SMTP-probed members (aiosmtpd sinks), sends it
queries for a short while, drains a member, stops its SMTP server, stops both (the pool fails open),
starts them again, sends unsigned UPDATEs it refuses, reloads it, and scrapes /metrics every second
meanwhile. Each panel's PromQL (the few forms the dashboard uses: a selector, rate() or increase()
of one, under sum or sum by) is evaluated over those scrapes, and the panels are drawn where their
gridPos puts them. Plain SVG text, no dependency beyond dynmx's own.

    .venv/bin/python examples/grafana/render.py [--seconds 36] [--out docs/dashboard.svg]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent.parent
DASHBOARD = ROOT / "examples" / "grafana" / "dynmx.json"
ZONE = """$ORIGIN example.test.
@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@ 3600 IN NS ns1
@ 300 IN MX 10 mx1
@ 300 IN MX 20 mx2
ns1 IN A 127.0.0.1
mx1 IN A 127.0.0.1
mx2 IN A 127.0.0.1
www IN A 192.0.2.80
"""

Labels = tuple[tuple[str, str], ...]
Scrape = tuple[float, dict[tuple[str, Labels], float]]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def query(name: str, qtype: int, ident: int) -> bytes:
    wire = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + wire + struct.pack("!HH", qtype, 1)


def unsigned_update(ident: int) -> bytes:
    """An UPDATE of example.test. with no TSIG: refused (no allow_update), and counted."""
    zone = b"\x07example\x04test\x00"
    return struct.pack("!HHHHHH", ident, 0x2800, 1, 0, 0, 0) + zone + struct.pack("!HH", 6, 1)


@dataclass
class Run:
    """The server, its sinks and the load; every process started here is stopped by `stop`."""

    folder: Path
    dns_port: int
    http_port: int
    smtp_ports: tuple[int, int]
    server: subprocess.Popen[bytes] | None = None
    sinks: tuple[subprocess.Popen[bytes] | None, subprocess.Popen[bytes] | None] = (None, None)
    loading: bool = True
    updates: bool = False

    def config(self) -> Path:
        zones = self.folder / "zones"
        zones.mkdir(exist_ok=True)
        (zones / "example.test.zone").write_text(ZONE)
        members = "".join(
            f'  [[pool.member]]\n  host = "mx{n}.example.test."\n  preference = {10 * n}\n'
            f'  probe = "smtp"\n  port = {port}\n  interval = 1\n  timeout = 1\n  fall = 2\n'
            for n, port in ((1, self.smtp_ports[0]), (2, self.smtp_ports[1]))
        )
        path = self.folder / "dynmx.toml"
        path.write_text(
            f'[server]\nlisten = ["127.0.0.1:{self.dns_port}"]\nzones_dir = "zones"\nstate_dir = "state"\n'
            f'[http]\nlisten = "127.0.0.1:{self.http_port}"\n[log]\nlevel = "warning"\n'
            f'[[pool]]\nname = "example.test."\nstrategy = "round-robin"\nttl = 30\n{members}'
        )
        return path

    def cli(self, *args: str) -> None:
        dynmx = [sys.executable, "-m", "dynmx"]
        subprocess.run(
            [*dynmx, *args, "-c", str(self.folder / "dynmx.toml")], check=True, capture_output=True
        )

    def sink(self, index: int, up: bool) -> None:
        old = self.sinks[index]
        if old is not None:
            old.terminate()
            old.wait(5)
        new = None
        if up:
            listen = f"127.0.0.1:{self.smtp_ports[index]}"
            new = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", listen])
        self.sinks = (new, self.sinks[1]) if index == 0 else (self.sinks[0], new)

    def start(self) -> None:
        config = self.config()
        self.sink(0, True)
        self.sink(1, True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.server = subprocess.Popen(
            [sys.executable, "-m", "dynmx", "serve", "--config", str(config)], cwd=self.folder, env=env
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.scrape()
                break
            except OSError:
                time.sleep(0.1)
        threading.Thread(target=self.load, daemon=True).start()

    def load(self) -> None:
        """About 400 UDP queries a second (pool MX, addresses, missing names), a TCP query a
        second, and unsigned UPDATEs while `updates` is set."""
        rng = random.Random(7)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.settimeout(0.5)
        sent = 0
        while self.loading:
            sent += 1
            pick = rng.random()
            if pick < 0.6:
                message = query("example.test", 15, sent & 0xFFFF)
            elif pick < 0.9:
                message = query("www.example.test", 1, sent & 0xFFFF)
            else:
                message = query(f"n{rng.randrange(10**6)}.example.test", 1, sent & 0xFFFF)
            if self.updates and sent % 20 == 0:
                message = unsigned_update(sent & 0xFFFF)
            try:
                udp.sendto(message, ("127.0.0.1", self.dns_port))
                udp.recvfrom(4096)
            except OSError:
                pass
            if sent % 400 == 0:
                self.tcp_query(sent)
            time.sleep(0.0025)
        udp.close()

    def tcp_query(self, ident: int) -> None:
        message = query("example.test", 15, ident & 0xFFFF)
        try:
            with socket.create_connection(("127.0.0.1", self.dns_port), timeout=1) as tcp:
                tcp.sendall(struct.pack("!H", len(message)) + message)
                tcp.recv(4096)
        except OSError:
            pass

    def scrape(self) -> Scrape:
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        samples: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = tuple(sorted({**sample.labels, "instance": "dynmx"}.items()))
                samples[(sample.name, labels)] = float(sample.value)
        return time.monotonic(), samples

    def stop(self) -> None:
        self.loading = False
        for process in (self.server, *self.sinks):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def record(seconds: int) -> list[Scrape]:
    """Scrapes of a real run, one a second, with the events above on a fixed timetable."""
    with tempfile.TemporaryDirectory(prefix="dynmx-render-") as folder:
        run = Run(Path(folder), free_port(), free_port(), (free_port(), free_port()))
        share = seconds / 36
        events: list[tuple[float, Callable[[], None]]] = [
            (6 * share, lambda: run.cli("member", "down", "example.test.", "mx2.example.test.")),
            (10 * share, lambda: setattr(run, "updates", True)),
            (11 * share, lambda: run.cli("member", "up", "example.test.", "mx2.example.test.")),
            (13 * share, lambda: run.cli("reload")),
            (15 * share, lambda: setattr(run, "updates", False)),
            (16 * share, lambda: run.sink(1, False)),
            (22 * share, lambda: run.sink(0, False)),
            (27 * share, lambda: run.sink(0, True)),
            (30 * share, lambda: run.sink(1, True)),
        ]
        scrapes: list[Scrape] = []
        try:
            run.start()
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                now = time.monotonic() - started
                while events and events[0][0] <= now:
                    events.pop(0)[1]()
                scrapes.append(run.scrape())
                time.sleep(max(0.0, 1 - (time.monotonic() - started - now)))
        finally:
            run.stop()
        return scrapes


# -- the PromQL the dashboard uses -------------------------------------------------------------

EXPR = re.compile(
    r"^(?:sum(?: by \((?P<by>[^)]*)\))? ?\()?"
    r"(?:(?P<func>rate|increase)\()?"
    r"(?P<name>[a-z_0-9]+)(?:\{(?P<matchers>[^}]*)\})?(?:\[[^\]]+\])?"
    r"\)?\)?$"
)
MATCHER = re.compile(r'(\w+)(=~|=)"([^"]*)"')


def evaluate(expr: str, scrapes: list[Scrape]) -> dict[Labels, list[float | None]]:
    """Each series' value at each scrape (None before a rate has two points)."""
    parsed = EXPR.match(expr)
    if parsed is None:
        raise ValueError(f"render.py cannot evaluate {expr!r}")
    name, func, by = parsed["name"], parsed["func"], parsed["by"]
    matchers = [
        (key, op, value)
        for key, op, value in MATCHER.findall(parsed["matchers"] or "")
        if not value.startswith("$")
    ]

    def selected(labels: Labels) -> bool:
        found = dict(labels)
        return all(
            re.fullmatch(value, found.get(key, "")) if op == "=~" else found.get(key, "") == value
            for key, op, value in matchers
        )

    series: dict[Labels, list[float | None]] = {}
    for index, (when, samples) in enumerate(scrapes):
        for (sample, labels), value in samples.items():
            if sample != name or not selected(labels):
                continue
            point: float | None = value
            if func == "rate":
                before_when, before = scrapes[index - 1] if index else (when, {})
                previous = before.get((sample, labels))
                point = (
                    None if previous is None else max(0.0, value - previous) / max(when - before_when, 1e-9)
                )
            elif func == "increase":
                first = next((s[(sample, labels)] for _, s in scrapes if (sample, labels) in s), value)
                point = value - first
            series.setdefault(labels, [None] * len(scrapes))[index] = point
    if parsed.group(0).startswith("sum"):
        keys = [key.strip() for key in (by or "").split(",") if key.strip()]
        summed: dict[Labels, list[float | None]] = {}
        for labels, points in series.items():
            group = tuple((key, dict(labels).get(key, "")) for key in keys)
            total = summed.setdefault(group, [None] * len(scrapes))
            for index, point in enumerate(points):
                if point is not None:
                    total[index] = (total[index] or 0.0) + point
        return summed
    return series


def legend(template: str, labels: Labels) -> str:
    values = dict(labels)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values.get(m.group(1), ""), template).strip() or "value"


# -- drawing ----------------------------------------------------------------------------------

COLUMN, UNIT, PAD = 56, 34, 6
COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0"]


def number(value: float, unit: str) -> str:
    suffix = {"reqps": " req/s", "ops": "/s", "s": " s"}.get(unit, "")
    if unit == "s" and abs(value) < 1:
        return f"{value * 1000:.1f} ms"
    for size, mark in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{mark}{suffix}"
    return f"{value:.3g}{suffix}" if value % 1 else f"{value:.0f}{suffix}"


def text(x: float, y: float, body: str, size: int = 11, fill: str = "#ccccdc", **extra: str) -> str:
    attrs = "".join(f' {key.replace("_", "-")}="{value}"' for key, value in extra.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}"{attrs}>{html.escape(body)}</text>'


def rect(x: float, y: float, w: float, h: float, fill: str, **extra: str) -> str:
    attrs = "".join(f' {key.replace("_", "-")}="{value}"' for key, value in extra.items())
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}"{attrs}/>'


def draw_panel(panel: dict[str, object], scrapes: list[Scrape]) -> list[str]:
    grid = panel["gridPos"]
    assert isinstance(grid, dict)
    x, y, w, h = grid["x"] * COLUMN, grid["y"] * UNIT, grid["w"] * COLUMN, grid["h"] * UNIT
    title = str(panel["title"])
    if panel["type"] == "row":
        return [text(x + PAD, y + 22, title, 14, "#d8d9da", font_weight="bold")]
    out = [
        rect(x + 3, y + 3, w - 6, h - 6, "#181b1f", rx="3", stroke="#2c3235"),
        text(x + 12, y + 22, title, 12, "#d8d9da", font_weight="bold"),
    ]
    unit = str(panel["fieldConfig"]["defaults"].get("unit", "short"))  # type: ignore[index]
    lines: list[tuple[str, list[float | None]]] = []
    for target in panel["targets"]:  # type: ignore[attr-defined]
        for labels, points in sorted(evaluate(target["expr"], scrapes).items()):
            lines.append((legend(target["legendFormat"], labels), points))
    inner_x, inner_y, inner_w = x + 12, y + 34, w - 24
    if panel["type"] == "stat":
        cell = inner_w / max(1, len(lines))
        for index, (name, points) in enumerate(lines):
            last = next((p for p in reversed(points) if p is not None), 0.0)
            color = (
                "#f2495c"
                if last and ("fail" in name or "promoted" in name or "unavail" in name)
                else "#73bf69"
            )
            cx = inner_x + index * cell
            out.append(rect(cx + 2, inner_y, cell - 4, h - 52, color, rx="2", fill_opacity="0.85"))
            out.append(
                text(
                    cx + cell / 2,
                    inner_y + (h - 52) / 2 + 6,
                    number(last, unit),
                    22,
                    "#ffffff",
                    text_anchor="middle",
                    font_weight="bold",
                )
            )
            out.append(text(cx + cell / 2, inner_y + h - 60, name[:34], 9, "#ffffff", text_anchor="middle"))
        return out
    legend_rows = (len(lines) + 1) // 2
    plot_h = h - 52 - 13 * legend_rows
    count = max(1, len(scrapes) - 1)
    if panel["type"] == "state-timeline":
        band = plot_h / max(1, len(lines))
        for index, (name, points) in enumerate(lines):
            top = inner_y + index * band
            for step in range(len(points) - 1):
                value = points[step]
                color = "#2c3235" if value is None else ("#73bf69" if value >= 1 else "#f2495c")
                left = inner_x + 110 + (inner_w - 110) * step / count
                width = (inner_w - 110) / count + 0.5
                out.append(rect(left, top + 2, width, band - 4, color))
            out.append(text(inner_x, top + band / 2 + 4, name[:20], 10))
        return out
    values = [p for _, points in lines for p in points if p is not None]
    top_value = max(values, default=1.0) or 1.0
    out.append(text(inner_x, inner_y + 8, number(top_value, unit), 9, "#8e8e8e"))
    out.append(text(inner_x, inner_y + plot_h, "0", 9, "#8e8e8e"))
    left, width = inner_x + 42, inner_w - 42
    baseline = inner_y + plot_h
    out.append(
        f'<line x1="{left}" y1="{baseline:.1f}" x2="{left + width}" y2="{baseline:.1f}" stroke="#2c3235"/>'
    )
    for index, (name, points) in enumerate(lines):
        color = COLORS[index % len(COLORS)]
        path = " ".join(
            f"{left + width * step / count:.1f},{inner_y + plot_h - plot_h * point / top_value:.1f}"
            for step, point in enumerate(points)
            if point is not None
        )
        if path:
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        lx = inner_x + (index % 2) * inner_w / 2
        ly = inner_y + plot_h + 16 + (index // 2) * 13
        out.append(f'<rect x="{lx:.1f}" y="{ly - 7:.1f}" width="10" height="3" fill="{color}"/>')
        out.append(text(lx + 14, ly - 2, name[:44], 9))
    return out


def svg(dashboard: dict[str, object], scrapes: list[Scrape], seconds: int) -> str:
    panels = dashboard["panels"]
    assert isinstance(panels, list)
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    width, height = 24 * COLUMN, bottom * UNIT + 40
    body = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Inter, Helvetica, Arial, sans-serif">',
        f'<rect width="{width}" height="{height}" fill="#111217"/>',
    ]
    for panel in panels:
        body.extend(draw_panel(panel, scrapes))
    note = (
        f"Rendered by examples/grafana/render.py from {len(scrapes)} scrapes of a real dynmx run "
        f"({seconds} s on loopback), not by Grafana."
    )
    body.append(text(8, height - 14, note, 11, "#8e8e8e"))
    body.append("</svg>")
    return "\n".join(body) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=36)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.svg")
    args = parser.parse_args()
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            evaluate(target["expr"], [])  # every query is one this script can evaluate, before the run
    scrapes = record(args.seconds)
    args.out.write_text(svg(dashboard, scrapes, args.seconds))
    print(f"{args.out}: {len(scrapes)} scrapes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
