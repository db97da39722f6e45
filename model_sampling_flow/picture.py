"""A small raster canvas for the demo picture: a 5x7 bitmap font, tiles, bars and a PNG writer.

Standard library and torch only (the core's import rule), so the demo's picture needs nothing
beyond what every host already ships. A canvas is an (H, W, 3) uint8 tensor; colours are RGB
triples; coordinates are pixels from the top-left corner.
"""
import math
import struct
import zlib

import torch

FONT = {
    "A": "0E11111F111111", "B": "1E11111E11111E", "C": "0E11101010110E", "D": "1C12111111121C",
    "E": "1F10101E10101F", "F": "1F10101E101010", "G": "0E11101711110F", "H": "1111111F111111",
    "I": "0E04040404040E", "J": "0702020202120C", "K": "11121418141211", "L": "1010101010101F",
    "M": "111B1515111111", "N": "11111915131111", "O": "0E11111111110E", "P": "1E11111E101010",
    "Q": "0E11111115120D", "R": "1E11111E141211", "S": "0F10100E01011E", "T": "1F040404040404",
    "U": "1111111111110E", "V": "11111111110A04", "W": "1111111515150A", "X": "11110A040A1111",
    "Y": "11110A04040404", "Z": "1F01020408101F", "0": "0E11131519110E", "1": "040C040404040E",
    "2": "0E11010204081F", "3": "1F02040201110E", "4": "02060A121F0202", "5": "1F101E0101110E",
    "6": "0608101E11110E", "7": "1F010204080808", "8": "0E11110E11110E", "9": "0E11110F01020C",
    " ": "00000000000000", ".": "00000000000C0C", ",": "000000000C0408", ":": "000C0C000C0C00",
    "-": "0000001F000000", "(": "02040808080402", ")": "08040202020408", "=": "00001F001F0000",
    "/": "00010204081000", "%": "18190204081303", "+": "0004041F040400", "_": "0000000000001F",
    "<": "02040810080402", ">": "08040201020408", "!": "04040404040004", "?": "0E110102040004",
    "*": "0004150E150400", "'": "04040800000000",
}


def _glyph_rows(char):
    code = FONT.get(char.upper(), FONT["?"])
    return [int(code[i:i + 2], 16) for i in range(0, 14, 2)]


def draw_text(canvas, text, x, y, colour, scale=2):
    """Draw `text` into canvas (H, W, 3 uint8 tensor) with its top-left corner at (x, y)."""
    height, width = canvas.shape[:2]
    for index, char in enumerate(text):
        left = x + index * 6 * scale
        for row, bits in enumerate(_glyph_rows(char)):
            for column in range(5):
                if bits & (1 << (4 - column)):
                    top, col = y + row * scale, left + column * scale
                    if 0 <= top and top + scale <= height and 0 <= col and col + scale <= width:
                        canvas[top:top + scale, col:col + scale] = torch.tensor(colour, dtype=torch.uint8)
    return x + len(text) * 6 * scale


def image_tile(image, scale):
    """(3, h, w) image in [-1, 1] -> (h*scale, w*scale, 3) uint8."""
    pixels = ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)
    return pixels.repeat_interleave(scale, 0).repeat_interleave(scale, 1)


def new_canvas(height, width, colour):
    """An (height, width, 3) uint8 canvas filled with `colour`."""
    canvas = torch.empty((height, width, 3), dtype=torch.uint8)
    canvas[:] = torch.tensor(colour, dtype=torch.uint8)
    return canvas


def fill(canvas, top, left, height, width, colour):
    """Fill a rectangle, clipped to the canvas."""
    bottom, right = min(top + height, canvas.shape[0]), min(left + width, canvas.shape[1])
    top, left = max(top, 0), max(left, 0)
    if bottom > top and right > left:
        canvas[top:bottom, left:right] = torch.tensor(colour, dtype=torch.uint8)


def log_ratio_bars(canvas, ratios, top, left, height, bar_width, colour, reference_colour, gap=4, clip=3.0):
    """Bars of log2(ratio) around a middle line (ratio 1): up for too much, down for too little.

    A bar reaching the top or bottom edge is clipped at 2**clip (or 2**-clip) times the truth.
    """
    middle = top + height // 2
    half = height // 2
    for index, ratio in enumerate(ratios):
        x = left + index * (bar_width + gap)
        value = max(min(math.log2(ratio) if ratio > 0 else -clip, clip), -clip)
        tall = int(round(abs(value) / clip * half))
        fill(canvas, middle - tall if value > 0 else middle, x, max(tall, 1), bar_width, colour)
    fill(canvas, middle, left - 2, 1, len(ratios) * (bar_width + gap) + 2, reference_colour)


def write_png(path, canvas):
    """Write an (H, W, 3) uint8 tensor as an 8-bit RGB PNG using only zlib and struct."""
    if canvas.dtype != torch.uint8 or canvas.ndim != 3 or canvas.shape[2] != 3:
        raise ValueError(f"canvas must be an (H, W, 3) uint8 tensor, got {tuple(canvas.shape)} {canvas.dtype}")
    height, width = canvas.shape[:2]
    rows = bytes(canvas.contiguous().flatten().tolist())
    stride = width * 3
    raw = b"".join(b"\x00" + rows[r * stride:(r + 1) * stride] for r in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    with open(path, "wb") as handle:
        handle.write(png)
    return path
