"""Inline SVG charts for the HTML report, drawn in Python: no chart library travels in the page.

A chart is a frame (axes, ticks, labels) plus one ``<g class="series" data-row=ID>`` per row:
its line, its points and its 95% interval band. The page's script shows the series of the
selected rows and hides the others, so the SVG is made once, whatever the selection.
Every text is escaped here (markupsafe, Jinja2's own escaping); the template inserts the SVG
as markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 520, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 14, 40
# Eight colours that stay apart for the common forms of colour blindness (Okabe and Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass(frozen=True)
class Series:
    row: str  # the row's id (data-row)
    name: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    lo: tuple[float | None, ...]  # the band; None where a point has no interval
    hi: tuple[float | None, ...]
    colour: str


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def line_chart(title: str, x_label: str, y_label: str, series: Sequence[Series], shown: Sequence[str] = (),
               css_class: str = "chart") -> Markup:
    """One SVG: every series drawn, those whose row is not in ``shown`` hidden (the script
    toggles them); the y range fits every series' band, the x range every x."""
    xs = [x for s in series for x in s.xs]
    ys = [v for s in series for v in (*s.ys, *(b for b in (*s.lo, *s.hi) if b is not None))]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    y0 = max(0.0, math.floor(min(ys, default=0.0) / 10) * 10)
    y1 = min(100.0, math.ceil(max(ys, default=100.0) / 10) * 10)
    if y1 <= y0:
        y0, y1 = max(0.0, y0 - 10), min(100.0, y1 + 10) if y1 < 100 else 100.0
        y0 = min(y0, y1 - 10)
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * ph

    out = [f'<svg class="{escape(css_class)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{_fmt(py(t))}" y2="{_fmt(py(t))}" stroke="#eee"/>'
                   f'<text x="{LEFT - 4}" y="{_fmt(py(t) + 4)}" text-anchor="end" font-size="11">{t:g}</text>')
    for t in sorted(set(xs)) if len(set(xs)) <= 12 else _ticks(x0, x1):
        out.append(f'<text x="{_fmt(px(t))}" y="{TOP + ph + 16}" text-anchor="middle" font-size="11">{t:g}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 6}" text-anchor="middle" font-size="12">{escape(x_label)}</text>')
    out.append(f'<text transform="translate(12 {TOP + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">'
               f'{escape(y_label)}</text>')
    for s in series:
        hidden = "" if s.row in shown else ' style="display:none"'
        parts = [f'<g class="series" data-row="{escape(s.row)}"{hidden}><title>{escape(s.name)}</title>']
        band = [(x, lo, hi) for x, lo, hi in zip(s.xs, s.lo, s.hi) if lo is not None and hi is not None]
        if len(band) >= 2:
            upper = " ".join(f"{_fmt(px(x))},{_fmt(py(hi))}" for x, _, hi in band)
            lower = " ".join(f"{_fmt(px(x))},{_fmt(py(lo))}" for x, lo, _ in reversed(band))
            parts.append(f'<polygon points="{upper} {lower}" fill="{s.colour}" fill-opacity="0.15" stroke="none"/>')
        if len(band) == 1:  # a band of one point would not show: a whisker instead
            x, lo, hi = band[0]
            parts.append(f'<line x1="{_fmt(px(x))}" x2="{_fmt(px(x))}" y1="{_fmt(py(lo))}" y2="{_fmt(py(hi))}" '
                         f'stroke="{s.colour}" stroke-opacity="0.5"/>')
        points = " ".join(f"{_fmt(px(x))},{_fmt(py(y))}" for x, y in zip(s.xs, s.ys))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{s.colour}" stroke-width="2"/>')
        # The points as round line caps of zero-length segments: one element for all of them.
        dots = "".join(f"M{_fmt(px(x))} {_fmt(py(y))}h0" for x, y in zip(s.xs, s.ys))
        parts.append(f'<path d="{dots}" stroke="{s.colour}" stroke-width="6" stroke-linecap="round"/>')
        out.append("".join(parts) + "</g>")
    out.append("</svg>")
    return Markup("".join(out))
