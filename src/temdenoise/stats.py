"""Paired comparisons of two methods scored on the same test items, over independent units.

An ordering "A beats B" is claimed only from the paired difference ``score_A - score_B``:

* **Units.** Items that share a source are not independent: the defoci of one simulated
  structure, the frames of one video, the tiles of one recording. Each item's difference is
  averaged within its *unit* (the structure, the video, the recording, or the image where every
  image is its own source), and the interval is the paired Student-t interval over the unit means
  (``scipy.stats.ttest_rel(...).confidence_interval()``). Every table row names its unit and how
  many there are (``unit``, ``n_units``) beside the number of items.
* **Multiplicity.** A table's comparisons form a *family*; their p-values are Holm-adjusted
  within it (:func:`holm`) and a difference is *resolved* only when its adjusted p-value is below
  ``1 - confidence``. The unadjusted interval stays beside it (it excludes 0 exactly when the
  unadjusted p-value is below ``1 - confidence``).

Pairing removes the item-to-item spread that dominates the per-method standard deviations of a
PSNR table; averaging within units keeps correlated items from passing for independent evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

ITEM = "item"
"""The unit name of a comparison whose items are their own units."""


def format_interval(mean: float, low: float, high: float, unit: str = "dB") -> str:
    """E.g. ``+0.08 dB [-0.12, +0.28]``."""
    return f"{mean:+.2f} {unit} [{low:+.2f}, {high:+.2f}]".replace(" ]", "]").strip()


def count_units(count: int, unit: str) -> str:
    """E.g. ``1 structure``, ``8 structures``: how many independent units a difference rests on."""
    return f"{int(count)} {unit}{'' if int(count) == 1 else 's'}"


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over paired units with its confidence interval and p-values.

    ``mean`` is the mean of the unit means; ``low``/``high`` the unadjusted interval at
    ``confidence``; ``p_value`` the two-sided paired t-test over units and ``p_adjusted`` its
    Holm-adjusted value within the table's family (equal to ``p_value`` until adjusted);
    ``standard_error`` that of ``mean`` over the units (NaN with fewer than two; not a table
    column of :meth:`as_dict`).
    """

    mean: float
    low: float
    high: float
    items: int
    units: int
    unit: str = ITEM
    p_value: float = float("nan")
    p_adjusted: float = float("nan")
    confidence: float = 0.95
    standard_error: float = field(default=float("nan"), compare=False)  # derived from the interval (from_record)

    @property
    def resolved(self) -> bool:
        """True when the adjusted p-value is below ``1 - confidence`` (the sign is established
        with the family's multiplicity accounted for)."""
        return bool(self.p_adjusted < 1 - self.confidence)

    def verdict(self, a: str = "A", b: str = "B") -> str:
        """``"A > B"``, ``"A < B"`` or ``"not resolved"`` (adjusted)."""
        if not self.resolved:
            return "not resolved"
        return f"{a} > {b}" if self.mean > 0 else f"{a} < {b}"

    def format(self, unit: str = "dB") -> str:
        """E.g. ``+0.08 dB [-0.12, +0.28]`` (the unadjusted interval at :attr:`confidence`)."""
        return format_interval(self.mean, self.low, self.high, unit)

    def as_dict(self, prefix: str = "diff") -> dict[str, Any]:
        """Table columns: ``<prefix>_mean/_low/_high/_items/_p/_p_holm/_resolved`` and the
        unprefixed ``unit`` and ``n_units`` (one difference per table row)."""
        values = asdict(self)
        out: dict[str, Any] = {f"{prefix}_{key}": values[key] for key in ("mean", "low", "high", "items")}
        out |= {"unit": self.unit, "n_units": self.units, f"{prefix}_p": self.p_value,
                f"{prefix}_p_holm": self.p_adjusted, f"{prefix}_resolved": self.resolved}
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any], prefix: str = "diff") -> "PairedDifference":
        """The difference stored in a table row by :meth:`as_dict` (same ``prefix``); its standard
        error, not a column, is the (95%, as :meth:`as_dict` stores) interval's half-width over
        the Student-t quantile."""
        mean, low, high = (float(record[f"{prefix}_{key}"]) for key in ("mean", "low", "high"))
        units = int(record["n_units"])
        standard_error = float("nan")
        if units > 1 and np.isfinite(high):
            from scipy import stats

            standard_error = (high - mean) / float(stats.t.ppf(0.975, units - 1))
        return cls(mean, low, high, int(record[f"{prefix}_items"]), units, str(record["unit"]),
                   float(record[f"{prefix}_p"]), float(record[f"{prefix}_p_holm"]), standard_error=standard_error)


