"""scripts/make_sprites.py: the committed sprite sheet (client_demo/sprites.png) is exactly what the script
draws, its layout is the one client_demo/figures.js reads, and its figures tell apart what a player must see:
the three variants, the four facings, the walking frames."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

from support.paths import ROOT

SCRIPT = ROOT / "scripts" / "make_sprites.py"
spec = importlib.util.spec_from_file_location("make_sprites", SCRIPT)
assert spec is not None and spec.loader is not None
sprites = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sprites)


def test_the_committed_sheet_is_what_the_script_draws(tmp_path):
    assert sprites.read_png(sprites.OUT.read_bytes()) == sprites.sheet()
    # the script itself, as a designer runs it: --check says so; a fresh sheet decodes to the same pixels
    r = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr
    out = tmp_path / "sheet.png"
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, capture_output=True, timeout=120)
    assert sprites.read_png(out.read_bytes()) == sprites.read_png(sprites.OUT.read_bytes())
    # and --check fails on a sheet that is not: one pixel changed
    pixels = sprites.sheet()
    pixels[5][5] = (1, 2, 3, 255)
    out.write_bytes(sprites.png(pixels))
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 1 and "differs" in r.stdout


def test_figures_js_reads_the_layout_the_script_writes():
    js = (ROOT / "client_demo" / "figures.js").read_text()

    def const(name: str) -> str:
        m = re.search(rf"^const {name} = (.+?);", js, re.M)
        assert m, f"figures.js has no const {name}"
        return m.group(1)

    assert int(const("FRAME_W")) == sprites.FRAME_W and int(const("FRAME_H")) == sprites.FRAME_H
    assert int(const("FRAMES")) == sprites.FRAMES
    assert re.findall(r'"(\w+)"', const("VARIANTS")) == list(sprites.VARIANTS)
    assert re.findall(r'"(\w+)"', const("FACINGS")) == list(sprites.FACINGS)
    pixels = sprites.sheet()
    assert len(pixels) == 2 * len(sprites.VARIANTS) * len(sprites.FACINGS) * sprites.FRAME_H
    assert len(pixels[0]) == sprites.FRAMES * sprites.FRAME_W


def layers(variant: str, facing: str, step: int):
    f = sprites.frame(variant, facing, step)
    return f.base, f.mask


def test_variants_facings_and_frames_differ():
    for facing in sprites.FACINGS:
        for step in range(sprites.FRAMES):
            looks = {v: layers(v, facing, step) for v in sprites.VARIANTS}
            assert len({repr(x) for x in looks.values()}) == len(sprites.VARIANTS), (facing, step)
    for v in sprites.VARIANTS:
        assert len({repr(layers(v, facing, 0)) for facing in sprites.FACINGS}) == 4, v
        # right is left mirrored, and not left itself
        left, right = sprites.frame(v, "left", 1), sprites.frame(v, "right", 1)
        assert right.base == [row[::-1] for row in left.base] and right.base != left.base
        for facing in sprites.FACINGS:  # a stride differs from standing, and the two strides from each other
            stand, a, b = (layers(v, facing, s) for s in (0, 1, 3))
            assert stand != a and stand != b and a != b, (v, facing)


def test_the_clothes_are_in_the_mask_and_only_there():
    """Each frame: some clothes (the colour of the entity), never a pixel in both layers, an outline around."""
    for v in sprites.VARIANTS:
        for facing in sprites.FACINGS:
            for step in range(sprites.FRAMES):
                base, mask = layers(v, facing, step)
                cloth = sum(p == sprites.CLOTH for row in mask for p in row)
                assert cloth >= 12, (v, facing, step)
                assert not any(b[3] and m[3] for rb, rm in zip(base, mask) for b, m in zip(rb, rm))
                assert any(p == sprites.OUTLINE for row in base for p in row)
