"""Named noise conditions (``poisson-5``, ``gaussian-25``): the ``{noise}`` wildcard of the workflow.

Standard library only: the Snakefile builds its targets from these names while it parses, in an
environment that may have nothing but Snakemake (``temdenoise.noise`` re-exports them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONDITION = re.compile(r"^(poisson|gaussian)-([0-9]+(?:\.[0-9]+)?)$")


@dataclass(frozen=True)
class NoiseCondition:
    """A noise condition: ``kind`` is ``poisson`` (level = dose, e/A^2) or ``gaussian`` (level = sigma/255)."""

    kind: str
    level: float

    @property
    def name(self) -> str:
        return condition_name(self.kind, self.level)


def condition_name(kind: str, level: float) -> str:
    """Canonical wildcard name, e.g. ``poisson-5``, ``poisson-0.5``, ``gaussian-25``."""
    if kind not in ("poisson", "gaussian"):
        raise ValueError(f"unknown noise kind {kind!r} (expected 'poisson' or 'gaussian')")
    if level <= 0:
        raise ValueError(f"noise level must be positive, got {level}")
    return f"{kind}-{float(level):g}"


def parse_condition(name: str) -> NoiseCondition:
    """Inverse of :func:`condition_name`."""
    match = _CONDITION.match(name)
    if not match:
        raise ValueError(f"not a noise condition name: {name!r} (expected e.g. 'poisson-5' or 'gaussian-25')")
    return NoiseCondition(match.group(1), float(match.group(2)))
