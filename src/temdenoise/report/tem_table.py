"""The seed's "Electron Microscopy" table: every model on the Poisson TEM test set, with its
parameter count and measured field of view beside PSNR (mean +- std over images) and SSIM.

Networks take parameters and FoV from the ``info.json`` written at training time
(:func:`temdenoise.train.supervised.model_info`); the Wiener filter has ``kernel_size**2`` weights
and a ``kernel_size`` FoV; the wavelet shrinkage learns nothing and sees the whole image.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import pandas as pd

from temdenoise import metrics
from temdenoise.benchmark import collect_metrics, noise_order
from temdenoise.io import save_table, save_text

COLUMNS = ["noise", "model", "parameters", "fov", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "images"]


def classical_info(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters and FoV (px) of a classical method entry (None where not defined)."""
    if entry["family"] == "wiener":
        size = int(entry.get("params", {}).get("kernel_size", 0)) or None
        return {"parameters": size * size if size else None, "fov": size}
    return {"parameters": 0, "fov": None}


def tem_table(tidy: pd.DataFrame, info: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (noise condition, model), best PSNR first within each condition."""
    summary = (
        tidy.groupby(["noise", "method"], sort=False)
        .agg(psnr_mean=("psnr", "mean"), psnr_std=("psnr", "std"), ssim_mean=("ssim", "mean"),
             ssim_std=("ssim", "std"), images=("psnr", "size"))
        .reset_index()
        .rename(columns={"method": "model"})
        .fillna({"psnr_std": 0.0, "ssim_std": 0.0})
    )
    summary["parameters"] = summary["model"].map(lambda m: info.get(m, {}).get("parameters"))
    summary["fov"] = summary["model"].map(lambda m: info.get(m, {}).get("fov"))
    summary["order"] = noise_order(summary["noise"])
    summary = summary.sort_values(["order", "psnr_mean"], ascending=[True, False])
    return summary[COLUMNS].reset_index(drop=True)


def _display(table: pd.DataFrame, pm: str) -> pd.DataFrame:
    def count(value: Any) -> str:
        if pd.isna(value):
            return "-"
        value = int(value)
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}K" if value >= 1e3 else str(value)

    return pd.DataFrame({
        "model": table["model"],
        "parameters": table["parameters"].map(count),
        "FoV": table["fov"].map(lambda f: "image" if pd.isna(f) else f"{int(f)}x{int(f)}"),
        "PSNR (dB)": [f"{m:.2f} {pm} {s:.2f}" for m, s in zip(table["psnr_mean"], table["psnr_std"])],
        "SSIM": [f"{m:.3f}" for m in table["ssim_mean"]],
    })


def write_tem_table(
    metric_paths: Sequence[str],
    info_paths: Mapping[str, str],
    entries: Mapping[str, Mapping[str, Any]],
    out_csv: str,
    out_md: str,
    out_tex: str,
) -> pd.DataFrame:
    """Build the table from per-image metric CSVs and write it as CSV, Markdown and LaTeX."""
    info = {name: classical_info(entry) for name, entry in entries.items() if name not in info_paths}
    info.update({name: json.loads(open(path).read()) for name, path in info_paths.items()})
    table = tem_table(collect_metrics(metric_paths), info)
    save_table(out_csv, table)
    convention = metrics.CONVENTION["unit"]
    md = [f"# TEM denoising: PSNR (dB, mean ± std over test images), SSIM, parameters, measured FoV\n\n"
          f"Convention: {convention}. FoV: gradient support of the centre output pixel.\n"]
    tex = [f"% TEM table. Convention: {convention}.\n"]
    for noise, part in table.groupby("noise", sort=False):
        md.append(f"\n## {noise}\n\n" + _display(part, "±").to_markdown(index=False) + "\n")
        caption = f"Denoising {noise} TEM images: PSNR (dB) mean $\\pm$ std. {convention}.".replace("_", "\\_")
        tex.append(_display(part, "$\\pm$").to_latex(index=False, caption=caption, label=f"tab:tem-{noise}"))
    save_text(out_md, "".join(md))
    save_text(out_tex, "\n".join(tex))
    return table
