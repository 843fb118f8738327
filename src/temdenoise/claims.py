"""The study's claims, each read from the table rows of a run that test it.

Every named comparison a table makes is tagged with the claim it tests (column ``claim`` of the
``*_pairs.csv`` tables and of ``fov_gain.csv``). :func:`claim_rows` collects those rows from a
run's tables and :func:`write_claims` writes, per claim, the seed's figure beside this run's rows: the
table and row each comes from, the paired difference over the independent units with its interval,
and the Holm-adjusted verdict (over every training seed where the table has several:
:func:`temdenoise.stats.across_seeds`). README's claims table is this file, copied by
:mod:`temdenoise.docs_fill`; nothing in it is typed by hand.

Rule ``claims`` writes ``results/tables/claims.md`` and ``.csv``, and the claims table alone in
``claims_summary.md`` (README's); ``python -m temdenoise.claims
RESULTS_DIR`` rebuilds them from the tables a run left in ``RESULTS_DIR/tables``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from temdenoise.io import save_table, save_text
from temdenoise.stats import TRAINING_SEED, across_seeds, count_units, format_interval


@dataclass(frozen=True)
class Claim:
    """One of the study's claims: what it says (A beats B) and the seed's figure for it."""

    statement: str
    seed_figure: str


FOV = "fov"
CNN_CLASSICAL = "cnn_vs_classical"
BIAS_FREE = "bias_free"
FRAMES = "udvd_frames"

CLAIMS = {
    FOV: Claim("A UNet with a large field of view beats a DnCNN on TEM images (the lattice)",
               "+5.9 dB: 221-px UNet 36.39 vs 41-px DnCNN 30.47 dB; 893 px: 42.87 dB"),
    CNN_CLASSICAL: Claim("A supervised CNN beats the Wiener filter on TEM images",
                         "DnCNN 30.47 dB (no classical row in the seed's table)"),
    BIAS_FREE: Claim("A bias-free network generalises beyond its training noise levels",
                     "BF-DnCNN 23.56 vs DnCNN 15.43 dB at sigma 100, trained on sigma 0-55"),
    FRAMES: Claim("UDVD denoises videos better with more input frames (5 > 3 > 1)",
                  "DAVIS sigma 30: 33.92 / 33.48 / 32.80 dB with 5 / 3 / 1 frames"),
}
"""The claims tables tag their named comparisons with (keys), in reading order."""

CONDITIONS = ("dataset", "noise")
"""Columns that name the condition of a row, where a table has them."""


def claim_rows(paths: Sequence[Path]) -> pd.DataFrame:
    """Every tagged comparison of the tables at ``paths`` (``*_pairs.csv``, ``fov_gain.csv``):
    columns ``claim``, ``table``, the condition, ``a``, ``b`` and the difference columns; a table
    with several training seeds gives one row per comparison over the seeds."""
    parts = []
    for path in paths:
        table = pd.read_csv(path).rename(columns={"model": "a", "reference": "b"})
        if "claim" not in table:
            continue
        table = table[table["claim"].isin(list(CLAIMS))]
        if table.empty:
            continue
        keys = ["claim", *(c for c in CONDITIONS if c in table)]
        seeded = TRAINING_SEED in table and table[TRAINING_SEED].nunique() > 1
        rows = across_seeds(table, by=keys) if seeded else table.assign(
            seeds=1, seed_mean=table["diff_mean"], seed_min=table["diff_mean"], seed_max=table["diff_mean"])
        parts.append(rows.assign(table=path.name, interval=_interval(rows, seeded)))
    if not parts:
        return pd.DataFrame(columns=["claim", "table", *CONDITIONS, "a", "b", "verdict"])
    return pd.concat(parts, ignore_index=True)


def _interval(rows: pd.DataFrame, seeded: bool) -> list[str]:
    """The difference cell: mean [95% CI] over units, or over seeds: mean [smallest, largest]."""
    if seeded:
        return [f"{format_interval(m, lo, hi)} over {n} seeds (min, max)"
                for m, lo, hi, n in zip(rows["seed_mean"], rows["seed_min"], rows["seed_max"], rows["seeds"])]
    return [format_interval(m, lo, hi) for m, lo, hi in zip(rows["diff_mean"], rows["diff_low"], rows["diff_high"])]


def outcome(rows: pd.DataFrame) -> str:
    """A claim's outcome over its rows: "reproduced" where every row's verdict is the claimed
    ordering, "opposite" where any row resolves the other way, "not resolved" otherwise."""
    if rows.empty:
        return "not measured"
    claimed = [f"{a} > {b}" for a, b in zip(rows["a"], rows["b"])]
    if (rows["verdict"] == claimed).all():
        return "reproduced"
    opposite = [f"{a} < {b}" for a, b in zip(rows["a"], rows["b"])]
    if (rows["verdict"] == opposite).any():
        return "opposite in " + ", ".join(sorted({str(n) for n in rows.loc[rows["verdict"] == opposite].get(
            "noise", pd.Series(["a row"]))}))
    return f"resolved in {int((rows['verdict'] == claimed).sum())} of {len(rows)} rows"


def spread(rows: pd.DataFrame) -> str:
    """A claim's differences in one cell: their range over its rows and the units each rests on,
    e.g. ``-0.42 to +0.56 dB, 6 rows over 8 structures`` ("–" where nothing measured it)."""
    if rows.empty:
        return "–"
    means = rows["seed_mean"] if "seed_mean" in rows else rows["diff_mean"]
    units = ", ".join(sorted({count_units(n, u) for n, u in zip(rows["n_units"], rows["unit"])}))
    return f"{means.min():+.2f} to {means.max():+.2f} dB, {count_units(len(rows), 'row')} over {units}"


def claims_summary(rows: pd.DataFrame, run: str) -> str:
    """The claims table: one line per claim, the seed's figure and this run's outcome."""
    summary = pd.DataFrame({
        "claim": [CLAIMS[key].statement for key in CLAIMS],
        "the seed": [CLAIMS[key].seed_figure for key in CLAIMS],
        "this run: Δ PSNR": [spread(rows[rows["claim"] == key]) for key in CLAIMS],
        "verdict": [outcome(rows[rows["claim"] == key]) for key in CLAIMS],
    })
    return (f"Claims of the study and what {run} shows (test split; Δ = paired difference over the independent "
            "units, Holm-adjusted verdict; docs/statistics.md).\n\n" + summary.to_markdown(index=False) + "\n")


def claims_markdown(rows: pd.DataFrame, run: str) -> str:
    """The claims table (:func:`claims_summary`) and, per claim, the rows it is read from."""
    parts = [claims_summary(rows, run)]
    for key in CLAIMS:
        part = rows[rows["claim"] == key]
        if part.empty:
            continue
        shown = pd.DataFrame({
            "table": part["table"],
            **{column: part[column] for column in CONDITIONS if column in part and part[column].notna().any()},
            "A − B": [f"{a} − {b}" for a, b in zip(part["a"], part["b"])],
            "Δ PSNR": part["interval"],
            "units": [count_units(n, u) for n, u in zip(part["n_units"], part["unit"])],
            "verdict": part["verdict"],
        })
        parts.append(f"\n{CLAIMS[key].statement}:\n\n{shown.to_markdown(index=False)}\n")
    return "".join(parts)


def write_claims(paths: Sequence[Path], csv: str, markdown: str, summary: str, run: str) -> None:
    """The claims of the tables at ``paths``: their rows (``csv``), the claims table with the rows
    each claim is read from (``markdown``) and the claims table alone (``summary``)."""
    rows = claim_rows(paths)
    save_table(csv, rows)
    save_text(markdown, claims_markdown(rows, run))
    save_text(summary, claims_summary(rows, run))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a run's results directory")
    parser.add_argument("--run", default="this run", help="how the table names the run (config, seed)")
    args = parser.parse_args(argv)
    tables = args.results / "tables"
    paths = sorted(path for path in [*tables.glob("*_pairs.csv"), tables / "fov_gain.csv"] if path.is_file())
    write_claims(paths, str(tables / "claims.csv"), str(tables / "claims.md"), str(tables / "claims_summary.md"),
                 args.run)


if __name__ == "__main__":
    main()
