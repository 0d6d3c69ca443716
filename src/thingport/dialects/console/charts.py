"""Charts as inline SVG drawn on the server: the geometry is computed here, the template writes the
``<rect>`` elements and the stylesheet colours them by class (no script, no inline style, so the
console's Content-Security-Policy stays ``'self'`` only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    cls: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    #: the largest stacked total, which the full height stands for
    top: int


def columns(stacks: Sequence[Sequence[tuple[int, str, str]]], *, width: int = 600, height: int = 120,
            gap: float = 1.0) -> Chart:
    """Vertical stacked columns, one per item of ``stacks``; each part is ``(value, class, title)``."""
    top = max((sum(v for v, _, _ in s) for s in stacks), default=0)
    step = width / max(len(stacks), 1)
    bars: list[Bar] = []
    for i, stack in enumerate(stacks):
        base = float(height)
        for value, cls, title in stack:
            if value <= 0:
                continue
            h = height * value / top
            base -= h
            bars.append(Bar(round(i * step, 2), round(base, 2), round(max(step - gap, 1.0), 2), round(h, 2), cls,
                            title))
    return Chart(width, height, bars, top)


def rows(stacks: Sequence[Sequence[tuple[int, str, str]]], *, width: int = 400, row: int = 18,
         gap: int = 6, top: int | None = None) -> Chart:
    """Horizontal stacked bars, one row per item of ``stacks``; each part is ``(value, class, title)``.
    ``top``: the total the full width stands for (default: the largest), so charts drawn one per
    table row share a scale."""
    top = top if top is not None else max((sum(v for v, _, _ in s) for s in stacks), default=0)
    bars: list[Bar] = []
    for i, stack in enumerate(stacks):
        left = 0.0
        for value, cls, title in stack:
            if value <= 0:
                continue
            w = width * value / top
            bars.append(Bar(round(left, 2), i * (row + gap), round(w, 2), row, cls, title))
            left += w
    return Chart(width, max(len(stacks) * (row + gap) - gap, row), bars, top)
