"""Settings of a GainTuning adaptation and where they come from (no torch: the workflow imports this).

A case's loss, learning rate and step count are either fixed by the config or chosen on the
*validation* images of the case's test dataset by the rule ``gaintuning_select``, which sweeps the
grid :func:`selection_grid` and writes the winner to ``selection.json`` (:func:`read_selection`).
Test images are never used to choose them.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from typing import Any


CASE_OVERRIDES = ("loss", "lr", "steps", "loss_options")
"""Keys a case may set to override the section's value (e.g. noise resampling for Poisson cases)."""

SELECTION_AXES = {"losses": "loss", "lr": "lr", "steps": "steps"}
"""Grid axes of ``experiments.gaintuning.selection`` and the setting each one sweeps."""

FROM_VALIDATION = "validation"
FROM_CONFIG = "fixed by config"


@dataclass
class AdaptSettings:
    """The ``experiments.gaintuning`` knobs of one adaptation."""

    loss: str = "sure"
    lr: float = 1e-3
    steps: int = 20
    all_params_lr: float = 1e-4
    crop: int = 0
    loss_options: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: dict[str, Any], entry: dict[str, Any] | None = None) -> "AdaptSettings":
        """Settings of ``section`` (``experiments.gaintuning``), with the per-case overrides
        (:data:`CASE_OVERRIDES`, ``None`` = the section's value) of the case ``entry``."""
        merged = {**section, **{k: v for k, v in (entry or {}).items() if k in CASE_OVERRIDES and v is not None}}
        return cls(**{key: merged[key] for key in cls.__dataclass_fields__ if key in merged and merged[key] is not None})

    def chosen(self) -> dict[str, Any]:
        """The settings a selection chooses (one point of the grid)."""
        return {axis: getattr(self, axis) for axis in SELECTION_AXES.values()}


def case_selection(section: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any] | None:
    """The grid of a case: the section's ``selection`` with the case's overrides; ``None`` when the
    case pins its setting (``selection: false``)."""
    own = entry.get("selection")
    if own is False:
        return None
    return {**section.get("selection", {}), **(own or {})}


def selection_grid(section: dict[str, Any], entry: dict[str, Any]) -> list[AdaptSettings]:
    """Every setting the case's validation sweep tries, in grid order (losses, then lr, then steps).

    An empty axis keeps the case's fixed value. A grid of fewer than two settings chooses nothing:
    the result is ``[]`` and the case's setting is fixed by the config.
    """
    selection = case_selection(section, entry)
    if selection is None:
        return []
    fixed = AdaptSettings.from_config(section, entry)
    axes = {axis: selection.get(key) or [getattr(fixed, axis)] for key, axis in SELECTION_AXES.items()}
    grid = [replace(fixed, **dict(zip(axes, point))) for point in itertools.product(*axes.values())]
    return grid if len(grid) > 1 else []


def selects(section: dict[str, Any], entry: dict[str, Any]) -> bool:
    """True when the case's setting is chosen on validation images (a grid of two or more settings)."""
    return bool(selection_grid(section, entry))


def write_selection(path: str, case: str, chosen: AdaptSettings, criterion: str, images: int, noise: list[str]) -> None:
    """``selection.json``: the chosen setting, how and on what it was chosen."""
    record = {"case": case, "chosen": chosen.chosen(), "split": "validation", "criterion": criterion,
              "images": images, "noise": noise}
    from temdenoise.io import save_text  # numpy/pandas: kept out of the Snakefile's parse (common.smk)

    save_text(path, json.dumps(record, indent=2) + "\n")


def settings_of_case(
    section: dict[str, Any], entry: dict[str, Any] | None, selection_path: str | None = None
) -> tuple[AdaptSettings, str]:
    """The settings a case adapts its test items with and where they came from
    (:data:`FROM_VALIDATION` when ``selection_path`` names a ``selection.json``, else :data:`FROM_CONFIG`)."""
    settings = AdaptSettings.from_config(section, entry)
    if not selection_path:
        return settings, FROM_CONFIG
    with open(selection_path) as handle:
        chosen = json.load(handle)["chosen"]
    return replace(settings, **chosen), FROM_VALIDATION


def describe(settings: AdaptSettings) -> str:
    """E.g. ``resample, lr 0.05, 100 steps`` (table cells, figure titles)."""
    return f"{settings.loss}, lr {settings.lr:g}, {settings.steps} steps"

