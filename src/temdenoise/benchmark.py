"""The main benchmark: fit classical methods, denoise test splits, score them, aggregate tables.

Each function is the body of one workflow rule; it reads and writes files named by the rule so
that it can be called from a test as well as from a Snakemake script.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from temdenoise import metrics, registry
from temdenoise.io import StackReader, atomic_path, save_stack, save_table, save_text
from temdenoise.noise import NoiseCondition, item_pixel_sizes, noisy_items, parse_condition
from temdenoise.report.pairs import compare_pairs, delta_note, pairs_display, seeds_display, seeds_note
from temdenoise.stats import TRAINING_SEED, across_seeds, metadata_units

METRIC_COLUMNS = ["dataset", "noise", "method", "image", "unit", "unit_kind", "psnr", "ssim"]
FRAME_METRIC_COLUMNS = ["dataset", "noise", "method", "image", "frame", "unit", "unit_kind", "psnr", "ssim"]


def write_noisy_split(clean_path: str, metadata_path: str, noise: str, seed: int, out: str) -> None:
    """Store the noisy copy of a clean split under condition ``noise``, item by item."""
    with StackReader(clean_path) as clean:
        sizes = item_pixel_sizes(pd.read_csv(metadata_path), len(clean))
        save_stack(out, noisy_items(clean, sizes, parse_condition(noise), seed))


def fit_classical(entry: dict[str, Any], noisy_path: str, clean_path: str, out: str) -> None:
    """Fit a classical method on the training pairs of one noise condition; save its state. The
    pairs are handed over as :class:`~temdenoise.io.StackReader`: a fit that iterates over them
    (the Wiener filter's) holds one pair at a time."""
    with StackReader(noisy_path) as noisy, StackReader(clean_path) as clean:
        state = registry.build(entry).fit(noisy, clean)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **state)


def denoise_split(
    entry: dict[str, Any],
    artifact: str | None,
    noisy_path: str,
    metadata_path: str,
    noise: str,
    device: str,
    out: str,
) -> None:
    """Denoise every item of a noisy test split with one method and save the stack.

    ``artifact``: the trained weights or the fitted classical state; None for a classical family
    that fits nothing (``fits = False``: calibrated on each noisy image). Item by item: the job
    holds one noisy and one denoised item at a time.
    """
    with StackReader(noisy_path) as noisy:
        save_stack(out, _denoised_items(entry, artifact, noisy, metadata_path, parse_condition(noise), device))


def _denoised_items(entry: dict[str, Any], artifact: str | None, noisy: Sequence[np.ndarray],
                    metadata_path: str, condition: NoiseCondition, device: str) -> Iterator[np.ndarray]:
    """The denoised items of :func:`denoise_split`, each computed when the writer asks for it."""
    if registry.method_kind(entry) == "classical":
        state = {}
        if artifact is not None:
            with np.load(artifact) as data:
                state = {key: data[key] for key in data.files}
        denoiser = registry.build(entry)
        sizes = item_pixel_sizes(pd.read_csv(metadata_path), len(noisy))
        return (denoiser.denoise(item, state, condition, size) for item, size in zip(noisy, sizes))
    from temdenoise.models import load_trained
    from temdenoise.models.inference import denoise_stack

    model = load_trained(artifact, entry).to(device).eval()
    if registry.takes_videos(entry):  # frame windows of whole videos, not single frames
        from temdenoise.models.udvd import denoise_video

        return (denoise_video(model, item, device) for item in noisy)
    return (np.stack(denoise_stack(model, list(item), device)) if item.ndim == 3
            else denoise_stack(model, [item], device)[0] for item in noisy)


