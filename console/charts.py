"""Small bar charts as inline SVG, drawn on the server (no script, no library)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[int]
    css: str  # the class that colours it (console.css)


def bars(title: str, series: Sequence[Series], *, width: int = 480, height: int = 90) -> Markup:
    """Side-by-side bars per slot (e.g. per hour), scaled to the largest value, with a
    <title> per bar so a hover tells the figure."""
    slots = max((len(s.values) for s in series), default=0)
    top = max((v for s in series for v in s.values), default=0) or 1
    slot_w = width / max(slots, 1)
    bar_w = max(slot_w / max(len(series), 1) - 1, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + 14}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i in range(slots):
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else 0
            h = round(height * value / top, 1)
            x = round(i * slot_w + j * (bar_w + 1), 1)
            parts.append(
                f'<rect class="{escape(s.css)}" x="{x}" y="{height - h}" width="{bar_w:.1f}" '
                f'height="{h}"><title>{escape(s.label)}: {value}</title></rect>'
            )
    parts.append(f'<text x="0" y="{height + 12}">-{slots}h</text>')
    parts.append(f'<text x="{width}" y="{height + 12}" text-anchor="end">now · max {top}</text>')
    parts.append("</svg>")
    # Every value put into the markup above went through escape().
    return Markup("".join(parts))  # noqa: S704
