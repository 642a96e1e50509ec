"""SVG charts as plain strings: line charts (the bots report's timelines, train-policy's loss
curve) and histograms (the bots report's latencies). No JavaScript, nothing fetched: a chart
opens anywhere, offline, inline in HTML or as an .svg file. Sizes are in px (W x H, margins).
This replaced a hand-written PNG rasteriser with its own 3x5 font: a browser draws SVG text."""

from __future__ import annotations

import math
from html import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
W, H = 680, 260  # px
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 34, 40  # margins, px


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, v = [], first
    while True:  # the last tick is the first at or above hi, so that the axis covers every value
        ticks.append(round(v, 10))
        if v >= hi - step * 1e-9:
            return ticks
        v += step


def fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _frame(title: str, x_label: str, y_label: str, inner: list[str], legend: list[tuple[str, str]]) -> str:
    parts = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>',
        f'<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    parts.extend(inner)
    parts.append(
        f'<text x="{LEFT + (W - LEFT - RIGHT) / 2}" y="{H - 6}" font-size="11" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="12" y="{TOP + (H - TOP - BOTTOM) / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + (H - TOP - BOTTOM) / 2})">{escape(y_label)}</text>'
    )
    x = W - RIGHT
    for label, color in reversed(legend):
        x -= 12 + 7 * len(label)
        parts.append(
            f'<rect x="{x}" y="9" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 13}" y="18" font-size="11">{escape(label)}</text>'
        )
        x -= 8
    parts.append("</svg>")
    return "\n".join(parts)


def _axes(xt: list[tuple[float, str]], yt: list[tuple[float, str]]) -> list[str]:
    """Grid lines and labels; positions already in px."""
    out = []
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP
    for py, label in yt:
        out.append(
            f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{x0 - 4}" y="{py + 4:.1f}" font-size="10" text-anchor="end">{label}</text>'
        )
    for px, label in xt:
        out.append(
            f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y0 + 4}" stroke="#888"/>'
            f'<text x="{px:.1f}" y="{y0 + 15}" font-size="10" text-anchor="middle">{label}</text>'
        )
    out.append(f'<polyline points="{x0},{y1} {x0},{y0} {x1},{y0}" fill="none" stroke="#888"/>')
    return out


def line_chart(
    title: str,
    series: list[tuple[str, list[tuple[float, float | None]]]],
    x_label: str = "seconds since start",
    y_label: str = "",
    hline: tuple[str, float] | None = None,
    y_max: float | None = None,
) -> str:
    """One line per series of (x, y) points; a None y breaks the line.
    `hline` draws a labelled dashed reference line (e.g. the tick budget)."""
    points = [(x, y) for _, pts in series for x, y in pts if y is not None]
    if not points:
        return _frame(
            title,
            x_label,
            y_label,
            [f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" font-size="12" fill="#888">no data</text>'],
            [],
        )
    xs = [p[0] for p in points]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi <= x_lo:
        x_hi = x_lo + 1
    top = max(p[1] for p in points)
    if hline:
        top = max(top, hline[1])
    yticks = nice_ticks(0.0, y_max if y_max is not None else (top * 1.05 or 1.0))
    y_hi = yticks[-1]

    def px(x: float) -> float:
        return LEFT + (x - x_lo) / (x_hi - x_lo) * (W - LEFT - RIGHT)

    def py(y: float) -> float:
        return H - BOTTOM - min(y, y_hi) / y_hi * (H - TOP - BOTTOM)

    inner = _axes(
        [(px(t), fmt(t)) for t in nice_ticks(x_lo, x_hi, 8) if x_lo <= t <= x_hi], [(py(t), fmt(t)) for t in yticks]
    )
    if hline:
        inner.append(
            f'<line x1="{LEFT}" y1="{py(hline[1]):.1f}" x2="{W - RIGHT}" y2="{py(hline[1]):.1f}" '
            f'stroke="#999" stroke-dasharray="5,4"/><text x="{W - RIGHT - 4}" y="{py(hline[1]) - 4:.1f}" '
            f'font-size="10" text-anchor="end" fill="#666">{escape(hline[0])}</text>'
        )
    legend = []
    for i, (label, pts) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        legend.append((label, color))
        run: list[str] = []
        for x, y in [*pts, (0.0, None)]:  # the sentinel (y None) ends the last run
            if y is None:
                if len(run) == 1:
                    cx, cy = run[0].split(",")
                    inner.append(f'<circle class="data" cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
                elif run:
                    inner.append(
                        f'<polyline class="data" points="{" ".join(run)}" fill="none" stroke="{color}" '
                        f'stroke-width="1.8"/>'
                    )
                run = []
            else:
                run.append(f"{px(x):.1f},{py(y):.1f}")
    return _frame(title, x_label, y_label, inner, legend)


def histogram(title: str, rows: list[tuple[float, float, int]], x_label: str, log_x: bool = True) -> str:
    """Bars for (lo, hi, count) rows; a log x axis suits latencies in ms."""
    rows = [r for r in rows if r[2] > 0 and (not log_x or r[0] > 0)]
    if not rows:
        return _frame(
            title,
            x_label,
            "count",
            [f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" font-size="12" fill="#888">no data</text>'],
            [],
        )
    f = math.log10 if log_x else (lambda v: v)
    x_lo, x_hi = f(rows[0][0]), f(rows[-1][1])
    if log_x:  # whole decades
        x_lo, x_hi = math.floor(x_lo), math.ceil(x_hi)
    else:  # counts: from 0, so that a drop stands out
        x_lo = min(0.0, x_lo)
    if x_hi <= x_lo:
        x_hi = x_lo + 1
    yticks = nice_ticks(0, max(r[2] for r in rows) * 1.05)
    y_hi = yticks[-1]

    def px(v: float) -> float:
        return LEFT + (f(v) - x_lo) / (x_hi - x_lo) * (W - LEFT - RIGHT)

    def py(c: float) -> float:
        return H - BOTTOM - c / y_hi * (H - TOP - BOTTOM)

    if log_x:
        xt = [
            (LEFT + (d - x_lo) / (x_hi - x_lo) * (W - LEFT - RIGHT), fmt(10.0**d))
            for d in range(int(x_lo), int(x_hi) + 1)
        ]
    else:
        xt = [(px(t), fmt(t)) for t in nice_ticks(x_lo, x_hi, 8) if x_lo <= t <= x_hi]
    inner = _axes(xt, [(py(t), fmt(t)) for t in yticks])
    for lo, hi, count in rows:
        x0, x1 = px(lo), px(hi)
        inner.append(
            f'<rect class="data" x="{x0:.1f}" y="{py(count):.1f}" width="{max(1.0, x1 - x0):.1f}" '
            f'height="{py(0) - py(count):.1f}" fill="{COLORS[0]}"><title>{lo:.3g}..{hi:.3g}: '
            f"{count}</title></rect>"
        )
    return _frame(title, x_label, "count", inner, [])