def unit_means(values: Sequence[float], units: Sequence[Any] | None) -> np.ndarray:
    """The mean of ``values`` within each unit (first-appearance order); ``values`` themselves
    when ``units`` is None (each item its own unit). NaN values are dropped first."""
    values = np.asarray(values, dtype=np.float64)
    if units is None:
        return values[np.isfinite(values)]
    frame = pd.DataFrame({"value": values, "unit": np.asarray(units, dtype=object)})
    frame = frame[np.isfinite(frame["value"])]
    return frame.groupby("unit", sort=False)["value"].mean().to_numpy()


def metadata_units(metadata: pd.DataFrame, n_items: int) -> tuple[list[str], str]:
    """The independent unit of each item of a split and what a unit is, from its metadata table:
    the simulated structure of TEM images (all its defoci together: ``"structure"``), the video of
    frames (one metadata row per frame: ``"video"``), else each item itself (``"image"``)."""
    per_item = metadata.groupby("item", sort=True).first() if "item" in metadata else metadata
    frames = "item" in metadata and bool(metadata["item"].duplicated().any())
    if "structure_id" in per_item:
        labels = [str(label) for label in per_item["structure_id"]]
    else:
        labels = [str(index) for index in range(len(per_item))]
    kind = "video" if frames else "structure" if "structure_id" in per_item else "image"
    if len(labels) != n_items:
        raise ValueError(f"metadata describes {len(labels)} items, the stack has {n_items}")
    return labels, kind


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    units: Sequence[Any] | None = None,
    *,
    unit: str = ITEM,
    confidence: float = 0.95,
) -> PairedDifference:
    """Paired difference ``a - b`` over independent units with a Student-t interval.

    ``units``: the unit of each item (e.g. its structure or video); None makes every item its own
    unit. Pairs with a NaN are dropped. With one unit the interval is unbounded and nothing is
    resolved; when every unit has the same difference the interval collapses to the mean.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired_difference expects two 1-D sequences of equal length, got {a.shape} and {b.shape}")
    if units is not None and len(units) != a.size:
        raise ValueError(f"paired_difference: {len(units)} units for {a.size} items")
    finite = np.isfinite(a - b)
    items = int(finite.sum())
    kept_units = None if units is None else np.asarray(units, dtype=object)[finite]
    mean_a, mean_b = unit_means(a[finite], kept_units), unit_means(b[finite], kept_units)
    n = mean_a.size
    if n == 0:
        return PairedDifference(np.nan, np.nan, np.nan, 0, 0, unit, np.nan, np.nan, confidence)
    diff = mean_a - mean_b
    mean = float(diff.mean())
    if n == 1:
        return PairedDifference(mean, -np.inf, np.inf, items, 1, unit, 1.0, 1.0, confidence)
    if np.ptp(diff) == 0:  # no spread: the t statistic is undefined, the sign is certain unless 0
        p_value = 1.0 if mean == 0 else 0.0
        return PairedDifference(mean, mean, mean, items, n, unit, p_value, p_value, confidence, 0.0)
    # imported here: scipy.stats costs ~1.3 s, paid by every denoise / evaluate job otherwise
    from scipy import stats

    test = stats.ttest_rel(mean_a, mean_b)
    low, high = test.confidence_interval(confidence)
    p_value = float(test.pvalue)
    standard_error = float(diff.std(ddof=1) / np.sqrt(n))
    return PairedDifference(mean, float(low), float(high), items, n, unit, p_value, p_value, confidence, standard_error)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries stay NaN and do not count):
    the k-th smallest of m is multiplied by ``m - k + 1``, made non-decreasing and capped at 1.
    It controls the family-wise error rate without assuming independence (Holm, Scand. J. Stat. 1979)."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    defined = np.flatnonzero(np.isfinite(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def adjust_family(
    table: pd.DataFrame, family: Sequence[str] = (), prefix: str = "diff", names: tuple[str, str] = ("a", "b")
) -> pd.DataFrame:
    """Holm-adjust the differences of a table (rows written by :meth:`PairedDifference.as_dict`)
    within each family (rows sharing the ``family`` columns; all rows when empty) and rewrite
    ``<prefix>_p_holm``, ``<prefix>_resolved`` and, where the table has the ``names`` columns of
    the compared methods, ``verdict``."""
    table = table.copy()
    if table.empty:
        return table
    groups = [part.index for _, part in table.groupby(list(family), sort=False)] if family else [table.index]
    for index in groups:
        table.loc[index, f"{prefix}_p_holm"] = holm(table.loc[index, f"{prefix}_p"].to_numpy(dtype=float))
    results = [PairedDifference.from_record(row, prefix) for _, row in table.iterrows()]
    table[f"{prefix}_resolved"] = [result.resolved for result in results]
    if set(names) <= set(table.columns):
        table["verdict"] = [result.verdict(a, b) for result, a, b in zip(results, *(table[name] for name in names))]
    return table


DIFF_COLUMNS = ["diff_mean", "diff_low", "diff_high", "diff_items", "unit", "n_units", "diff_p", "diff_p_holm",
                "diff_resolved", "verdict"]
"""The difference columns of a pairs table, after its ``by`` keys and ``a``, ``b``."""


def paired_table(
    tidy: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    *,
    by: Sequence[str] = ("noise",),
    item: Sequence[str] = ("image",),
    method: str = "method",
    score: str = "psnr",
    family: Sequence[str] | None = (),
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Paired differences ``score(a) - score(b)`` for each ``(a, b)`` in ``pairs`` within each group.

    ``tidy`` has one row per item x method (x group); items are matched on the ``item`` columns.
    Where ``tidy`` has ``unit`` (the item's independent unit) and ``unit_kind`` (what a unit is:
    "structure", "video", "image") columns, differences are over units; otherwise each item is its
    own unit. Pairs whose methods are absent from a group are skipped. The differences are
    Holm-adjusted within ``family`` (:func:`adjust_family`; None leaves them unadjusted, for a
    caller that adjusts a larger table). Columns: the ``by`` keys, ``a``, ``b``, :data:`DIFF_COLUMNS`.
    """
    rows = []
    groups = tidy.groupby(list(by), sort=False) if by else [((), tidy)]
    has_units = "unit" in tidy.columns
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        wide = part.pivot_table(index=list(item), columns=method, values=score, aggfunc="first")
        units, kind = None, ITEM
        if has_units:
            labels = part.drop_duplicates(list(item)).set_index(list(item))
            units = labels.loc[wide.index, "unit"].to_numpy()
            kind = str(labels["unit_kind"].iloc[0]) if "unit_kind" in labels else "unit"
        for a, b in pairs:
            if a not in wide.columns or b not in wide.columns:
                continue
            result = paired_difference(wide[a].to_numpy(), wide[b].to_numpy(), units, unit=kind, confidence=confidence)
            rows.append({**dict(zip(by, key)), "a": a, "b": b, **result.as_dict(), "verdict": result.verdict(a, b)})
    table = pd.DataFrame(rows, columns=[*by, "a", "b", *DIFF_COLUMNS])
    return table if family is None else adjust_family(table, family)


