"""Small server-side SVG charts (no JavaScript): a daily bar chart and a horizontal bar.

Each chart is an ``<svg role="img">`` with a ``<title>`` and ``aria-label`` summarising it; the
pages also give the numbers as a table, so nothing is only in the picture. Output is built from
numbers and escaped labels only."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

_T = 'font-size="11" fill="#222"'
_AXIS = 'stroke="#555"'


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    step = 10 ** (len(str(value)) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * step:
            return int(m * step)
    return value


def daily_bars(
    series: list[tuple[str, int]],
    *,
    label: str,
    colour: str = "#1f5fa8",
    width: int = 640,
    height: int = 160,
) -> Markup:
    """Bars per day (oldest left), a y axis with its maximum, first and last dates below."""
    n = max(1, len(series))
    top = _nice_max(max((v for _, v in series), default=0))
    left, bottom, pad_top = 44, 22, 8
    plot_w, plot_h = width - left - 4, height - bottom - pad_top
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.75)
    total = sum(v for _, v in series)
    first = series[0][0] if series else ""
    last = series[-1][0] if series else ""
    peak = max((v for _, v in series), default=0)
    summary = f"{label}: {total} in total from {first} to {last}, at most {peak} a day"
    base = pad_top + plot_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(summary)}" '
        f'viewBox="0 0 {width} {height}" width="100%" class="chart">',
        f"<title>{escape(summary)}</title>",
        f'<line x1="{left}" y1="{base}" x2="{width - 4}" y2="{base}" {_AXIS}/>',
        f'<line x1="{left}" y1="{pad_top}" x2="{left}" y2="{pad_top + plot_h}" {_AXIS}/>',
        f'<text x="{left - 4}" y="{pad_top + 10}" text-anchor="end" {_T}>{top}</text>',
        f'<text x="{left - 4}" y="{pad_top + plot_h}" text-anchor="end" {_T}>0</text>',
    ]
    for i, (day, value) in enumerate(series):
        h = 0 if not top else plot_h * value / top
        x = left + i * slot + (slot - bar_w) / 2
        y = pad_top + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{escape(day)}: {value}</title></rect>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 6}" {_T}>{escape(first)}</text>'
        f'<text x="{width - 4}" y="{height - 6}" text-anchor="end" {_T}>{escape(last)}</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def hbar(share: float | None, *, label: str, status: str = "ok", width: int = 240) -> Markup:
    """A horizontal bar filled to ``share`` (0..1, capped), coloured by status."""
    colours = {"ok": "#2e7d32", "warn": "#b26a00", "fail": "#b3261e", "unknown": "#6b6b6b"}
    filled = 0 if share is None else max(0.0, min(1.0, share)) * width
    fill = colours.get(status, "#6b6b6b")
    text = label if share is None else f"{label}: {share * 100:.0f}%"
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(text)}" '
        f'width="{width}" height="14" viewBox="0 0 {width} 14" class="hbar">'
        f"<title>{escape(text)}</title>"
        f'<rect x="0" y="0" width="{width}" height="14" fill="#e4e4e4"/>'
        f'<rect x="0" y="0" width="{filled:.1f}" height="14" fill="{fill}"/>'
        "</svg>"
    )
