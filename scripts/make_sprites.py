"""Generate client_demo/sprites.png, the browser client's character sheet, deterministically.

Pixel art drawn from rectangles, no image library (pure zlib + struct), so the
sheet is made and checked in this repository. Layout (RGBA, FRAME_W x FRAME_H
pixels a frame):

    columns   FRAMES walking frames: 0 standing, 1 one leg forward, 2 passing, 3 the other leg forward
              (a stride's body is a pixel lower)
    rows      for each variant in VARIANTS, each facing in FACINGS
    halves    the top half is the figure without its clothes; the bottom half, at the same place, is
              the clothes as a grey mask that the client multiplies by the entity's colour

Variants: a player (bare-headed, brown hair), an NPC that talks (a
broad-brimmed hat with a gold band) and one that does not, like a generic
wanderer (a grey hood), so
the three read apart at a glance whatever their colour. Right-facing frames are
the left-facing ones mirrored. Every figure gets a 1-pixel dark outline.

client_demo/figures.js reads the same layout (its FRAME_W, FRAME_H, FRAMES,
VARIANTS, FACINGS must match). tests/client_demo/test_sprites.py checks that the
committed sheet is what this script draws.

Usage: python scripts/make_sprites.py [--out client_demo/sprites.png] [--check]
"""

from __future__ import annotations

import argparse
import struct
import sys
import zlib
from pathlib import Path

FRAME_W, FRAME_H = 16, 24  # pixels
FRAMES = 4
VARIANTS = ("player", "npc", "wanderer")
FACINGS = ("down", "left", "right", "up")
OUT = Path(__file__).resolve().parent.parent / "client_demo" / "sprites.png"

Color = tuple[int, int, int, int]
CLEAR: Color = (0, 0, 0, 0)
OUTLINE: Color = (30, 26, 34, 255)
SKIN: Color = (240, 200, 160, 255)
SKIN_DARK: Color = (214, 168, 128, 255)
EYE: Color = (26, 26, 26, 255)
HAIR: Color = (96, 60, 34, 255)
HAT: Color = (107, 66, 38, 255)
BAND: Color = (214, 170, 64, 255)
HOOD: Color = (122, 127, 136, 255)
HOOD_DARK: Color = (93, 98, 106, 255)
TROUSERS: Color = (52, 64, 90, 255)
TROUSERS_FAR: Color = (38, 46, 66, 255)
SHOES: Color = (42, 34, 40, 255)
CLOTH: Color = (255, 255, 255, 255)  # mask: the entity's colour exactly
CLOTH_SHADE: Color = (196, 196, 196, 255)  # mask: the colour darkened (sides, sleeves)


class Frame:
    """One frame's two layers: `base` (everything but the clothes) and `mask` (the clothes, grey)."""

    def __init__(self) -> None:
        self.base = [[CLEAR] * FRAME_W for _ in range(FRAME_H)]
        self.mask = [[CLEAR] * FRAME_W for _ in range(FRAME_H)]

    def rect(self, layer: str, x0: int, y0: int, x1: int, y1: int, c: Color) -> None:
        """Fill columns x0..x1 and rows y0..y1 (inclusive) of a layer; the other layer is cleared there."""
        mine, other = (self.base, self.mask) if layer == "base" else (self.mask, self.base)
        for y in range(max(0, y0), min(FRAME_H - 1, y1) + 1):
            for x in range(max(0, x0), min(FRAME_W - 1, x1) + 1):
                mine[y][x] = c
                other[y][x] = CLEAR

    def px(self, layer: str, x: int, y: int, c: Color) -> None:
        self.rect(layer, x, y, x, y, c)

    def outline(self) -> None:
        """A dark pixel on every clear pixel next to the figure (4-neighbours), in the base layer."""
        filled = [[self.base[y][x][3] > 0 or self.mask[y][x][3] > 0 for x in range(FRAME_W)] for y in range(FRAME_H)]
        for y in range(FRAME_H):
            for x in range(FRAME_W):
                if filled[y][x]:
                    continue
                if any(
                    0 <= y + dy < FRAME_H and 0 <= x + dx < FRAME_W and filled[y + dy][x + dx]
                    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))
                ):
                    self.base[y][x] = OUTLINE

    def mirrored(self) -> "Frame":
        f = Frame()
        f.base = [row[::-1] for row in self.base]
        f.mask = [row[::-1] for row in self.mask]
        return f


