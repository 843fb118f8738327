"""Noise-level generalisation: PSNR of networks trained on a noise range, tested inside and outside it.

Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda (ICLR 2020), table 1 / figure 1: a DnCNN trained
on Gaussian sigma in [0, 55] collapses above 55 while its bias-free version keeps denoising. Here
the same comparison is made from the per-image metric files of the benchmark (one per model and
noise condition): a table with one row per model and one column per noise level, and a plot of
PSNR against the noise level with each training range shaded. Each bias-free model is compared
with its biased twin at every level by the paired per-image difference and its 95% interval.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from temdenoise import metrics  # noqa: E402
from temdenoise.benchmark import collect_metrics, noise_order, summary_table, tex_escape  # noqa: E402
from temdenoise.io import save_table, save_text  # noqa: E402
from temdenoise.noise import parse_condition  # noqa: E402
from temdenoise.plots import save_figure  # noqa: E402
from temdenoise.claims import BIAS_FREE
from temdenoise.report.pairs import bias_free_twins, compare_pairs, delta_note, pairs_display  # noqa: E402

NOISY = "noisy"


def range_label(noise_range: Mapping[str, Any] | None) -> str:
    """``gaussian [0, 55]`` for a ``train_noise`` entry; ``-`` for the noisy input."""
    if not noise_range:
        return "-"
    low, high = noise_range["range"]
    return f"{noise_range['kind']} [{low:g}, {high:g}]"


def generalization_table(
    metric_paths: Sequence[str],
    models: Sequence[str],
    train_noise: Mapping[str, Mapping[str, Any]],
    score: str = "psnr",
) -> pd.DataFrame:
    """Mean PSNR (column ``score`` of the metric files) per model (rows, in ``models`` order, noisy
    input first) and noise level (columns).

    ``train_noise`` maps each model to its training range (``{kind, range}``), shown in a column.
    """
    summary = summary_table(collect_metrics(metric_paths))
    summary["level"] = summary["noise"].map(lambda name: parse_condition(name).level)
    wide = summary.pivot_table(index="method", columns="level", values=f"{score}_mean")
    kinds = {parse_condition(name).kind for name in summary["noise"]}
    if len(kinds) != 1:
        raise ValueError(f"generalisation table mixes noise kinds {sorted(kinds)}; use one kind per table")
    order = [NOISY, *models] if NOISY in wide.index else list(models)
    missing = [model for model in order if model not in wide.index]
    if missing:
        raise ValueError(f"no metrics for model(s) {missing} among {list(metric_paths)[:3]}...")
    wide = wide.loc[order, sorted(wide.columns, reverse=kinds == {"poisson"})]
    wide.columns = [f"{level:g}" for level in wide.columns]
    wide.columns.name = "dose" if kinds == {"poisson"} else "sigma"
    wide.insert(0, "trained on", [range_label(train_noise.get(model)) for model in wide.index])
    wide.index.name = "model"
    return wide


def generalization_pairs(metric_paths: Sequence[str], entries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Paired PSNR difference of each bias-free model and its biased twin (both among ``entries``)
    over the test units at every noise level, easiest level first; one Holm family for the table."""
    tidy = collect_metrics(metric_paths)
    twins = bias_free_twins(entries)
    pairs = compare_pairs(tidy, {}, twins, by=["noise"], item=["image"], claims=dict.fromkeys(twins, BIAS_FREE))
    return pairs.sort_values("noise", key=noise_order, kind="stable").reset_index(drop=True)


