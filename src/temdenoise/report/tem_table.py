"""The seed's "Electron Microscopy" table: every model on the Poisson TEM test set, with its
parameter count and measured field of view beside PSNR (mean +- std over images) and SSIM.

Beside each model: the paired PSNR difference to the next-ranked model over the test structures
(each structure's images together) with its 95% interval and Holm-adjusted verdict; ``tem_table_pairs.csv`` holds those and the study's named comparisons (every UNet vs
DnCNN, every supervised CNN vs Wiener, Wiener vs wavelet, each bias-free net vs its biased twin, or the pairs
of ``experiments.tem_table.pairs``). Every UNet is compared, not the best one by test PSNR: a
model picked as the best on the test images and then tested on them would win by selection.

Networks take parameters, FoV and homogeneity from the ``info.json`` written at training time
(:func:`temdenoise.train.supervised.model_info`): a bias-free row reads "homogeneous" (f(a y) =
a f(y)) or, with an offset o, "homogeneous about offset o"; the Wiener filter has ``kernel_size**2`` weights
and a ``kernel_size`` FoV; the wavelet shrinkage learns nothing and sees the whole image. Every
FoV is also given in angstroms and in projected support cells (:mod:`temdenoise.fov_units`), at the
pixel of the test split's metadata.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import pandas as pd

from temdenoise import metrics
from temdenoise.claims import CNN_CLASSICAL
from temdenoise.benchmark import collect_metrics, noise_order, score_statistics, tex_escape
from temdenoise.fov_units import FovScale, fov_scale, fov_units_note
from temdenoise.io import save_table, save_text
from temdenoise.registry import supervised_biased, supervised_networks
from temdenoise.stats import DIFF_COLUMNS
from temdenoise.report.pairs import (
    bias_free_twins, compare_pairs, delta_note, format_delta, homogeneity_label, pairs_display,
)

COLUMNS = ["noise", "model", "parameters", "fov", "fov_angstrom", "fov_cells", "homogeneity", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "images"]
"""Columns of the table; ``psnr_<name>_mean`` / ``_std`` per TEM PSNR convention follow ``psnr_std``."""
NEXT_COLUMNS = ["next_model", *DIFF_COLUMNS]


def classical_info(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters and FoV (px) of a classical method entry (None where not defined)."""
    if entry["family"] == "wiener":
        size = int(entry.get("params", {}).get("kernel_size", 0)) or None
        return {"parameters": size * size if size else None, "fov": size}
    return {"parameters": 0, "fov": None}


def claim_pairs(entries: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The study's named comparisons among ``entries``: every UNet vs every DnCNN (biased,
    supervised networks), every supervised CNN vs every Wiener filter (:func:`cnn_classical_pairs`),
    Wiener vs wavelet, then each bias-free network vs its biased twin. Self-supervised networks (an
    ``objective``) are compared with their neighbours in the table."""
    def family_pairs(upper: str, lower: str) -> list[tuple[str, str]]:
        return [(a, b) for a in supervised_biased(entries, upper) for b in supervised_biased(entries, lower)]

    return (family_pairs("unet", "dncnn") + cnn_classical_pairs(entries) + family_pairs("wiener", "wavelet")
            + bias_free_twins(entries))


def cnn_classical_pairs(entries: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Each supervised image network (biased or bias-free; no ``objective``, no video input) over each
    Wiener filter: the claim that a supervised CNN beats the Wiener filter, made for every CNN of the
    table, not for the best one on the test images. The Wiener filter is fitted per noise condition
    on the training split (it knows the dose; the networks are blind over their training range)."""
    return [(a, b) for a in supervised_networks(entries) for b in supervised_biased(entries, "wiener")]