def legs_front(f: Frame, step: int, hip: int) -> None:
    """Facing down or up: two legs; a stride lifts one foot a pixel."""
    for i, (x0, x1) in enumerate(((5, 6), (9, 10))):
        lift = 1 if (step == 1 and i == 0) or (step == 3 and i == 1) else 0
        f.rect("base", x0, hip, x1, 21 - lift, TROUSERS)
        f.rect("base", x0, 22 - lift, x1, 22 - lift, SHOES)


def legs_side(f: Frame, step: int, hip: int) -> None:
    """Facing left: the near leg and the far one; a stride puts one forward (left) and the other back."""
    if step in (0, 2):
        f.rect("base", 6, hip, 9, 21, TROUSERS)
        f.rect("base", 5, 22, 9, 22, SHOES)
        return
    near_fwd = step == 1
    # the far leg first, so that the near one is drawn over it
    for near in (False, True):
        fwd = near == near_fwd
        colour = TROUSERS if near else TROUSERS_FAR
        for y in range(hip, 22):
            k = (y - hip + 1) // 2  # the legs part towards the feet
            x = 6 - k if fwd else 8 + k
            f.rect("base", x, y, x + 1, y, colour)
        end = 6 - (22 - hip) // 2 if fwd else 8 + (22 - hip) // 2
        f.rect("base", end - 1, 22, end + 1, 22, SHOES)


def torso(f: Frame, facing: str, step: int, dy: int) -> None:
    side = facing in ("left", "right")
    x0, x1 = (5, 10) if side else (4, 11)
    f.rect("mask", x0, 9 + dy, x1, 15 + dy, CLOTH)
    f.rect("mask", x0, 9 + dy, x0, 15 + dy, CLOTH_SHADE)
    f.rect("mask", x1, 9 + dy, x1, 15 + dy, CLOTH_SHADE)
    f.rect("base", x0, 16 + dy, x1, 16 + dy, TROUSERS)  # the belt line
    swing = {0: 0, 1: 1, 2: 0, 3: -1}[step]
    if side:  # one arm seen, swinging forward (left) and back
        ax = 7 - swing
        f.rect("mask", ax, 10 + dy, ax + 1, 12 + dy, CLOTH_SHADE)
        f.rect("base", ax, 13 + dy, ax + 1, 13 + dy, SKIN_DARK)
    else:  # both arms at the sides; a stride raises one hand a pixel
        for i, ax in enumerate((3, 12)):
            lift = max(0, swing if i == 0 else -swing)
            f.rect("mask", ax, 10 + dy, ax, 12 + dy - lift, CLOTH_SHADE)
            f.px("base", ax, 13 + dy - lift, SKIN)