TRAINING_SEED = "training_seed"
"""The column naming the training seed of a network's scores (config ``training_seeds``)."""

SEED_COLUMNS = ["seeds", "seed_mean", "seed_min", "seed_max", "resolved_seeds", "unit", "n_units", "verdict"]
"""Columns of :func:`across_seeds` after its keys and the compared names."""


def across_seeds(pairs: pd.DataFrame, by: Sequence[str] = (), names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """Each comparison of a pairs table over its training seeds (rows per ``training_seed``, with
    family-adjusted verdicts): how many seeds, the mean, smallest and largest difference over them,
    in how many seeds it is resolved, and the verdict that survives a change of training seed: an
    ordering only where *every* seed resolves it in the same direction, else "not resolved"."""
    rows = []
    for key, part in pairs.groupby([*by, *names], sort=False):
        a, b = key[-2:]
        means = part["diff_mean"].to_numpy(dtype=float)
        mean = float(means.mean())
        resolved = part["diff_resolved"].astype(bool)
        agree = bool(resolved.all() and (np.sign(means) == np.sign(mean)).all() and mean != 0)
        verdict = (f"{a} > {b}" if mean > 0 else f"{a} < {b}") if agree else "not resolved"
        rows.append({**dict(zip([*by, *names], key)), "seeds": len(part), "seed_mean": mean, "seed_min": means.min(),
                     "seed_max": means.max(), "resolved_seeds": int(resolved.sum()),
                     "unit": part["unit"].iloc[0], "n_units": int(part["n_units"].min()), "verdict": verdict})
    return pd.DataFrame(rows, columns=[*by, *names, *SEED_COLUMNS])
