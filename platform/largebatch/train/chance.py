"""Whether a finished classification run learned anything: its accuracy against chance level (1/num_classes).

A run whose learning rate is far off (e.g. LARS at a base lr meant for LAMB) can complete without diverging and
still end where it started, at chance accuracy; the summary line alone does not say so.
"""

from __future__ import annotations

from collections.abc import Mapping

MARGIN = 0.1  # "clearly above chance": more than a tenth of the way from chance level to perfect accuracy


def chance_threshold(num_classes: int) -> float:
    """The accuracy a run must exceed to be clearly above chance: 1/K + MARGIN · (1 − 1/K)."""
    chance = 1.0 / num_classes
    return chance + MARGIN * (1.0 - chance)


def at_chance_warning(evaluation: Mapping[str, float], num_classes: int | None, setting: str = "") -> str | None:
    """A one-line warning when the final accuracy (test, else validation) of a ``num_classes``-way classifier is
    not clearly above chance (:func:`chance_threshold`), ending with ``setting`` (what was trained, e.g. the
    optimizer and its lr); None otherwise, or when there are no classes or no accuracy to judge."""
    split = next((s for s in ("test", "val") if f"{s}_acc" in evaluation), None)
    if not num_classes or num_classes < 2 or split is None:
        return None
    accuracy, threshold = evaluation[f"{split}_acc"], chance_threshold(num_classes)
    if accuracy > threshold:
        return None
    return (f"{split} accuracy {accuracy:.3f} is at chance level (1/{num_classes} = {1 / num_classes:.3f}; "
            f"clearly above it from {threshold:.3f}): the run did not learn; check optimizer.lr and lr_scaling"
            + (f" ({setting})" if setting else ""))