def evaluate_split(
    clean_path: str,
    estimate_path: str,
    metadata_path: str,
    dataset: str,
    domain: str,
    tem_psnr: Sequence[str],
    reference_counts: float,
    noise: str,
    method: str,
    out: str,
    frames_out: str | None = None,
) -> None:
    """Per-image PSNR and SSIM of an estimate (see :mod:`temdenoise.metrics` for the conventions):
    columns of :data:`METRIC_COLUMNS`, TEM datasets also ``psnr_<name>`` per convention of
    ``tem_psnr`` (:func:`temdenoise.metrics.psnr_columns`; ``seed_counts`` at the dataset's
    ``reference_counts`` per vacuum pixel); each item's independent unit (``unit``, ``unit_kind``)
    from the split's ``metadata_path`` (:func:`temdenoise.stats.metadata_units`).

    Videos are scored whole (PSNR over all frames) in ``out``; ``frames_out``, for video datasets,
    adds one row per frame, the items of the paired comparisons of the UDVD table.
    """
    def scores(c: np.ndarray, e: np.ndarray) -> dict[str, float]:
        psnr = metrics.psnr_columns(c, e, domain, tem_psnr, reference_counts)
        return psnr | {"ssim": metrics.ssim(c, e, domain)}

    key = {"dataset": dataset, "noise": noise, "method": method}
    rows, frames = [], []
    # one pair of items in memory at a time
    with StackReader(clean_path) as clean, StackReader(estimate_path) as estimate:
        if len(clean) != len(estimate):
            raise ValueError(f"{estimate_path} has {len(estimate)} items, {clean_path} has {len(clean)}")
        units, unit_kind = metadata_units(pd.read_csv(metadata_path), len(clean))
        for index, (c, e) in enumerate(zip(clean, estimate)):
            unit = {"unit": units[index], "unit_kind": unit_kind}
            rows.append(key | {"image": index} | unit | scores(c, e))
            if frames_out is None:
                continue
            if np.ndim(c) != 3:
                raise ValueError(f"{clean_path}: per-frame scores need (T, H, W) videos")
            frames += [key | {"image": index, "frame": frame} | unit | scores(cf, ef)
                       for frame, (cf, ef) in enumerate(zip(c, e))]
    save_table(out, pd.DataFrame(rows))
    if frames_out is not None:
        save_table(frames_out, pd.DataFrame(frames))


def collect_metrics(paths: Sequence[str]) -> pd.DataFrame:
    """Concatenate per-image metric files into one tidy table."""
    return pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)


def noise_order(noise: pd.Series) -> pd.Series:
    """Sort key: Poisson by decreasing dose, then Gaussian by increasing sigma (easy to hard)."""
    parsed = noise.map(parse_condition)
    return parsed.map(lambda c: (c.kind != "poisson", -c.level if c.kind == "poisson" else c.level))


