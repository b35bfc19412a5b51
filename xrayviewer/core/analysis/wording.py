"""Numbers and scales in the words every view and export uses, so that screen and files say the same."""

from __future__ import annotations


def percent(p: float) -> str:
    """A probability as a percentage with one decimal ("99.6%"); what would round to 100% or 0% is ">99.9%" or
    "<0.1%": a model's output is never a certainty."""
    text = f"{p * 100:.1f}"
    if text == "100.0":
        return ">99.9%"
    if text == "0.0":
        return "<0.1%"
    return f"{text}%"


def bar_top(reference: float | None) -> str:
    """What the top of a heatmap's colour bar means: a typical pneumonia film's evidence when the map is on the
    model's reference scale, else this image's own maximum (the map stretched to its peak)."""
    return "this image's maximum" if reference is None else "typical pneumonia film"
