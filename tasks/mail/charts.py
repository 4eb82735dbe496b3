"""Draw the e-mail charts as small PNG images, with no plotting library (bars, lines, 5x7 text).

E-mail clients show neither SVG nor JavaScript, so the e-mails carry PNGs referenced by
Content-ID. The charts take finished values from the report context (``tasks.render``) so the
e-mail and the report always show the same numbers. Images are drawn at twice their CSS size so
they stay sharp on high-density screens.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

# 5x7 glyphs, one hex byte per row (top to bottom), low five bits used; HD44780 shapes.
_FONT = {
    " ": "00000000000000",
    "0": "0E11131519110E",
    "1": "040C040404040E",
    "2": "0E11010204081F",
    "3": "1F02040201110E",
    "4": "02060A121F0202",
    "5": "1F101E0101110E",
    "6": "0608101E11110E",
    "7": "1F010204080808",
    "8": "0E11110E11110E",
    "9": "0E11110F01020C",
    "A": "0E1111111F1111",
    "B": "1E11111E11111E",
    "C": "0E11101010110E",
    "D": "1C12111111121C",
    "E": "1F10101E10101F",
    "F": "1F10101E101010",
    "G": "0E11101711110F",
    "H": "1111111F111111",
    "I": "0E04040404040E",
    "J": "0702020202120C",
    "K": "11121418141211",
    "L": "1010101010101F",
    "M": "111B1515111111",
    "N": "11111915131111",
    "O": "0E11111111110E",
    "P": "1E11111E101010",
    "Q": "0E11111115120D",
    "R": "1E11111E141211",
    "S": "0F10100E01011E",
    "T": "1F040404040404",
    "U": "1111111111110E",
    "V": "11111111110A04",
    "W": "1111111515150A",
    "X": "11110A040A1111",
    "Y": "1111110A040404",
    "Z": "1F01020408101F",
    "-": "0000001F000000",
    "+": "0004041F040400",
    ".": "00000000000C0C",
    ",": "000000000C0408",
    "%": "18190204081303",
    ":": "000C0C000C0C00",
    "/": "00010204081000",
    "(": "02040808080402",
    ")": "08040202020408",
    "<": "02040810080402",
    ">": "08040201020408",
    "=": "00001F001F0000",
    "?": "0E110102040004",
    "≥": "0804020408001F",
    "≤": "0204080402001F",
}
_ALIASES = {"–": "-", "—": "-", "−": "-", "Δ": "D"}
WHITE = "#ffffff"
INK = "#444444"
GRID = "#dddddd"
LINE = "#0072B2"  # Okabe-Ito blue


def _rgb(colour: str) -> bytes:
    h = colour.lstrip("#")
    return bytes(int(h[i : i + 2], 16) for i in (0, 2, 4))


@dataclass
class Canvas:
    """A palette raster addressed in CSS pixels and stored at ``scale`` device pixels each."""

    width: int
    height: int
    scale: int = 2

    def __post_init__(self) -> None:
        self.w, self.h = self.width * self.scale, self.height * self.scale
        self.palette = [_rgb(WHITE)]
        self.px = bytearray(self.w * self.h)  # one palette index per pixel; 0 is white

    def _index(self, colour: str) -> bytes:
        rgb = _rgb(colour)
        if rgb not in self.palette:
            if len(self.palette) == 256:
                raise ValueError("a chart may use at most 256 colours")
            self.palette.append(rgb)
        return bytes([self.palette.index(rgb)])

    def _fill(self, x0: int, y0: int, x1: int, y1: int, ink: bytes) -> None:
        x0, x1 = max(0, x0), min(self.w, x1)
        y0, y1 = max(0, y0), min(self.h, y1)
        if x0 >= x1:
            return
        run = ink * (x1 - x0)
        for y in range(y0, y1):
            start = y * self.w + x0
            self.px[start : start + len(run)] = run

    def rect(self, x: float, y: float, w: float, h: float, colour: str) -> None:
        """Fill a rectangle given in CSS pixels."""
        s = self.scale
        box = round(x * s), round(y * s), round((x + w) * s), round((y + h) * s)
        self._fill(*box, self._index(colour))

    def line(
        self, x0: float, y0: float, x1: float, y1: float, colour: str, width: float = 1
    ) -> None:
        """Draw a straight line by stamping squares along it."""
        s, ink = self.scale, self._index(colour)
        half = max(1, round(width * s)) / 2
        steps = max(1, round(max(abs(x1 - x0), abs(y1 - y0)) * s * 2))
        for i in range(steps + 1):
            x = (x0 + (x1 - x0) * i / steps) * s
            y = (y0 + (y1 - y0) * i / steps) * s
            self._fill(round(x - half), round(y - half), round(x + half), round(y + half), ink)

    def dot(self, x: float, y: float, r: float, colour: str) -> None:
        """Draw a filled square marker centred on a point."""
        self.rect(x - r, y - r, 2 * r, 2 * r, colour)

    def text(self, x: float, y: float, text: str, colour: str = INK, anchor: str = "start") -> None:
        """Write upper-case text with its baseline at ``y`` (anchor: start, middle or end)."""
        g = self.glyph_px
        adv = 6 * g
        left = round(x * self.scale)
        if anchor != "start":
            left -= len(text) * adv // (2 if anchor == "middle" else 1)
        top, ink = round(y * self.scale) - 7 * g, self._index(colour)
        for i, ch in enumerate(text.upper()):
            rows = bytes.fromhex(_FONT.get(_ALIASES.get(ch, ch), _FONT["?"]))
            for r, bits in enumerate(rows):
                for c in range(5):
                    if bits & (0x10 >> c):
                        px, py = left + i * adv + c * g, top + r * g
                        self._fill(px, py, px + g, py + g, ink)

    @property
    def glyph_px(self) -> int:
        """The size in pixels of one dot of the bitmap font at this scale."""
        return max(1, round(1.5 * self.scale))

    def png(self) -> bytes:
        """Encode the canvas as an 8-bit palette PNG."""
        w = self.w
        raw = b"".join(b"\x00" + self.px[y * w : (y + 1) * w] for y in range(self.h))
        ihdr = struct.pack(">IIBBBBB", self.w, self.h, 8, 3, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", ihdr)
            + _chunk(b"PLTE", b"".join(self.palette))
            + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b"")
        )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def histogram_png(histogram: dict[str, Any]) -> bytes:
    """Draw the score histogram of the report context: one bar per 10 points, count on top."""
    bars = histogram["bars"]
    width, height = 560, 180
    c = Canvas(width, height)
    top = max((b["count"] for b in bars), default=0) or 1
    bw, base = width / len(bars), height - 34
    for i, b in enumerate(bars):
        h = (base - 20) * b["count"] / top
        c.rect(i * bw + 3, base - h, bw - 6, h, b["colour"])
        c.text(i * bw + bw / 2, base - h - 4, str(b["count"]), anchor="middle")
        c.text(i * bw + bw / 2, base + 14, b["label"], anchor="middle")
    c.rect(0, base, width, 1, INK)
    for band in histogram.get("bands", []):
        c.text(band["x"], height - 4, band["label"], colour=band["ink"], anchor="middle")
    return c.png()


def trend_png(trend: dict[str, Any]) -> bytes:
    """Draw the weekly mean score of the report context as a line with a labelled y axis."""
    width, height = trend["width"], trend["height"]
    c = Canvas(width, height)
    for t in trend["ticks"]:
        c.rect(trend["left"], t["y"], width - trend["left"] - 10, 1, GRID)
        c.text(trend["left"] - 6, t["y"] + 5, t["label"], anchor="end")
    for ref in trend["references"]:
        c.rect(trend["left"], ref["y"], width - trend["left"] - 10, 1, ref["colour"])
    dots = trend["dots"]
    for a, b in zip(dots, dots[1:], strict=False):
        c.line(a["x"], a["y"], b["x"], b["y"], LINE, width=2)
    for d in dots:
        c.dot(d["x"], d["y"], 3, LINE)
    last = dots[-1]
    c.text(last["x"] - 4, last["y"] - 8, last["value"], colour=LINE, anchor="end")
    for x in trend["xlabels"]:
        c.text(x["x"], height - 4, x["label"], anchor=x["anchor"])
    return c.png()


def segment_bar_png(segments: list[dict[str, Any]], width: int = 560, height: int = 28) -> bytes:
    """Draw one 100% bar split by segment share, with each share written inside when it fits."""
    c = Canvas(width, height)
    total = sum(s["count"] for s in segments) or 1
    x = 0.0
    for s in segments:
        w = width * s["count"] / total
        c.rect(x, 0, w, height, s["colour"])
        label = f"{round(100 * s['count'] / total)}%"
        if w > len(label) * 9 + 8:
            c.text(x + w / 2, height / 2 + 5, label, colour=WHITE, anchor="middle")
        x += w
    return c.png()


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """Decode a PNG written by ``Canvas.png`` (palette, filter 0) into width, height and RGB."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, palette, width, height = 8, b"", b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            if (depth, ctype) != (8, 3):
                raise ValueError("only 8-bit palette PNGs are supported")
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride = zlib.decompress(idat), width + 1
    rows = [raw[y * stride : (y + 1) * stride] for y in range(height)]
    if any(r[0] != 0 for r in rows):
        raise ValueError("only filter type 0 is supported")
    colours = [palette[i : i + 3] for i in range(0, len(palette), 3)]
    return width, height, b"".join(colours[i] for r in rows for i in r[1:])
