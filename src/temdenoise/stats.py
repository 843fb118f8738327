"""Paired comparisons of two methods scored on the same test items (images or frames).

An ordering "A beats B" is claimed only from the paired per-item difference ``score_A - score_B``
and its 95% confidence interval (Student t over items): the claim is *resolved* when the interval
excludes 0, and "not resolved at this scale" otherwise. Pairing removes the item-to-item spread
that dominates the per-method standard deviations of a PSNR table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over paired items with its confidence interval."""

    mean: float
    low: float
    high: float
    items: int
    confidence: float = 0.95

    @property
    def resolved(self) -> bool:
        """True when the interval excludes 0 (the sign of the difference is established)."""
        return bool(self.low > 0 or self.high < 0)

    def verdict(self, a: str = "A", b: str = "B") -> str:
        """``"A > B"``, ``"A < B"`` or ``"not resolved"``."""
        if not self.resolved:
            return "not resolved"
        return f"{a} > {b}" if self.mean > 0 else f"{a} < {b}"

    def format(self, unit: str = "dB") -> str:
        """E.g. ``+0.08 dB [-0.12, +0.28]`` (the interval at :attr:`confidence`)."""
        return f"{self.mean:+.2f} {unit} [{self.low:+.2f}, {self.high:+.2f}]".replace(" ]", "]").strip()

    def as_dict(self, prefix: str = "diff") -> dict[str, float | int | bool]:
        values = asdict(self)
        out = {f"{prefix}_{key}": values[key] for key in ("mean", "low", "high", "items")}
        out[f"{prefix}_resolved"] = self.resolved
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any], prefix: str = "diff") -> "PairedDifference":
        """The difference stored in a table row by :meth:`as_dict` (same ``prefix``)."""
        return cls(*(record[f"{prefix}_{key}"] for key in ("mean", "low", "high")), int(record[f"{prefix}_items"]))


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Paired difference ``a - b`` over items with a Student-t confidence interval.

    NaN pairs are dropped. With one item the interval is unbounded (nothing is resolved); with
    identical differences it collapses to the mean.
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if diff.ndim != 1:
        raise ValueError(f"paired_difference expects two 1-D sequences of equal length, got shape {diff.shape}")
    diff = diff[np.isfinite(diff)]
    n = diff.size
    if n == 0:
        return PairedDifference(np.nan, np.nan, np.nan, 0, confidence)
    mean = float(diff.mean())
    if n == 1:
        return PairedDifference(mean, -np.inf, np.inf, 1, confidence)
    sem = float(diff.std(ddof=1) / np.sqrt(n))
    # imported here: scipy.stats costs ~1.3 s, paid by every denoise / evaluate job otherwise
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1) * sem)
    return PairedDifference(mean, mean - half, mean + half, n, confidence)


def paired_table(
    tidy: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    *,
    by: Sequence[str] = ("noise",),
    item: Sequence[str] = ("image",),
    method: str = "method",
    score: str = "psnr",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Paired differences ``score(a) - score(b)`` for each ``(a, b)`` in ``pairs`` within each group.

    ``tidy`` has one row per item x method (x group); items are matched on the ``item`` columns.
    Pairs whose methods are absent from a group are skipped. Columns: the ``by`` keys, ``a``, ``b``,
    ``diff_mean``, ``diff_low``, ``diff_high``, ``diff_items``, ``diff_resolved``, ``verdict``.
    """
    rows = []
    groups = tidy.groupby(list(by), sort=False) if by else [((), tidy)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        wide = part.pivot_table(index=list(item), columns=method, values=score, aggfunc="first")
        for a, b in pairs:
            if a not in wide.columns or b not in wide.columns:
                continue
            result = paired_difference(wide[a].to_numpy(), wide[b].to_numpy(), confidence)
            rows.append({**dict(zip(by, key)), "a": a, "b": b, **result.as_dict(), "verdict": result.verdict(a, b)})
    columns = [*by, "a", "b", "diff_mean", "diff_low", "diff_high", "diff_items", "diff_resolved", "verdict"]
    return pd.DataFrame(rows, columns=columns)