def score_statistics(tidy: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean and std per group ``by`` of PSNR (``psnr`` and every TEM convention's ``psnr_<name>``
    column, :func:`temdenoise.metrics.tem_psnr_conventions`) and SSIM, and the number of items."""
    scores = ["psnr", *(f"psnr_{name}" for name in metrics.tem_psnr_conventions(tidy.columns)), "ssim"]
    statistics = {f"{column}_{stat}": (column, stat) for column in scores for stat in ("mean", "std")}
    summary = tidy.groupby(list(by), sort=False).agg(**statistics, images=("psnr", "size")).reset_index()
    for column in scores:  # one item has no spread; a score undefined in a group (TEM convention, natural) stays NaN
        std, defined = summary[f"{column}_std"], summary[f"{column}_mean"].notna()
        summary[f"{column}_std"] = std.mask(std.isna() & defined, 0.0)
    return summary


def summary_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of PSNR (every convention) and SSIM per dataset, noise condition and method."""
    return score_statistics(tidy, ["dataset", "noise", "method"])


def _wide(summary: pd.DataFrame, dataset: str, fmt: str, score: str = "psnr") -> pd.DataFrame:
    """Methods x noise conditions of one dataset, cells ``mean +- std`` of ``score`` (``–`` where it
    is undefined), best methods first by the primary PSNR."""
    part = summary[summary["dataset"] == dataset]
    order = part.drop_duplicates("noise").sort_values("noise", key=noise_order)["noise"].tolist()
    cells = part.assign(cell=[
        "–" if pd.isna(m) else fmt.format(m, s) for m, s in zip(part[f"{score}_mean"], part[f"{score}_std"])
    ])
    wide = cells.pivot(index="method", columns="noise", values="cell")[order].fillna("–")  # pair not run
    rank = part.groupby("method")["psnr_mean"].mean().sort_values(ascending=False)
    return wide.loc[rank.index]


def ranked_pairs(
    summary: pd.DataFrame, items: pd.DataFrame, named: Sequence[tuple[str, str]] = (),
    claims: Mapping[tuple[str, str], str] = {},
) -> pd.DataFrame:
    """Paired PSNR differences per dataset and condition: each method vs the next-ranked one (by the
    mean PSNR of ``summary``) and the ``named`` pairs, over the test items of ``items`` (rows per
    image, or per frame when ``items`` has a ``frame`` column), over their units; one Holm family
    per dataset. Items with a ``training_seed`` column (:func:`temdenoise.report.pairs.by_training_seed`)
    are compared seed by seed, in the order of ``summary``. ``claims`` tags named pairs with the
    study's claim they test."""
    by = ["dataset", "noise"]
    orders = {
        key: part.sort_values("psnr_mean", ascending=False)["method"].tolist()
        for key, part in summary.groupby(by, sort=False)
    }
    if TRAINING_SEED in items:
        seeds = items[TRAINING_SEED].unique()
        orders = {(*key, seed): order for key, order in orders.items() for seed in seeds}
        by = [*by, TRAINING_SEED]
    item = ["image", "frame"] if "frame" in items else ["image"]
    return compare_pairs(items, orders, named, by=by, item=item, family=["dataset"], claims=claims)


def write_tables(
    tidy: pd.DataFrame,
    csv: str,
    summary_csv: str,
    markdown: str,
    latex: str,
    pairs_csv: str,
    items: pd.DataFrame | None = None,
    named: Sequence[tuple[str, str]] = (),
    claims: Mapping[tuple[str, str], str] = {},
) -> pd.DataFrame:
    """The tidy CSV, the summary CSV, Markdown / LaTeX (booktabs) tables of mean +- std PSNR, and
    the paired differences of :func:`ranked_pairs` (over ``items``, default the rows of ``tidy``)
    as CSV and as a section of the Markdown under each dataset."""
    save_table(csv, tidy)
    summary = summary_table(tidy)
    save_table(summary_csv, summary)
    items = tidy if items is None else items
    pairs = ranked_pairs(summary, items, named, claims)
    save_table(pairs_csv, pairs)
    conventions = metrics.tem_psnr_conventions(tidy.columns)
    convention = metrics.table_convention(conventions)
    note = delta_note("the dataset's section")
    md_parts = [f"# PSNR (dB), mean ± std over test images\n\nConvention: {convention}.\n"]
    tex_parts = [f"% PSNR (dB), mean +- std over test images. Convention: {convention}.\n"]
    for dataset in summary["dataset"].unique():
        rows = summary[summary["dataset"] == dataset]
        # "psnr" is the first convention's; the others (those defined on this dataset) follow in their own tables
        defined = [f"psnr_{name}" for name in conventions[1:] if rows[f"psnr_{name}_mean"].notna().any()]
        for score in ["psnr", *defined]:
            heading = f"## {dataset}" if score == "psnr" else f"PSNR (dB) on {dataset}, column {score}:"
            wide = _wide(summary, dataset, "{:.2f} ± {:.2f}", score)
            md_parts.append(f"\n{heading}\n\n{wide.to_markdown()}\n")
            wide_tex = _wide(summary, dataset, "{:.2f} $\\pm$ {:.2f}", score)
            wide_tex = wide_tex.rename(index=tex_escape, columns=tex_escape)
            wide_tex.index.name = wide_tex.columns.name = None
            caption = tex_escape(f"PSNR (dB, column {score}) on {dataset}. Paired differences (Δ, 95% interval, column "
                                 f"psnr) in the Markdown table and {pairs_csv.rsplit('/', 1)[-1]}. {convention}.")
            label = f"tab:psnr-{dataset}" + ("" if score == "psnr" else f"-{score}")
            tex_parts.append(wide_tex.to_latex(caption=caption, label=label.replace("_", "-")))
        part = pairs[pairs["dataset"] == dataset].sort_values("noise", key=noise_order, kind="stable")
        seeded = TRAINING_SEED in part and part[TRAINING_SEED].nunique() > 1
        md_parts.append(f"\nPaired differences on {dataset}: each method vs the next-ranked one in the same "
                        f"condition{' and the named comparisons' if named else ''}"
                        f"{', for each training seed' if seeded else ''}. {note}.\n\n"
                        + pairs_display(part, by=["noise", *([TRAINING_SEED] if seeded else [])]).to_markdown(index=False)
                        + "\n")
        if seeded:
            robust = across_seeds(part, by=["noise"])
            md_parts.append(f"\nOver the training seeds ({dataset}). {seeds_note()}.\n\n"
                            + seeds_display(robust, by=["noise"]).to_markdown(index=False) + "\n")
    save_text(markdown, "".join(md_parts))
    save_text(latex, "\n".join(tex_parts))
    return pairs


def tex_escape(text: object) -> str:
    """``text`` (any cell value) for a LaTeX caption or cell: underscores and percent signs escaped,
    Δ and the minus sign (U+2212, not set up in pdflatex) as math."""
    return str(text).replace("_", "\\_").replace("%", "\\%").replace("Δ", "$\\Delta$").replace("−", "$-$")
