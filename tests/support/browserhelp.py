"""Screenshots of a Playwright page as numpy arrays, for tests that check what
a player sees (pixels), not what the page says about itself.

The PNG is decoded by the browser itself (an <img> drawn to a canvas): no image
library is needed in Python. Coordinates are CSS pixels of the viewport (the
tests run at devicePixelRatio 1)."""

from __future__ import annotations

import base64

import numpy as np

HIGHLIGHT = (0xFF, 0xD2, 0x4A)  # the ring under the selected NPC, or the one you talk to (client_demo/figures.js)

DECODE = """async (b64) => {
  const img = new Image();
  img.src = "data:image/png;base64," + b64;
  await img.decode();
  const c = document.createElement("canvas");
  c.width = img.width;
  c.height = img.height;
  const g = c.getContext("2d");
  g.drawImage(img, 0, 0);
  const data = g.getImageData(0, 0, c.width, c.height).data;
  let s = "";
  for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode(...data.subarray(i, i + 0x8000));
  return {w: c.width, h: c.height, rgba: btoa(s)};
}"""


async def screenshot(page) -> np.ndarray:
    """The viewport as shown, shape (height, width, 3), uint8 RGB."""
    png = await page.screenshot()
    out = await page.evaluate(DECODE, base64.b64encode(png).decode())
    rgba = np.frombuffer(base64.b64decode(out["rgba"]), np.uint8).reshape(out["h"], out["w"], 4)
    return rgba[:, :, :3].copy()


def rgb(css: str) -> tuple[int, int, int]:
    """'#d08040' -> (208, 128, 64)."""
    h = css.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def count_near(
    img: np.ndarray, box: tuple[float, float, float, float], colour: tuple[int, int, int], tol: int = 24
) -> int:
    """Pixels inside box (x0, y0, x1, y1, CSS px, clipped to the image) within tol of colour on every channel."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    h, w = img.shape[:2]
    patch = img[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)].astype(int)
    return int((np.abs(patch - np.array(colour)).max(axis=2) <= tol).sum())
