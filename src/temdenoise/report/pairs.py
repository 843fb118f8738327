"""Which pairs of methods a table compares, and how the paired differences are shown.

Every table that lists methods in PSNR order invites the reading "each beats the next one". The
tables therefore report, beside the means, the paired difference of each method and the
next-ranked one (and of the study's named comparisons) over the same test items, averaged within
each independent unit (structure, video, image) with its 95% Student-t interval over the units
and its p-value Holm-adjusted within the table's family (:mod:`temdenoise.stats`). The adjusted
verdict, not the order of the means, says whether an ordering is established.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from temdenoise.registry import replicate_of
from temdenoise.stats import DIFF_COLUMNS, ITEM, TRAINING_SEED, PairedDifference, adjust_family, count_units, paired_table

PAIR_COLUMNS = ["a", "b", *DIFF_COLUMNS, "next_ranked", "named", "claim"]


def delta_note(family: str = "this table") -> str:
    """The sentence every table with a Δ column states in its header or caption."""
    return ("Δ = paired difference averaged within each independent unit (structure, video or image: column "
            "units), mean [unadjusted 95% t-interval over the units]; verdicts are Holm-adjusted over the "
            f"comparisons of {family}: 'not resolved' unless the adjusted p < 0.05")


def adjacent_pairs(order: Sequence[str]) -> list[tuple[str, str]]:
    """``(method, next-ranked method)`` for each consecutive pair of ``order`` (best first)."""
    return list(zip(order[:-1], order[1:]))


def compare_pairs(
    items: pd.DataFrame,
    orders: Mapping[Any, Sequence[str]],
    named: Sequence[tuple[str, str]] = (),
    *,
    by: Sequence[str],
    item: Sequence[str],
    family: Sequence[str] = (),
    claims: Mapping[tuple[str, str], str] = {},
) -> pd.DataFrame:
    """Paired PSNR differences per group: each method vs the next-ranked, plus the ``named`` pairs.

    ``items``: one row per test item x method x group (the per-image or per-frame metric rows, with
    their ``unit`` columns). ``orders`` maps each group key (the values of ``by``, a tuple) to its
    methods, best first, as the table shows them. A pair that is both adjacent and named appears
    once with both flags set. Verdicts are Holm-adjusted within ``family`` (all rows when empty).
    ``claims`` tags named pairs with the study's claim they test (:data:`temdenoise.claims.CLAIMS`;
    column ``claim``, empty for the others).
    """
    rows = []
    for key, part in items.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        adjacent = adjacent_pairs(orders.get(key, []))
        pairs = list(dict.fromkeys([*adjacent, *named]))
        table = paired_table(part, pairs, by=by, item=item, family=None)
        table["next_ranked"] = [pair in adjacent for pair in zip(table["a"], table["b"])]
        table["named"] = [pair in named for pair in zip(table["a"], table["b"])]
        table["claim"] = [claims.get(pair, "") for pair in zip(table["a"], table["b"])]
        rows.append(table)
    if not rows:
        return pd.DataFrame(columns=[*by, *PAIR_COLUMNS])
    return adjust_family(pd.concat(rows, ignore_index=True)[[*by, *PAIR_COLUMNS]], family)


def by_training_seed(tidy: pd.DataFrame, main_seed: int, method: str = "method") -> pd.DataFrame:
    """Scores of methods and their replicates (``unet_s4~seed1``: :func:`temdenoise.registry.replicate_name`)
    as rows of the base method with a ``training_seed`` column: a method's own rows at ``main_seed``
    (the config's master seed), a replicate's at its seed, and the rows of every method without
    replicates (classical methods, the noisy input: no training seed) repeated at every seed, so
    that each seed's comparisons are complete."""
    parsed = [replicate_of(name) for name in tidy[method]]
    out = tidy.assign(**{method: [model for model, _ in parsed],
                         TRAINING_SEED: [main_seed if seed is None else seed for _, seed in parsed]})
    replicated = set(out.loc[out[TRAINING_SEED] != main_seed, method])
    fixed = out[~out[method].isin(replicated)]
    others = sorted(set(out[TRAINING_SEED]) - {main_seed})
    return pd.concat([out, *(fixed.assign(**{TRAINING_SEED: seed}) for seed in others)], ignore_index=True)


def seeds_display(summary: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """The comparisons over training seeds (:func:`temdenoise.stats.across_seeds`) as text columns."""
    return pd.DataFrame({
        **{key: summary[key] for key in by},
        "A − B": [f"{a} − {b}" for a, b in zip(summary["a"], summary["b"])],
        "Δ PSNR mean over seeds [min, max] (dB)": [f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]" for m, lo, hi in
                                                  zip(summary["seed_mean"], summary["seed_min"], summary["seed_max"])],
        "resolved in": [f"{r} of {n} seeds" for r, n in zip(summary["resolved_seeds"], summary["seeds"])],
        "verdict (every seed)": summary["verdict"],
    })


def seeds_note() -> str:
    """The sentence under every table of comparisons over training seeds."""
    return ("Each network trained with every training seed (config training_seeds); an ordering is stated only "
            "where the Holm-adjusted comparison over the units resolves it in the same direction for every seed")


def format_delta(row: Mapping[str, Any]) -> str:
    """``+0.31 dB [+0.12, +0.50]``, followed by "not resolved" when the interval includes 0."""
    result = PairedDifference.from_record(row)
    return result.format() + ("" if result.resolved else " not resolved")


def units_cell(row: Mapping[str, Any]) -> str:
    """``3 videos (21 items)``: the independent units of a difference and the items they hold
    (``6 items`` where each item is its own unit)."""
    units, unit, items = int(row["n_units"]), str(row["unit"]), int(row["diff_items"])
    named = count_units(units, unit)
    return named if unit == ITEM else f"{named} ({items} items)"


def pairs_display(pairs: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """The pairs as text columns for Markdown / LaTeX: the ``by`` keys, ``A − B``, Δ, units,
    Holm-adjusted p, verdict."""
    return pd.DataFrame({
        **{key: pairs[key] for key in by},
        "A − B": [f"{a} − {b}" for a, b in zip(pairs["a"], pairs["b"])],
        "Δ PSNR (95% CI)": [format_delta(row) for _, row in pairs.iterrows()],
        "units": [units_cell(row) for _, row in pairs.iterrows()],
        "p (Holm)": [f"{p:.3g}" for p in pairs["diff_p_holm"]],
        "verdict": pairs["verdict"],
    })


def _twin_key(entry: Mapping[str, Any]) -> tuple:
    """What a bias-free network shares with its biased twin: family, recipe, training noise, training
    objective (supervised or self-supervised) and every parameter except ``bias_free`` and the
    ``offset`` a bias-free net works about."""
    params = {k: v for k, v in entry.get("params", {}).items() if k not in ("bias_free", "offset")}
    return (entry["family"], repr(sorted(params.items())), repr(entry.get("train_noise")), entry.get("training"),
            repr(entry.get("objective")))


def homogeneity_label(info: Mapping[str, Any]) -> str:
    """How a table row's network scales with its input, from its ``info.json`` facts
    (:func:`temdenoise.models.homogeneity_facts`): "homogeneous" (bias-free, f(a y) = a f(y)),
    "homogeneous about offset o" (bias-free about a constant o), "" otherwise."""
    if not info.get("bias_free"):
        return ""
    offset = float(info.get("offset", 0.0))
    return "homogeneous" if offset == 0 else f"homogeneous about offset {offset:g}"


def bias_free_twins(entries: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``(bias-free method, biased twin)`` for every bias-free entry whose twin is among ``entries``."""
    biased = {_twin_key(e): name for name, e in entries.items() if not e.get("params", {}).get("bias_free")}
    return [
        (name, biased[_twin_key(entry)])
        for name, entry in entries.items()
        if entry.get("params", {}).get("bias_free") and _twin_key(entry) in biased
    ]