def claim_tags(entries: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """The named comparisons that test one of the study's claims: :func:`cnn_classical_pairs` (CNN
    vs classical). UNet vs DnCNN is the FoV-gain table's claim."""
    return dict.fromkeys(cnn_classical_pairs(entries), CNN_CLASSICAL)


def tem_table(tidy: pd.DataFrame, info: Mapping[str, Mapping[str, Any]], scale: FovScale) -> pd.DataFrame:
    """One row per (noise condition, model), best PSNR (column ``psnr``) first within each condition,
    with the mean and std of every TEM PSNR convention's column and the FoV in px, A and cells (``scale``)."""
    summary = score_statistics(tidy, ["noise", "method"]).rename(columns={"method": "model"})
    summary["parameters"] = summary["model"].map(lambda m: info.get(m, {}).get("parameters"))
    summary["fov"] = summary["model"].map(lambda m: info.get(m, {}).get("fov"))
    summary["fov_angstrom"] = summary["fov"].map(scale.angstrom)
    summary["fov_cells"] = summary["fov"].map(scale.cells)
    summary["homogeneity"] = summary["model"].map(lambda m: homogeneity_label(info.get(m, {})))
    summary["order"] = noise_order(summary["noise"])
    summary = summary.sort_values(["order", "psnr_mean"], ascending=[True, False])
    conventions = metrics.tem_psnr_conventions(tidy.columns)
    by_convention = [f"psnr_{name}_{stat}" for name in conventions for stat in ("mean", "std")]
    after_psnr = COLUMNS.index("psnr_std") + 1
    return summary[COLUMNS[:after_psnr] + by_convention + COLUMNS[after_psnr:]].reset_index(drop=True)


def table_pairs(
    tidy: pd.DataFrame, table: pd.DataFrame, named: Sequence[tuple[str, str]], claims: Mapping[tuple[str, str], str] = {}
) -> pd.DataFrame:
    """Paired differences per condition over the test structures: each model vs the next row of
    ``table``, and ``named`` (those in ``claims`` tagged with their claim); one Holm family for the
    whole table."""
    orders = {(noise,): part["model"].tolist() for noise, part in table.groupby("noise", sort=False)}
    pairs = compare_pairs(tidy, orders, named, by=["noise"], item=["image"], claims=claims)
    return pairs.sort_values("noise", key=noise_order, kind="stable").reset_index(drop=True)


def with_next(table: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each model's difference to the next-ranked one (empty on the last row)."""
    adjacent = pairs[pairs["next_ranked"]].rename(columns={"a": "model", "b": "next_model"})
    return table.merge(adjacent[["noise", "model", *NEXT_COLUMNS]], on=["noise", "model"], how="left")


def fov_text(value: float, digits: int) -> str:
    """A FoV size for a table cell: "image" where it is undefined (the method sees the whole image)."""
    return "image" if pd.isna(value) else f"{value:.{digits}f}"


def _display(table: pd.DataFrame, pm: str, conventions: Sequence[str], support: str | None) -> pd.DataFrame:
    psnr_headers = {f"PSNR {name} (dB)": f"psnr_{name}" for name in conventions} or {"PSNR (dB)": "psnr"}

    def spread(mean: float, std: float) -> str:
        return f"{mean:.2f} {pm} {std:.2f}"

    def count(value: Any) -> str:
        if pd.isna(value):
            return "-"
        value = int(value)
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}K" if value >= 1e3 else str(value)

    return pd.DataFrame({
        "model": table["model"],
        "parameters": table["parameters"].map(count),
        "FoV (px)": table["fov"].map(lambda f: "image" if pd.isna(f) else f"{int(f)}x{int(f)}"),
        "FoV (Å)": table["fov_angstrom"].map(lambda f: fov_text(f, 1)),
        **({f"FoV ({support} cells)": table["fov_cells"].map(lambda f: fov_text(f, 1))} if support else {}),
        "bias-free": table["homogeneity"].map(lambda label: label or "-"),
        **{header: list(map(spread, table[f"{score}_mean"], table[f"{score}_std"]))
           for header, score in psnr_headers.items()},
        "SSIM": [f"{m:.3f}" for m in table["ssim_mean"]],
        "Δ vs next (95% CI)": ["–" if pd.isna(row["next_model"]) else format_delta(row) for _, row in table.iterrows()],
    })


def write_tem_table(
    metric_paths: Sequence[str],
    info_paths: Mapping[str, str],
    entries: Mapping[str, Mapping[str, Any]],
    metadata_path: str,
    out_csv: str,
    out_md: str,
    out_tex: str,
    out_pairs: str,
    pairs: Sequence[Sequence[str]] = (),
) -> pd.DataFrame:
    """Build the table from per-image metric CSVs and write it as CSV, Markdown and LaTeX, and
    the paired comparisons (``pairs``, else :func:`claim_pairs`, plus the adjacent rows) as CSV.
    ``metadata_path``: the test split's metadata (pixel size and support of the FoV units)."""
    named = [tuple(pair) for pair in pairs] or claim_pairs(entries)
    unknown = sorted({name for pair in named for name in pair} - set(entries))
    if unknown:
        raise ValueError(f"experiments.tem_table.pairs names {unknown}, not methods of the table {sorted(entries)}")
    info = {name: classical_info(entry) for name, entry in entries.items() if name not in info_paths}
    info.update({name: json.loads(open(path).read()) for name, path in info_paths.items()})
    tidy = collect_metrics(metric_paths)
    scale = fov_scale(pd.read_csv(metadata_path))
    table = tem_table(tidy, info, scale)
    compared = table_pairs(tidy, table, named, claim_tags(entries))
    table = with_next(table, compared)
    save_table(out_csv, table)
    save_table(out_pairs, compared)
    conventions = metrics.tem_psnr_conventions(tidy.columns)
    convention, note = metrics.table_convention(conventions), delta_note("the whole table (every condition)")
    md = [f"# TEM denoising: PSNR (dB, mean ± std over test images), SSIM, parameters, measured FoV\n\n"
          f"Convention: {convention}. FoV: gradient support of the centre output pixel, {fov_units_note(scale)}. "
          f"{note}; Δ vs next compares a row with the row below it.\n"]
    tex = [f"% TEM table. Convention: {convention}.\n"]
    for noise, part in table.groupby("noise", sort=False):
        claims = compared[(compared["noise"] == noise) & compared["named"]]
        md.append(f"\n## {noise}\n\n" + _display(part, "±", conventions, scale.support).to_markdown(index=False) + "\n\n"
                  f"Named comparisons ({noise}):\n\n" + pairs_display(claims).to_markdown(index=False) + "\n")
        caption = tex_escape(f"Denoising {noise} TEM images: PSNR (dB) mean $\\pm$ std. {note}. {convention}.")
        display = _display(part, "$\\pm$", conventions, scale.support).map(tex_escape).rename(columns=tex_escape)
        tex.append(display.to_latex(index=False, caption=caption, label=f"tab:tem-{noise}"))
    save_text(out_md, "".join(md))
    save_text(out_tex, "\n".join(tex))
    return table
