"""A stacked bar chart of messages per sink over time, written as a PNG with the stdlib only.

Used by lab.py: one bar per time bucket, one colour per sink, a vertical mark at each phase
change (a kill or a restart), a legend on top. Text is drawn with a tiny 5x7 bitmap font.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

Colour = tuple[int, int, int]
COLOURS: dict[str, Colour] = {
    "mx1": (31, 119, 180),
    "mx2": (255, 127, 14),
    "mx3": (44, 160, 44),
    "relay": (214, 39, 40),
}
WHITE, INK, GRID, MARK = (255, 255, 255), (40, 40, 40), (225, 225, 225), (90, 90, 90)
# 5x7 glyphs: 7 rows of 5 bits, two hex digits a row, leftmost pixel = 0x10
FONT_TABLE = """
    A 0E11111F111111  B 1E11111E11111E  C 0E11101010110E  D 1E11111111111E  E 1F10101E10101F  G 0E11101711110F
    H 1111111F111111  I 0E04040404040E  K 11121418141211  L 1010101010101F  M 111B1515111111  N 11111915131111
    O 0E11111111110E  P 1E11111E101010  R 1E11111E141211  S 0F10100E01011E  T 1F040404040404  U 1111111111110E
    W 1111111515150A  X 11110A040A1111  Y 11110A04040404  0 0E11131519110E  1 040C040404040E  2 0E11010204081F
    3 1F02040201110E  4 02060A121F0202  5 1F101E0101110E  6 0608101E11110E  7 1F010204080808  8 0E11110E11110E
    9 0E11110F01020C  + 0004041F040400  / 00010204081000  - 0000001F000000  . 00000000000C0C  F 1F10101E101010
"""
FONT = dict(zip(FONT_TABLE.split()[::2], FONT_TABLE.split()[1::2], strict=True))


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(WHITE) * width * height)

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: Colour) -> None:
        """Fill [x0, x1) x [y0, y1), clipped to the canvas."""
        x0, x1 = max(0, x0), min(self.width, x1)
        if x1 <= x0:
            return
        row = bytes(colour) * (x1 - x0)
        for y in range(max(0, y0), min(self.height, y1)):
            start = (y * self.width + x0) * 3
            self.pixels[start : start + len(row)] = row

    def text(self, x: int, y: int, text: str, colour: Colour = INK, scale: int = 1) -> int:
        """Draw `text` (upper-cased) with its top-left at (x, y); return the x after it."""
        for char in text.upper():
            glyph = FONT.get(char)
            if glyph:
                for row in range(7):
                    bits = int(glyph[2 * row : 2 * row + 2], 16)
                    for col in range(5):
                        if bits & (0x10 >> col):
                            px, py = x + col * scale, y + row * scale
                            self.rect(px, py, px + scale, py + scale, colour)
            x += 6 * scale
        return x

    def png(self) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        stride = self.width * 3
        raw = b"".join(b"\x00" + self.pixels[y * stride : (y + 1) * stride] for y in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def nice_step(top: float, ticks: int = 5) -> int:
    """A round tick step (1, 2, 5 x 10^k) so that about `ticks` steps cover `top`."""
    rough = max(top / ticks, 1.0)
    power = 10 ** math.floor(math.log10(rough))
    return int(next(m * power for m in (1, 2, 5, 10) if m * power >= rough))


def render(
    deliveries: Iterable[tuple[float, str]],
    events: Sequence[tuple[float, str]],
    bucket: float = 2.0,
    sinks: Sequence[str] = tuple(COLOURS),
    width: int = 800,
    height: int = 300,
) -> bytes:
    """PNG bytes: `deliveries` are (seconds since the start, sink), `events` (seconds, label)."""
    counts: dict[int, Counter[str]] = {}
    for stamp, sink in deliveries:
        counts.setdefault(max(0, int(stamp // bucket)), Counter())[sink] += 1
    buckets = max([*counts, *(int(t // bucket) for t, _ in events)], default=0) + 1
    tallest = max((sum(c.values()) for c in counts.values()), default=1)
    step = nice_step(tallest)
    top = step * math.ceil(tallest / step)
    canvas = Canvas(width, height)
    left, right, plot_top, bottom = 44, width - 12, 68, height - 30
    plot_w, plot_h = right - left, bottom - plot_top
    slot = plot_w / buckets

    def x_of(seconds: float) -> int:
        return left + round(seconds / bucket * slot)

    def y_of(value: float) -> int:
        return bottom - round(value / top * plot_h)

    canvas.text(left, 8, f"messages per sink per {bucket:g} s", INK, scale=2)
    x = left
    for sink in sinks:  # legend
        canvas.rect(x, 32, x + 10, 42, COLOURS.get(sink, MARK))
        x = canvas.text(x + 14, 34, sink) + 16
    for value in range(0, top + 1, step):  # horizontal grid and y labels
        y = y_of(value)
        canvas.rect(left, y, right, y + 1, GRID)
        label = str(value)
        canvas.text(left - 6 - 6 * len(label), y - 3, label)
    gap = 1 if slot >= 4 else 0
    for index, row in counts.items():  # stacked bars, first sink at the bottom
        x0, x1 = left + round(index * slot) + gap, left + round((index + 1) * slot) - gap
        level = 0
        for sink in sinks:
            if row[sink]:
                canvas.rect(x0, y_of(level + row[sink]), x1, y_of(level), COLOURS.get(sink, MARK))
                level += row[sink]
    canvas.rect(left, bottom, right, bottom + 1, INK)  # x axis
    canvas.rect(left, plot_top, left + 1, bottom + 1, INK)  # y axis
    seconds = buckets * bucket
    tick = nice_step(seconds, 10)
    for second in range(0, int(seconds) + 1, tick):  # x ticks and labels
        x = x_of(second)
        canvas.rect(x, bottom, x + 1, bottom + 4, INK)
        label = f"{second}"
        canvas.text(x - 3 * len(label), bottom + 7, label)
    canvas.text(right - 6 * 18, bottom + 18, "seconds from start")
    for number, (stamp, label) in enumerate(events):  # phase marks, dashed, labels staggered
        x = x_of(stamp)
        for y in range(plot_top - 4, bottom, 6):
            canvas.rect(x, y, x + 2, y + 4, MARK)
        canvas.text(x + 4, plot_top - 20 + (number % 2) * 9, label, MARK)
    return canvas.png()


def write_chart(
    path: Path,
    deliveries: Iterable[tuple[float, str]],
    events: Sequence[tuple[float, str]],
    bucket: float = 2.0,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render(deliveries, events, bucket))
    return path
