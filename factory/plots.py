"""Small SVG charts drawn by hand, so a report is one self-contained file with no script and no download.

Each function returns an `<svg>` string. Text is escaped; numbers are laid out on a fixed canvas that scales
with the page (viewBox).
"""

from __future__ import annotations

from html import escape

W, ROW, LEFT = 720, 26, 250  # canvas width, bar height with its gap, room for labels of horizontal bars
COLORS = ["#2f6fb0", "#d9822b", "#3a9a5b", "#a0439a"]


def _svg(height: int, body: list[str], label: str) -> str:
    return (
        f'<svg class="plot" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">'
        + "".join(body)
        + "</svg>"
    )


def _empty(label: str, why: str) -> str:
    return _svg(60, [f'<text x="{W / 2}" y="34" text-anchor="middle" fill="#777">{escape(why)}</text>'], label)


def bars(
    labels: list[str], values: list[float], label: str, text: list[str] | None = None, why_empty: str = "no data yet"
) -> str:
    """Horizontal bars, one per label, with its value written at the bar's end."""
    if not values:
        return _empty(label, why_empty)
    top = max(values) or 1
    span = W - LEFT - 90
    body = []
    for i, (name, v) in enumerate(zip(labels, values, strict=True)):
        y, w = 8 + i * ROW, max(1.0, span * v / top)
        shown = text[i] if text else f"{v:,}"
        body += [
            f'<text x="{LEFT - 8}" y="{y + 14}" text-anchor="end">{escape(_cut(name, 38))}</text>',
            f'<rect x="{LEFT}" y="{y}" width="{w:.1f}" height="{ROW - 8}" fill="{COLORS[0]}"><title>'
            f"{escape(name)}: {escape(shown)}</title></rect>",
            f'<text x="{LEFT + w + 6:.1f}" y="{y + 14}">{escape(shown)}</text>',
        ]
    return _svg(16 + ROW * len(values), body, label)


def intervals(labels: list[str], values: list[float], spans: list[tuple], label: str) -> str:
    """Horizontal bars of proportions (0 to 1), each with its interval drawn as a whisker, the value written beside."""
    if not values:
        return _empty(label, "no arms yet")
    span = W - LEFT - 150
    body = []
    for i, (name, v, (lo, hi)) in enumerate(zip(labels, values, spans, strict=True)):
        y, w = 8 + i * ROW, max(1.0, span * v)
        mid, x0, x1 = y + (ROW - 8) / 2, LEFT + span * lo, LEFT + span * hi
        shown = f"{100 * v:.1f}% ({100 * lo:.1f}-{100 * hi:.1f})"
        body += [
            f'<text x="{LEFT - 8}" y="{y + 14}" text-anchor="end">{escape(_cut(name, 38))}</text>',
            f'<rect x="{LEFT}" y="{y}" width="{w:.1f}" height="{ROW - 8}" fill="{COLORS[0]}"><title>'
            f"{escape(name)}: {escape(shown)}</title></rect>",
            f'<line x1="{x0:.1f}" y1="{mid:.1f}" x2="{x1:.1f}" y2="{mid:.1f}" stroke="#222" stroke-width="2"/>',
            f'<text x="{LEFT + span + 6}" y="{y + 14}">{escape(shown)}</text>',
        ]
    return _svg(16 + ROW * len(values), body, label)


def histogram(
    series: dict[str, list[float]],
    lo: float,
    hi: float,
    nbins: int,
    label: str,
    xlabel: str,
    why_empty: str = "no data yet",
) -> str:
    """Counts of values in `nbins` equal bins over [lo, hi], one colour per series, side by side in each bin."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return _empty(label, why_empty)
    width = (hi - lo) / nbins or 1
    counts = {k: _bin(v, lo, width, nbins) for k, v in series.items()}
    top = max(max(c) for c in counts.values()) or 1
    x0, x1, y0, y1 = 50, W - 20, 30, 230  # plot area
    bw = (x1 - x0) / nbins
    body = [
        f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="#333"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/>',
        f'<text x="{x0 - 6}" y="{y0 + 4}" text-anchor="end">{top}</text>',
        f'<text x="{x0 - 6}" y="{y1}" text-anchor="end">0</text>',
        f'<text x="{(x0 + x1) / 2}" y="{y1 + 34}" text-anchor="middle">{escape(xlabel)}</text>',
    ]
    for i in range(0, nbins + 1, max(1, nbins // 10)):
        body.append(f'<text x="{x0 + i * bw:.1f}" y="{y1 + 16}" text-anchor="middle">{_num(lo + i * width)}</text>')
    k = len(counts)
    for j, (name, c) in enumerate(counts.items()):
        color = COLORS[j % len(COLORS)]
        body.append(
            f'<rect x="{x1 - 150}" y="{4 + 16 * j}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x1 - 135}" y="{13 + 16 * j}">{escape(name)} ({len(series[name])})</text>'
        )
        for i, n in enumerate(c):
            if n:
                h = (y1 - y0) * n / top
                x = x0 + i * bw + 1 + j * (bw - 2) / k
                rng = f"{_num(lo + i * width)}-{_num(lo + (i + 1) * width)}"
                body.append(
                    f'<rect x="{x:.1f}" y="{y1 - h:.1f}" width="{(bw - 2) / k:.1f}" height="{h:.1f}" '
                    f'fill="{color}"><title>{escape(name)} {rng}: {n}</title></rect>'
                )
    return _svg(y1 + 44, body, label)


def _bin(values: list[float], lo: float, width: float, nbins: int) -> list[int]:
    c = [0] * nbins
    for v in values:
        c[min(nbins - 1, max(0, int((v - lo) / width)))] += 1
    return c


def _num(v: float) -> str:
    return f"{v:g}" if abs(v) < 1000 else f"{v:,.0f}"


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
