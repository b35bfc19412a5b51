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


def faithfulness(label: str, figures: dict | None, films: int | None = None) -> str:
    """How far a heatmap method can be trusted for this model, from the card's validation figures, in words."""
    if not figures:
        return f"{label} has not been measured on this model's validation films: how faithful it is is unknown."
    pointing, share = figures.get("pointing_game"), figures.get("lung_box_share")
    deletion = figures.get("deletion_vs_random") or {}
    low, high = (deletion.get("ci95") or [None, None])[:2]
    on = f"On {films} validation pneumonia films" if films else "On validation pneumonia films"
    text = f"{on}, {label}'s hottest point fell inside the lungs in {pointing:.0%} of films"
    if share is not None:
        text += f" and {share:.0%} of its heat lay in the lungs"
    faithful = pointing >= 0.85 and high is not None and high < 0
    if high is not None:
        text += ("; covering its hottest pixels lowered the score faster than covering random ones"
                 if high < 0 else "; covering its hottest pixels lowered the score no faster than random ones")
        text += f" (difference {deletion['mean_difference']:+.2f}, 95% CI {low:+.2f} to {high:+.2f})"
    return text + (". It shows where the model's evidence is." if faithful else
                   ". It does not show where this model's evidence is: prefer Occlusion.")


def bar_top(reference: float | None) -> str:
    """What the top of a heatmap's colour bar means: a typical pneumonia film's evidence when the map is on the
    model's reference scale, else this image's own maximum (the map stretched to its peak)."""
    return "this image's maximum" if reference is None else "typical pneumonia film"