def write_generalization_tables(
    tables: Mapping[str, pd.DataFrame],
    pairs: pd.DataFrame,
    dataset: str,
    conventions: Sequence[str],
    csv: str,
    markdown: str,
    latex: str,
    pairs_csv: str,
) -> None:
    """The ``tables`` (one per PSNR column, ``psnr`` first; rows of each in the CSV with the column
    name under ``score``) and the bias-free vs biased ``pairs`` (on ``psnr``) as CSV, Markdown and
    LaTeX, each headed by the PSNR conventions (``conventions``: the TEM ones scored, else none)."""
    save_table(csv, pd.concat([table.reset_index() for table in tables.values()], keys=list(tables), names=["score"])
               .reset_index(level=0))
    save_table(pairs_csv, pairs)
    convention, note = metrics.table_convention(conventions), delta_note("this table (every level)")
    kind = tables["psnr"].columns.name
    title = f"Mean PSNR (dB) on the {dataset} test set vs noise level ({kind}); models trained on the stated range"
    twins = pairs_display(pairs, by=["noise"])
    label = f"tab:generalization-{dataset.replace('_', '-')}"
    md, tex = [f"# {title}\n\nConvention: {convention}.\n"], []
    for score, table in tables.items():
        md.append(f"\nColumn {score}:\n\n{table.round(2).to_markdown()}\n")
        shown = table.round(2).rename(index=tex_escape)
        shown.index.name = shown.columns.name = None
        tex.append(shown.to_latex(float_format="%.2f", caption=tex_escape(f"{title}, column {score}. {convention}."),
                                  label=label if score == "psnr" else f"{label}-{score.replace('_', '-')}"))
    md.append(f"\nBias-free vs biased twin at each level (column psnr). {note}.\n\n{twins.to_markdown(index=False)}\n")
    tex.append(twins.map(tex_escape).rename(columns=tex_escape).to_latex(
        index=False, caption=tex_escape(f"Bias-free vs biased twin on the {dataset} test set (column psnr). {note}."),
        label=f"{label}-pairs"))
    save_text(markdown, "".join(md))
    save_text(latex, "\n".join(tex))


def plot_generalization(
    table: pd.DataFrame, train_noise: Mapping[str, Mapping[str, Any]], dataset: str, png: str, svg: str
) -> None:
    """PSNR vs noise level, one panel per training range (shaded), noisy input dashed in each."""
    levels = [float(column) for column in table.columns[1:]]
    kind = table.columns.name
    groups: dict[str, list[str]] = {}
    for model in table.index:
        if model != NOISY:
            groups.setdefault(range_label(train_noise.get(model)), []).append(model)
    figure, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False, sharey=True)
    for axis, (label, models) in zip(axes[0], groups.items()):
        low, high = train_noise[models[0]]["range"]
        if kind == "dose":
            axis.set_xscale("log")
            low = max(low, min(levels) / 2)  # a log axis cannot show 0
        axis.axvspan(low, high, color="0.88", label="training range")
        if NOISY in table.index:
            axis.plot(levels, table.loc[NOISY].iloc[1:].astype(float), "k--", label="noisy input")
        for model in models:
            axis.plot(levels, table.loc[model].iloc[1:].astype(float), "o-", label=model)
        axis.set_title(f"{dataset}: trained on {label}", fontsize=9)
        axis.set_xlabel("dose (e/Å²)" if kind == "dose" else "σ (0..255 scale)")
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel("PSNR (dB)")
    save_figure(figure, png, svg)


def run_generalization(
    metric_paths: Sequence[str],
    models: Sequence[str],
    train_noise: Mapping[str, Mapping[str, Any]],
    dataset: str,
    outputs: Mapping[str, str],
    entries: Mapping[str, Mapping[str, Any]],
) -> pd.DataFrame:
    """Tables (``csv``, ``markdown``, ``latex``: the primary ``psnr`` and every other TEM convention's
    column), bias-free vs biased pairs (``pairs``) and plot (``png``, ``svg``,
    primary ``psnr``) of one dataset's study; ``entries``: the models' method entries. Returns the
    primary table."""
    tidy = collect_metrics(metric_paths)
    conventions = metrics.tem_psnr_conventions(tidy.columns)
    scores = ["psnr", *(f"psnr_{name}" for name in conventions[1:])]
    tables = {score: generalization_table(metric_paths, models, train_noise, score) for score in scores}
    pairs = generalization_pairs(metric_paths, {m: entries[m] for m in models})
    write_generalization_tables(tables, pairs, dataset, conventions, outputs["csv"], outputs["markdown"],
                                outputs["latex"], outputs["pairs"])
    plot_generalization(tables["psnr"], train_noise, dataset, outputs["png"], outputs["svg"])
    return tables["psnr"]
