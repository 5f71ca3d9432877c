"""Denials per minute by status over the last hour, drawn as inline SVG (no JavaScript).

The counts come from :func:`~wsreject.access.denial_log.denials_per_minute`
(every process, through the shared cache); this module only draws them: one line
per status series, a y axis rounded to a readable maximum, a time label every ten
minutes and a legend. Every text in the markup is escaped.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

__all__ = ["COLOURS", "denials_chart", "nice_maximum"]

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 120, 16, 32
COLOURS = {
    "400": "#8c564b",
    "401": "#1f77b4",
    "403": "#d62728",
    "404": "#7f7f7f",
    "429": "#ff7f0e",
    "500": "#9467bd",
    "503": "#2ca02c",
    "other 4xx": "#bcbd22",
    "other 5xx": "#e377c2",
    "other": "#17becf",
}


def nice_maximum(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above ``value`` (at least 1)."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def denials_chart(first_minute: int, series: dict[str, list[int]]) -> SafeString:
    """The SVG for ``series`` (counts per minute from ``first_minute``, in minutes since the epoch)."""
    minutes = max((len(values) for values in series.values()), default=60) or 60
    top = nice_maximum(max((max(values) for values in series.values()), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(index: int) -> float:
        return LEFT + plot_w * index / max(minutes - 1, 1)

    def y(count: int) -> float:
        return TOP + plot_h * (1 - count / top)

    total = sum(sum(values) for values in series.values())
    title = f"Denials per minute by status, last {minutes} minutes: {total} in all"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="wsreject-denials-chart" role="img" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>',
    ]
    for fraction in (0, 0.5, 1):
        value = round(top * fraction)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value}</text>')
    for index in range(0, minutes, 10):
        when = timezone.localtime(datetime.fromtimestamp((first_minute + index) * 60, tz=UTC))
        parts.append(f'<text x="{x(index):.1f}" y="{HEIGHT - 12}" text-anchor="middle">{when:%H:%M}</text>')
    for row, (name, values) in enumerate(series.items()):
        colour = COLOURS.get(name, "#333")
        points = " ".join(f"{x(index):.1f},{y(count):.1f}" for index, count in enumerate(values))
        parts.append(
            f'<polyline class="wsreject-series" data-status="{escape(name)}" data-total="{sum(values)}" '
            f'fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        legend_y = TOP + 6 + row * 16
        parts.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{legend_y - 8}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 28}" y="{legend_y + 1}">{escape(name)}: {sum(values)}</text>')
    if not series:
        parts.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" fill="#666">'
            f"{escape('No denials in the last hour')}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text is escaped above