def head(f: Frame, variant: str, facing: str, dy: int) -> None:
    side = facing in ("left", "right")
    hx0, hx1 = (5, 10) if side else (4, 11)
    f.rect("base", hx0, 2 + dy, hx1, 8 + dy, SKIN)
    if facing == "up":
        f.rect("base", hx0, 2 + dy, hx1, 7 + dy, HAIR if variant == "player" else SKIN_DARK)
    elif facing == "down":
        f.px("base", 6, 5 + dy, EYE)
        f.px("base", 9, 5 + dy, EYE)
    else:  # left: the face on the left, the back of the head on the right
        f.px("base", 6, 5 + dy, EYE)
        f.px("base", 4, 6 + dy, SKIN)  # nose
    if variant == "player":
        f.rect("base", hx0, 1 + dy, hx1, 3 + dy, HAIR)
        if facing == "down":
            f.rect("base", hx0, 4 + dy, hx0, 5 + dy, HAIR)
            f.rect("base", hx1, 4 + dy, hx1, 5 + dy, HAIR)
        elif side:
            f.rect("base", 8, 4 + dy, hx1, 6 + dy, HAIR)
    elif variant == "npc":
        f.rect("base", 2 if not side else 3, 2 + dy, 13 if not side else 12, 2 + dy, HAT)  # the brim
        f.rect("base", hx0, 0 + dy, hx1, 1 + dy, HAT)  # the crown
        f.rect("base", hx0, 1 + dy, hx1, 1 + dy, BAND)
    else:  # wanderer: a hood over the head and shoulders, the face in an opening
        f.rect("base", hx0 - 1, 0 + dy, hx1 + 1, 8 + dy, HOOD)
        f.rect("base", hx0 - 1, 8 + dy, hx1 + 1, 9 + dy, HOOD_DARK)
        if facing == "down":
            f.rect("base", 5, 3 + dy, 10, 7 + dy, SKIN)
            f.px("base", 6, 5 + dy, EYE)
            f.px("base", 9, 5 + dy, EYE)
        elif side:
            f.rect("base", 4, 3 + dy, 7, 7 + dy, SKIN)
            f.px("base", 5, 5 + dy, EYE)


def frame(variant: str, facing: str, step: int) -> Frame:
    if facing == "right":
        return frame(variant, "left", step).mirrored()
    f = Frame()
    dy = 1 if step in (1, 3) else 0  # a stride: the body a pixel lower than when standing or passing
    hip = 17 + dy
    if facing in ("down", "up"):
        legs_front(f, step, hip)
    else:
        legs_side(f, step, hip)
    torso(f, facing, step, dy)
    head(f, variant, facing, dy)
    f.outline()
    return f


def sheet() -> list[list[Color]]:
    """The whole sheet, rows of RGBA pixels (see the layout at the top)."""
    rows_per_half = len(VARIANTS) * len(FACINGS) * FRAME_H
    out = [[CLEAR] * (FRAMES * FRAME_W) for _ in range(2 * rows_per_half)]
    for vi, variant in enumerate(VARIANTS):
        for fi, facing in enumerate(FACINGS):
            for step in range(FRAMES):
                f = frame(variant, facing, step)
                top = (vi * len(FACINGS) + fi) * FRAME_H
                for y in range(FRAME_H):
                    out[top + y][step * FRAME_W : (step + 1) * FRAME_W] = f.base[y]
                    out[rows_per_half + top + y][step * FRAME_W : (step + 1) * FRAME_W] = f.mask[y]
    return out


def png(pixels: list[list[Color]]) -> bytes:
    """An 8-bit RGBA PNG of the pixels (filter 0 on every row)."""
    h, w = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(v for p in row for v in p) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def read_png(data: bytes) -> list[list[Color]]:
    """The pixels of an 8-bit RGBA, non-interlaced PNG such as png() writes (any of the five row filters)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, w = 8, b"", 0
    h = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if (depth, ctype, interlace) != (8, 6, 0):
                raise ValueError(f"expected 8-bit RGBA without interlace, got depth {depth}, type {ctype}")
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride, out, prev = 4 * w, [], bytearray(4 * w)
    for y in range(h):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 4] if i >= 4 else 0
            b = prev[i]
            c = prev[i - 4] if i >= 4 else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append([tuple(line[i : i + 4]) for i in range(0, stride, 4)])
        prev = line
    return out  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="only say whether --out holds what this script draws")
    args = ap.parse_args(argv)
    pixels = sheet()
    if args.check:
        same = args.out.is_file() and read_png(args.out.read_bytes()) == pixels
        print(f"{args.out}: {'up to date' if same else 'differs from what scripts/make_sprites.py draws'}")
        return 0 if same else 1
    args.out.write_bytes(png(pixels))
    print(f"wrote {args.out} ({len(pixels[0])} x {len(pixels)} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
