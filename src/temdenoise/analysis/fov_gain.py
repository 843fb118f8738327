"""The field-of-view gain against the FoV in angstroms, across the TEM datasets of a config.

Mohan et al., "Deep denoising for scientific discovery" (IEEE TCI 2022), table 2: on simulated
Pt/CeO2 images a UNet with a 221 px FoV beats a 41 px DnCNN by 5.9 dB and one with an 893 px FoV
by 12.4 dB, a gain the authors attribute to the periodic support lattice a large FoV can average.
A FoV in pixels is not comparable across pixel sizes (:mod:`temdenoise.fov_units`), so the gain is
set here against the FoV in angstroms (and projected support cells): one point per (dataset,
UNet, noise condition), the paired PSNR difference UNet - DnCNN over the test structures (each
structure's images averaged: they share the particle) with its 95% interval and a verdict
Holm-adjusted over the table (:mod:`temdenoise.stats`). The PSNR is the paper's ``seed_counts``
convention (counts at the dataset's base dose, whatever the condition's: :mod:`temdenoise.metrics`)
unless the config's ``metrics.tem_psnr`` leaves it out, then ``range``; each row names the one it uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.axis  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from temdenoise.benchmark import collect_metrics, noise_order  # noqa: E402
from temdenoise.claims import FOV  # noqa: E402
from temdenoise.fov_units import PROJECTED_CELL_AREA, FovScale, fov_scale  # noqa: E402
from temdenoise.io import save_table, save_text  # noqa: E402
from temdenoise.noise import parse_condition  # noqa: E402
from temdenoise.plots import save_figure  # noqa: E402
from temdenoise.registry import supervised_biased  # noqa: E402
from temdenoise.report.pairs import (  # noqa: E402
    by_training_seed, delta_note, format_delta, seeds_display, seeds_note, units_cell,
)
from temdenoise.report.tem_table import fov_text  # noqa: E402
from temdenoise.stats import DIFF_COLUMNS, TRAINING_SEED, across_seeds, adjust_family, paired_table  # noqa: E402

CONVENTIONS = ("seed_counts", "range")
"""PSNR conventions of the gain, in order of preference (the seed's first): the first one scored is used."""

COLUMNS = ["dataset", "noise", TRAINING_SEED, "counts_per_pixel", "model", "reference", "convention",
           "fov", "fov_angstrom", "fov_cells", "reference_fov", "reference_fov_angstrom", "reference_fov_cells",
           "pixel_size", "support", *DIFF_COLUMNS, "claim"]


def gain_pairs(entries: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``(UNet, DnCNN)`` for every biased supervised UNet and DnCNN among ``entries`` (the seed's comparison)."""
    return [(unet, dncnn) for unet in supervised_biased(entries, "unet") for dncnn in supervised_biased(entries, "dncnn")]


def gain_convention(columns: Sequence[str]) -> str:
    """The first of :data:`CONVENTIONS` with a ``psnr_<name>`` column among ``columns`` (those of the
    per-image metrics; the schema requires one of them)."""
    return next(name for name in CONVENTIONS if f"psnr_{name}" in columns)


def counts_per_pixel(noise: str, pixel_size: float) -> float:
    """Expected electrons per vacuum pixel of a Poisson condition (dose x pixel area; it describes the
    condition: ``seed_counts`` scores at the base dose whatever it is); NaN otherwise."""
    condition = parse_condition(noise)
    return condition.level * pixel_size**2 if condition.kind == "poisson" else np.nan


def dataset_gains(
    tidy: pd.DataFrame,
    fov: Mapping[str, int],
    scale: FovScale,
    pairs: Sequence[tuple[str, str]],
) -> pd.DataFrame:
    """The FoV gains of one dataset: a row per (noise condition, training seed, pair) of ``pairs``
    scored in ``tidy`` (its per-image metrics with a ``training_seed`` column), with both networks'
    FoVs (``fov``, px) in px, A and cells."""
    rows, convention = [], gain_convention(tidy.columns)
    for (noise, seed), part in tidy.groupby(["noise", TRAINING_SEED], sort=False):
        for model, reference in pairs:
            scores = part[part["method"].isin([model, reference])]
            if set(scores["method"]) != {model, reference}:
                continue
            (pair,) = paired_table(scores, [(model, reference)], by=["noise"], score=f"psnr_{convention}",
                                   family=None).to_dict("records")
            rows.append({
                **pair, "claim": FOV, TRAINING_SEED: seed, "model": model, "reference": reference, "convention": convention,
                "counts_per_pixel": counts_per_pixel(noise, scale.pixel_size),
                "fov": fov[model], "fov_angstrom": scale.angstrom(fov[model]), "fov_cells": scale.cells(fov[model]),
                "reference_fov": fov[reference], "reference_fov_angstrom": scale.angstrom(fov[reference]),
                "reference_fov_cells": scale.cells(fov[reference]),
                "pixel_size": scale.pixel_size, "support": scale.support,
            })
    return pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "dataset"])


def fov_gain_table(
    tidy: pd.DataFrame,
    fov: Mapping[tuple[str, str], int],
    scales: Mapping[str, FovScale],
    pairs: Mapping[str, Sequence[tuple[str, str]]],
) -> pd.DataFrame:
    """The gains of every dataset of ``scales`` (per-image metrics ``tidy`` with ``dataset`` and
    ``training_seed`` columns, FoVs by (dataset, model)), by dataset, highest dose first, FoV
    ascending, then training seed; verdicts Holm-adjusted over the whole table (one family)."""
    parts = []
    for dataset, scale in scales.items():
        networks = {model: px for (name, model), px in fov.items() if name == dataset}
        gains = dataset_gains(tidy[tidy["dataset"] == dataset], networks, scale, pairs[dataset])
        parts.append(gains.assign(dataset=dataset))
    table = pd.concat(parts, ignore_index=True)[COLUMNS] if parts else pd.DataFrame(columns=COLUMNS)
    table["order"] = noise_order(table["noise"]) if len(table) else []
    table = table.sort_values(["dataset", "order", "fov_angstrom", TRAINING_SEED], kind="stable")
    return adjust_family(table.drop(columns="order").reset_index(drop=True), names=("model", "reference"))


def _markdown(table: pd.DataFrame) -> str:
    seeded = table[TRAINING_SEED].nunique() > 1
    display = pd.DataFrame({
        "dataset": table["dataset"],
        "noise": table["noise"],
        **({"training seed": table[TRAINING_SEED]} if seeded else {}),
        "counts/px": table["counts_per_pixel"].map(lambda c: "–" if pd.isna(c) else f"{c:.3g}"),
        "A − B": [f"{a} − {b}" for a, b in zip(table["model"], table["reference"])],
        "FoV A (px / Å / cells)": [f"{int(px)} / {fov_text(a, 1)} / {fov_text(c, 1)}" for px, a, c in
                                   zip(table["fov"], table["fov_angstrom"], table["fov_cells"])],
        "FoV B (px / Å / cells)": [f"{int(px)} / {fov_text(a, 1)} / {fov_text(c, 1)}" for px, a, c in
                                   zip(table["reference_fov"], table["reference_fov_angstrom"],
                                       table["reference_fov_cells"])],
        "PSNR": table["convention"],
        "Δ PSNR (95% CI)": [format_delta(row) for _, row in table.iterrows()],
        "units": [units_cell(row) for _, row in table.iterrows()],
        "verdict": table["verdict"],
    })
    return ("# FoV gain: UNet − DnCNN on the TEM test images against the FoV in angstroms\n\n"
            "PSNR: `seed_counts` (the TEM paper's: counts per pixel at the dataset's base dose, clamped to "
            "[0, 1] count) when the metrics score it, else `range` (column PSNR). FoV: measured gradient "
            "support, in px, in Å at the test pixel, and in "
            f"projected support cells ((FoV in Å)² / projected cell area). {delta_note('the whole table')}.\n\n"
            + display.to_markdown(index=False) + "\n" + (_seeds_markdown(table) if seeded else ""))


def _seeds_markdown(table: pd.DataFrame) -> str:
    """The gains over the training seeds: the verdict that survives a change of seed."""
    robust = across_seeds(table, by=["dataset", "noise"], names=("model", "reference")).rename(
        columns={"model": "a", "reference": "b"})
    return (f"\n## Over the training seeds\n\n{seeds_note()}.\n\n"
            + seeds_display(robust, by=["dataset", "noise"]).to_markdown(index=False) + "\n")


def plain_log_ticks(axis: matplotlib.axis.Axis) -> None:
    """Ticks of a log axis at 1, 2 and 5 per decade, written as plain numbers (the FoV spans one or two decades)."""
    axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def plot_fov_gain(table: pd.DataFrame, png: str, svg: str | None = None) -> None:
    """Gain (dB, 95% interval) against the UNet's FoV in angstroms (log axis), a colour per dataset
    and a marker per noise condition; the DnCNN's FoV of each dataset dotted (gain 0 there), and
    the FoV in projected support cells on the top axis when every dataset has the same support."""
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    colours = dict(zip(table["dataset"].unique(), plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4))
    noises = list(table["noise"].unique())
    markers = dict(zip(noises, "osD^vP*Xh<>" * 4))
    # conditions share a network's FoV: each is drawn a few percent apart so the intervals stay readable
    dodge = {noise: 1.04 ** (i - (len(noises) - 1) / 2) for i, noise in enumerate(noises)}
    for (dataset, noise), part in table.groupby(["dataset", "noise"], sort=False):
        error = np.array([part["diff_mean"] - part["diff_low"], part["diff_high"] - part["diff_mean"]])
        axis.errorbar(part["fov_angstrom"] * dodge[noise], part["diff_mean"], yerr=np.nan_to_num(error, posinf=0.0),
                      fmt=markers[noise], color=colours[dataset], capsize=3,
                      label=f"{dataset}, {noise} ({', '.join(part['convention'].unique())})")
        for x, y, model in zip(part["fov_angstrom"] * dodge[noise], part["diff_mean"], part["model"]):
            axis.annotate(model, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=colours[dataset])
    for dataset, part in table.groupby("dataset", sort=False):
        axis.axvline(part["reference_fov_angstrom"].iloc[0], color=colours[dataset], linestyle=":", linewidth=1)
    axis.axhline(0.0, color="grey", linewidth=0.8)
    axis.set_xscale("log")
    plain_log_ticks(axis.xaxis)
    axis.set_xlabel("UNet field of view (Å; dotted: the DnCNN's)")
    axis.set_ylabel("PSNR gain UNet − DnCNN (dB, 95% CI)")
    supports = table["support"].dropna().unique()
    if len(supports) == 1 and table["support"].notna().all():
        area = PROJECTED_CELL_AREA[supports[0]]
        top = axis.secondary_xaxis("top", functions=(lambda a: np.asarray(a) ** 2 / area,
                                                     lambda c: np.sqrt(np.clip(c, 0, None) * area)))
        top.set_xlabel(f"projected {supports[0]} cells covered")
        plain_log_ticks(top.xaxis)
    axis.legend(fontsize=7, loc="best")
    save_figure(figure, png, svg)


def write_fov_gain(
    metric_paths: Sequence[str],
    info_paths: Mapping[tuple[str, str], str],
    metadata_paths: Mapping[str, str],
    entries: Mapping[str, Mapping[str, Mapping[str, Any]]],
    out: Mapping[str, str],
    main_seed: int = 0,
) -> pd.DataFrame:
    """Build the FoV-gain table from per-image metric CSVs (the networks' and their replicates',
    :func:`temdenoise.report.pairs.by_training_seed`), the networks' ``info.json`` (by (dataset,
    model)), each dataset's test metadata (its pixel and support) and method entries (by dataset,
    as used on it: :func:`gain_pairs`), and write it (``out``: ``csv``, ``markdown``, ``png``, ``svg``;
    the figure shows the networks trained with the master seed ``main_seed``)."""
    fov = {key: int(json.loads(Path(path).read_text())["fov"]) for key, path in info_paths.items()}
    scales = {dataset: fov_scale(pd.read_csv(path)) for dataset, path in metadata_paths.items()}
    pairs = {dataset: gain_pairs(entries[dataset]) for dataset in scales}
    table = fov_gain_table(by_training_seed(collect_metrics(metric_paths), main_seed), fov, scales, pairs)
    save_table(out["csv"], table)
    save_text(out["markdown"], _markdown(table))
    plot_fov_gain(table[table[TRAINING_SEED] == main_seed], out["png"], out.get("svg"))
    return table
