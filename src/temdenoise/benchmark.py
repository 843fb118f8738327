"""The main benchmark: fit classical methods, denoise test splits, score them, aggregate tables.

Each function is the body of one workflow rule; it reads and writes files named by the rule so
that it can be called from a test as well as from a Snakemake script.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from temdenoise import metrics, registry
from temdenoise.io import atomic_path, load_stack, save_stack, save_table, save_text
from temdenoise.noise import item_pixel_sizes, noisy_stack, parse_condition

METRIC_COLUMNS = ["dataset", "noise", "method", "image", "psnr", "ssim"]


def write_noisy_split(clean_path: str, metadata_path: str, noise: str, seed: int, out: str) -> None:
    """Store the noisy copy of a clean split under condition ``noise``."""
    clean = load_stack(clean_path)
    sizes = item_pixel_sizes(pd.read_csv(metadata_path), len(clean))
    save_stack(out, noisy_stack(clean, sizes, parse_condition(noise), seed))


def fit_classical(entry: dict[str, Any], noisy_path: str, clean_path: str, out: str) -> None:
    """Fit a classical method on the training pairs of one noise condition; save its state."""
    state = registry.build(entry).fit(load_stack(noisy_path), load_stack(clean_path))
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **state)


def denoise_split(
    entry: dict[str, Any],
    artifact: str,
    noisy_path: str,
    metadata_path: str,
    noise: str,
    device: str,
    out: str,
) -> None:
    """Denoise every item of a noisy test split with one method and save the stack."""
    noisy = load_stack(noisy_path)
    condition = parse_condition(noise)
    method = registry.family(entry["family"])
    if method.kind == "classical":
        with np.load(artifact) as data:
            state = {key: data[key] for key in data.files}
        denoiser = registry.build(entry)
        sizes = item_pixel_sizes(pd.read_csv(metadata_path), len(noisy))
        denoised = [denoiser.denoise(item, state, condition, size) for item, size in zip(noisy, sizes)]
    else:
        from temdenoise.models import load_trained
        from temdenoise.models.inference import denoise_stack

        model = load_trained(artifact, entry).to(device).eval()
        if registry.takes_videos(entry):  # frame windows of whole videos, not single frames
            from temdenoise.models.udvd import denoise_video

            save_stack(out, [denoise_video(model, item, device) for item in noisy])
            return
        denoised = [
            np.stack(denoise_stack(model, list(item), device)) if item.ndim == 3 else denoise_stack(model, [item], device)[0]
            for item in noisy
        ]
    save_stack(out, denoised)


def evaluate_split(
    clean_path: str, estimate_path: str, dataset: str, domain: str, noise: str, method: str, out: str
) -> None:
    """Per-image PSNR and SSIM of an estimate (see :mod:`temdenoise.metrics` for the convention)."""
    clean = load_stack(clean_path)
    estimate = load_stack(estimate_path)
    if len(clean) != len(estimate):
        raise ValueError(f"{estimate_path} has {len(estimate)} items, {clean_path} has {len(clean)}")
    rows = [
        (dataset, noise, method, index, metrics.psnr(c, e, domain), metrics.ssim(c, e, domain))
        for index, (c, e) in enumerate(zip(clean, estimate))
    ]
    save_table(out, pd.DataFrame(rows, columns=METRIC_COLUMNS))


def collect_metrics(paths: Sequence[str]) -> pd.DataFrame:
    """Concatenate per-image metric files into one tidy table."""
    return pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)


def noise_order(noise: pd.Series) -> pd.Series:
    """Sort key: Poisson by decreasing dose, then Gaussian by increasing sigma (easy to hard)."""
    parsed = noise.map(parse_condition)
    return parsed.map(lambda c: (c.kind != "poisson", -c.level if c.kind == "poisson" else c.level))


def summary_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of PSNR and SSIM per dataset, noise condition and method."""
    summary = (
        tidy.groupby(["dataset", "noise", "method"], sort=False)
        .agg(psnr_mean=("psnr", "mean"), psnr_std=("psnr", "std"), ssim_mean=("ssim", "mean"),
             ssim_std=("ssim", "std"), images=("psnr", "size"))
        .reset_index()
    )
    return summary.fillna({"psnr_std": 0.0, "ssim_std": 0.0})


def _wide(summary: pd.DataFrame, dataset: str, fmt: str) -> pd.DataFrame:
    """Methods x noise conditions of one dataset, cells ``mean +- std``, best methods first."""
    part = summary[summary["dataset"] == dataset]
    order = part.drop_duplicates("noise").sort_values("noise", key=noise_order)["noise"].tolist()
    cells = part.assign(cell=[fmt.format(m, s) for m, s in zip(part["psnr_mean"], part["psnr_std"])])
    wide = cells.pivot(index="method", columns="noise", values="cell")[order].fillna("–")  # pair not run
    rank = part.groupby("method")["psnr_mean"].mean().sort_values(ascending=False)
    return wide.loc[rank.index]


def write_tables(tidy: pd.DataFrame, csv: str, summary_csv: str, markdown: str, latex: str) -> None:
    """The tidy CSV, the summary CSV and Markdown / LaTeX (booktabs) tables of mean +- std PSNR."""
    save_table(csv, tidy)
    summary = summary_table(tidy)
    save_table(summary_csv, summary)
    convention = metrics.CONVENTION["unit"]
    md_parts = [f"# PSNR (dB), mean ± std over test images\n\nConvention: {convention}.\n"]
    tex_parts = [f"% PSNR (dB), mean +- std over test images. Convention: {convention}.\n"]
    for dataset in summary["dataset"].unique():
        md_parts.append(f"\n## {dataset}\n\n" + _wide(summary, dataset, "{:.2f} ± {:.2f}").to_markdown() + "\n")
        wide_tex = _wide(summary, dataset, "{:.2f} $\\pm$ {:.2f}")
        wide_tex = wide_tex.rename(index=_tex_escape, columns=_tex_escape)
        wide_tex.index.name = wide_tex.columns.name = None
        caption = _tex_escape(f"PSNR (dB) on {dataset}. {convention}.")
        tex_parts.append(wide_tex.to_latex(caption=caption, label=f"tab:psnr-{dataset.replace('_', '-')}"))
    save_text(markdown, "".join(md_parts))
    save_text(latex, "\n".join(tex_parts))


def _tex_escape(text: str) -> str:
    return text.replace("_", "\\_").replace("%", "\\%")
