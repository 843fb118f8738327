"""The GainTuning experiments of the study: validation sweep, per-image adaptation, scoring, step
curves, net bias, tables, figures.

Each item (an ``(H, W)`` image or a ``(T, H, W)`` video) is adapted on its own, starting from the
pre-trained weights every time (Mohan et al., NeurIPS 2021). The central ``crop`` of each item is
used (a multiple of the network's ``size_multiple``) so that the adaptation cost is bounded; every
compared method is scored on the same crop.

Split roles: the loss, learning rate and step count of a case are chosen on *validation* images
(:func:`select_job`, scored against the clean validation images) or fixed by the config; the test
items are adapted and denoised from their noisy copies alone (:func:`case_job`, :func:`curve_job`,
:func:`net_bias_job`), and separate scoring jobs (:func:`score_case_job`, :func:`score_curve_job`)
compare the written estimates with the clean test images.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from temdenoise.adapt.gaintuning import GainTuning, adapt  # noqa: E402
from temdenoise.adapt.losses import make_loss  # noqa: E402
from temdenoise.adapt.settings import (  # noqa: E402
    AdaptSettings,
    case_selection,
    describe,
    selection_grid,
    settings_of_case,
    write_selection,
)
from temdenoise.analysis.jacobian import net_bias_jvp  # noqa: E402
from temdenoise.io import StackReader, atomic_path, load_stack, save_stack, save_table, save_text  # noqa: E402
from temdenoise.metrics import (  # noqa: E402
    CONVENTION,
    TEM_PSNR,
    format_psnr_mean,
    psnr,
    psnr_columns,
    ssim,
    table_convention,
    tem_psnr_conventions,
)
from temdenoise.models import load_trained  # noqa: E402
from temdenoise.models.udvd import frame_windows  # noqa: E402
from temdenoise.noise import NoiseCondition, parse_condition  # noqa: E402
from temdenoise.stats import format_interval, holm, metadata_units, paired_table  # noqa: E402
from temdenoise.train.supervised import load_split  # noqa: E402

SELECTION_CRITERION = "highest mean clean PSNR over the validation crops and the case's noise conditions"


def crop_to(item: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The central ``shape`` window of the last two axes (how a clean item is matched to an estimate)."""
    height, width = item.shape[-2:]
    top, left = (height - shape[0]) // 2, (width - shape[1]) // 2
    return item[..., top : top + shape[0], left : left + shape[1]]


def central_crop(item: np.ndarray, size: int, multiple: int = 1) -> np.ndarray:
    """The central ``size`` x ``size`` window of the last two axes (``0`` = whole), sides cut to ``multiple``."""
    height, width = item.shape[-2:]
    crop_h, crop_w = (height, width) if size <= 0 else (min(size, height), min(size, width))
    return crop_to(item, (crop_h - crop_h % multiple, crop_w - crop_w % multiple))


def as_batch(item: np.ndarray, model: nn.Module) -> torch.Tensor:
    """Network input for one item: ``(1, 1, H, W)``; a video is a batch of frames ``(T, 1, H, W)``,
    or of centred frame windows ``(T, F, H, W)`` for a multi-frame network (attribute ``frames``)."""
    item = np.asarray(item, dtype=np.float32)
    if item.ndim == 2:
        return torch.from_numpy(item)[None, None]
    frames = getattr(model, "frames", 1)
    return torch.from_numpy(frame_windows(item, frames) if frames > 1 else item[:, None])


def from_batch(estimate: torch.Tensor, item: np.ndarray) -> np.ndarray:
    """Inverse of :func:`as_batch` for the (centre-frame) output."""
    out = estimate.detach()[:, 0].cpu().numpy().astype(np.float32)
    return out[0] if np.ndim(item) == 2 else out


def _pretrained(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(batch)


def gaintune_item(
    model: nn.Module,
    noisy: np.ndarray,
    condition: NoiseCondition,
    settings: AdaptSettings,
    *,
    mode: str = "gains",
    pixel_size: float = 1.0,
    device: str = "cpu",
    seed: int = 0,
    monitor=None,
    monitor_every: int = 0,
):
    """Adapt a copy of ``model`` to one item; returns (pre-trained estimate, adaptation, tuned model)."""
    batch = as_batch(noisy, model).to(device)
    reference = _pretrained(model, batch)
    generator = torch.Generator(device=device).manual_seed(seed)
    loss = make_loss(
        settings.loss, condition, pixel_size=pixel_size, reference=reference, generator=generator,
        options=settings.loss_options,
    )
    tuned = GainTuning(copy.deepcopy(model), mode=mode)
    lr = settings.lr if mode == "gains" else settings.all_params_lr
    result = adapt(
        tuned, batch, loss, steps=settings.steps, lr=lr, monitor=monitor, monitor_every=monitor_every,
        device=device, seed=seed,
    )
    return reference, result, tuned



def adaptation_snapshots(
    model: nn.Module,
    noisy: np.ndarray,
    condition: NoiseCondition,
    settings: AdaptSettings,
    *,
    every: int,
    mode: str = "gains",
    pixel_size: float = 1.0,
    device: str = "cpu",
    seed: int = 0,
) -> tuple[dict[int, np.ndarray], GainTuning]:
    """Estimates of one item after 0, ``every``, 2 ``every``, ..., ``settings.steps`` adaptation steps.

    The loop is deterministic given ``seed`` (constant learning rate, seeded loss noise), so the
    snapshot after ``k`` steps is the estimate of a ``k``-step adaptation: one run of the longest
    step count serves every shorter one of a sweep. Recording never steers the adaptation.
    """
    snapshots: list[np.ndarray] = []

    def record(estimate: torch.Tensor) -> float:
        snapshots.append(from_batch(estimate, noisy))
        return float("nan")  # no score: the adaptation loop sees nothing but the noisy item

    _, result, tuned = gaintune_item(
        model, noisy, condition, settings, mode=mode, pixel_size=pixel_size, device=device, seed=seed,
        monitor=record, monitor_every=every,
    )
    return dict(zip((step for step, _ in result.monitored), snapshots)), tuned


# -- validation sweep (rule gaintuning_select) ------------------------------------------------------


def sweep(
    model: nn.Module,
    noisy_sets: dict[str, Sequence[np.ndarray]],
    clean: Sequence[np.ndarray],
    domain: str,
    grid: Sequence[AdaptSettings],
    *,
    pixel_sizes: Sequence[float] | None = None,
    device: str = "cpu",
    seed: int = 0,
    score: Callable[[np.ndarray, np.ndarray, str], float] = psnr,
) -> pd.DataFrame:
    """``score`` (clean, estimate, domain) of every setting of ``grid`` on every validation item and condition.

    Settings sharing a loss and learning rate are read off one adaptation of their longest step
    count (:func:`adaptation_snapshots`). Tidy result: ``loss, lr, steps, noise, image, psnr,
    psnr_pretrained``, in grid order.
    """
    multiple = getattr(model, "size_multiple", 1)
    rows = []
    for (loss, lr), group in itertools.groupby(grid, key=lambda s: (s.loss, s.lr)):
        group = list(group)
        longest = max(group, key=lambda s: s.steps)
        every = math.gcd(*(s.steps for s in group))
        for name, items in noisy_sets.items():
            condition = parse_condition(name)
            for index, (noisy_item, clean_item) in enumerate(zip(items, clean)):
                noisy_item = central_crop(noisy_item, longest.crop, multiple)
                clean_item = crop_to(clean_item, noisy_item.shape[-2:])
                snapshots, _ = adaptation_snapshots(
                    model, noisy_item, condition, longest, every=every, device=device, seed=seed + index,
                    pixel_size=1.0 if pixel_sizes is None else float(pixel_sizes[index]),
                )
                before = score(clean_item, snapshots[0], domain)
                rows += [{"loss": loss, "lr": lr, "steps": s.steps, "noise": name, "image": index,
                          "psnr": score(clean_item, snapshots[s.steps], domain), "psnr_pretrained": before}
                         for s in group]
    return pd.DataFrame(rows)


def choose_setting(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The setting of a :func:`sweep` with the highest mean PSNR over items and conditions.

    Returns the per-setting means (grid order, column ``chosen``) and the chosen ``loss``, ``lr``,
    ``steps``; on a tie the first in grid order wins.
    """
    means = table.groupby(["loss", "lr", "steps"], sort=False)[["psnr", "psnr_pretrained"]].mean().reset_index()
    best = int(means["psnr"].to_numpy().argmax())
    means["chosen"] = np.arange(len(means)) == best
    row = means.iloc[best]
    return means, {"loss": str(row["loss"]), "lr": float(row["lr"]), "steps": int(row["steps"])}


def _noisy_items(noisy_paths: dict[str, str], metadata_path: str, images: int):
    """The first ``images`` (0 = all) noisy items of each condition and their pixel sizes (from the
    metadata: the microscope's calibration, which a user knows for every recording)."""
    loaded = {name: load_split(path, metadata_path, images or None) for name, path in noisy_paths.items()}
    return {name: items for name, (items, _) in loaded.items()}, next(iter(loaded.values()))[1]


def select_job(
    *,
    case: str,
    section: dict[str, Any],
    entry: dict[str, Any],
    pretrained: tuple[str, dict[str, Any]],
    noisy_paths: dict[str, str],
    clean_path: str,
    metadata_path: str,
    domain: str,
    json_path: str,
    table_path: str,
    device: str = "cpu",
    seed: int = 0,
    log=None,
) -> None:
    """Rule ``gaintuning_select``: sweep the case's grid on validation crops, write the whole grid
    (per item, column ``chosen``) and the chosen setting (``selection.json``)."""
    images = case_selection(section, entry)["images"]
    noisy, sizes = _noisy_items(noisy_paths, metadata_path, images)
    with StackReader(clean_path) as stack:  # the items swept, not the split
        clean = stack[: len(sizes)]
    grid = selection_grid(section, entry)
    table = sweep(load_trained(*pretrained, device), noisy, clean, domain, grid, pixel_sizes=sizes, device=device, seed=seed)
    means, chosen = choose_setting(table)
    table = table.merge(means[["loss", "lr", "steps", "chosen"]], on=["loss", "lr", "steps"], how="left")
    table.insert(0, "case", case)
    save_table(table_path, table)
    write_selection(json_path, case, replace(grid[0], **chosen), SELECTION_CRITERION, len(sizes), list(noisy_paths))
    if log:
        log.info("%s: chose %s on %d validation items\n%s", case, chosen, len(sizes), means.to_string(index=False))


# -- test-time adaptation (rule gaintuning_case) and its scoring (rule gaintuning_score) -----------


def save_arrays(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Named float32 arrays as one ``.npz`` (keys keep their order), written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **{key: np.asarray(a, dtype=np.float32) for key, a in arrays.items()})


def load_arrays(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def estimate_key(noise: str, image: int, label: str) -> str:
    return f"{noise}/{image}/{label}"


def adapt_case(
    pretrained: nn.Module,
    compared: dict[str, nn.Module],
    noisy_sets: dict[str, Sequence[np.ndarray]],
    settings: AdaptSettings,
    *,
    pixel_sizes: Sequence[float] | None = None,
    device: str = "cpu",
    seed: int = 0,
    log=None,
) -> tuple[pd.DataFrame, list[np.ndarray], dict[str, np.ndarray]]:
    """Adapt ``pretrained`` to each noisy item of each condition (``noisy_sets``: condition -> items).

    Returns one record per (condition, item) (adapted parameters, final loss, seconds), the adapted
    gains in record order, and the estimates of the crop (:func:`estimate_key`): the noisy crop,
    the pre-trained and GainTuning estimates and those of each ``compared`` model. Nothing clean.
    """
    multiple = max(getattr(m, "size_multiple", 1) for m in [pretrained, *compared.values()])
    rows, gains, estimates = [], [], {}
    for name, items in noisy_sets.items():
        condition = parse_condition(name)
        for index, noisy_item in enumerate(items):
            noisy_item = central_crop(noisy_item, settings.crop, multiple)
            start = time.perf_counter()
            reference, result, tuned = gaintune_item(
                pretrained, noisy_item, condition, settings, device=device, seed=seed + index,
                pixel_size=1.0 if pixel_sizes is None else float(pixel_sizes[index]),
            )
            seconds = time.perf_counter() - start
            outputs = {
                "noisy": noisy_item,
                "pretrained": from_batch(reference, noisy_item),
                "gaintuning": from_batch(result.estimate, noisy_item),
            }
            for label, model in compared.items():
                outputs[label] = from_batch(_pretrained(model, as_batch(noisy_item, model).to(device)), noisy_item)
            estimates.update({estimate_key(name, index, label): out for label, out in outputs.items()})
            rows.append({"noise": name, "image": index, **tuned.count(),
                         "final_loss": result.losses[-1] if result.losses else np.nan, "seconds": seconds})
            gains.append(tuned.gain_vector())
            if log:
                log.info("%s image %d adapted in %.1f s", name, index, seconds)
    return pd.DataFrame(rows), gains, estimates


def case_job(
    *,
    case: str,
    section: dict[str, Any],
    entry: dict[str, Any] | None = None,
    selection_path: str | None = None,
    pretrained: tuple[str, dict[str, Any]],
    compared: dict[str, tuple[str, dict[str, Any]]],
    noisy_paths: dict[str, str],
    metadata_path: str,
    adaptation_path: str,
    estimates_path: str,
    gains_path: str,
    device: str = "cpu",
    seed: int = 0,
    log=None,
) -> None:
    """Rule ``gaintuning_case``: adapt the noisy test items of one case with its chosen (or fixed)
    setting; write the per-item records with the setting and its source, the estimates and gains.

    ``pretrained`` and each ``compared`` value are ``(weights path, methods entry)``; ``entry`` is
    the case, ``selection_path`` its ``selection.json`` (``None``: the setting is fixed by the config).
    """
    settings, source = settings_of_case(section, entry, selection_path)
    noisy, sizes = _noisy_items(noisy_paths, metadata_path, section["images"])
    model = load_trained(pretrained[0], pretrained[1], device)
    others = {label: load_trained(path, entry, device) for label, (path, entry) in compared.items()}
    records, gains, estimates = adapt_case(model, others, noisy, settings, pixel_sizes=sizes, device=device,
                                           seed=seed, log=log)
    records.insert(0, "case", case)
    records = records.assign(**settings.chosen(), setting_from=source)
    save_table(adaptation_path, records)
    save_arrays(estimates_path, estimates)
    save_stack(gains_path, gains)


def score_case(
    records: pd.DataFrame,
    estimates: dict[str, np.ndarray],
    clean: Sequence[np.ndarray],
    domain: str,
    tem_psnr: Sequence[str],
    reference_counts: float,
) -> pd.DataFrame:
    """PSNR/SSIM of every estimate of every adapted item against its clean crop (one row per item).

    Per method label: ``psnr_<label>`` (the primary convention, which the paired differences use),
    ``ssim_<label>`` and, for TEM, ``<label>_psnr_<name>`` per convention of ``tem_psnr``, scored by
    :func:`temdenoise.metrics.psnr_columns` as the ``evaluate`` rule scores (``seed_counts`` at the
    test dataset's ``reference_counts``)."""
    rows = []
    for record in records.to_dict("records"):
        prefix = estimate_key(record["noise"], record["image"], "")
        outputs = {key[len(prefix):]: value for key, value in estimates.items() if key.startswith(prefix)}
        truth = crop_to(clean[record["image"]], next(iter(outputs.values())).shape[-2:])
        scores = {}
        for label, out in outputs.items():
            columns = psnr_columns(truth, out, domain, tem_psnr, reference_counts)
            scores[f"psnr_{label}"] = columns.pop("psnr")
            scores.update({f"{label}_{name}": value for name, value in columns.items()})
        scores.update({f"ssim_{label}": ssim(truth, out, domain) for label, out in outputs.items()})
        rows.append({**{k: record[k] for k in ("case", "noise", "image")}, **scores,
                     **{k: v for k, v in record.items() if k not in ("case", "noise", "image")}})
    return pd.DataFrame(rows)


def score_case_job(
    *,
    adaptation_path: str,
    estimates_path: str,
    clean_path: str,
    metadata_path: str,
    domain: str,
    tem_psnr: Sequence[str],
    reference_counts: float,
    table_path: str,
    figure_path: str,
) -> None:
    """Rule ``gaintuning_score``: per-image metrics of a case against the clean test images
    (:func:`score_case`; each image's independent unit from the test split's ``metadata_path``,
    :func:`temdenoise.stats.metadata_units`), and the before/after figure of its first item."""
    records = pd.read_csv(adaptation_path)
    estimates = load_arrays(estimates_path)
    clean = load_stack(clean_path)
    table = score_case(records, estimates, clean, domain, tem_psnr, reference_counts)
    units, unit_kind = metadata_units(pd.read_csv(metadata_path), len(clean))
    table.insert(3, "unit", [units[image] for image in table["image"]])
    table.insert(4, "unit_kind", unit_kind)
    save_table(table_path, table)
    first = records.iloc[0]
    prefix = estimate_key(first["noise"], first["image"], "")
    example = {key[len(prefix):]: value for key, value in estimates.items() if key.startswith(prefix)}
    truth = crop_to(clean[first["image"]], example["noisy"].shape[-2:])
    settings = AdaptSettings(loss=first["loss"], lr=first["lr"], steps=int(first["steps"]))
    plot_example(figure_path, example, truth, domain,
                 f"GainTuning, {first['case']}, {first['noise']} ({describe(settings)}; {first['setting_from']})")


# -- tables ---------------------------------------------------------------------------------------


def save_tables(
    stem: str, table: pd.DataFrame, caption: str, shown: pd.DataFrame | None = None, convention: str = CONVENTION["unit"]
) -> None:
    """Write ``stem``.csv (``table``), .md and .tex (``shown``, default ``table``); the md/tex
    captions repeat the PSNR ``convention``."""
    save_table(f"{stem}.csv", table)
    shown = table if shown is None else shown
    note = f"{caption} {convention}."
    save_text(f"{stem}.md", f"{note}\n\n{shown.to_markdown(index=False, floatfmt='.2f')}\n")
    save_text(f"{stem}.tex", shown.to_latex(index=False, float_format="%.2f", caption=note))


def convention_columns(columns: Sequence[str]) -> list[str]:
    """The ``<label>_psnr_<name>`` columns of :func:`score_case` (TEM PSNR conventions), in order."""
    return [c for c in columns
            if not c.startswith("psnr_") and "_psnr_" in c and c.rsplit("_psnr_", 1)[1] in TEM_PSNR]


def conventions_of(columns: Sequence[str]) -> list[str]:
    """The TEM PSNR conventions of :func:`convention_columns`, the primary one first."""
    return list(dict.fromkeys(c.rsplit("_psnr_", 1)[1] for c in convention_columns(columns)))


def case_convention(conventions: Sequence[str]) -> str:
    """The convention sentence of a GainTuning table whose TEM rows carry ``conventions``."""
    if not conventions:
        return CONVENTION["unit"]
    return (f"{table_convention(conventions)}; a column <method> is that method's mean psnr, <method>_psnr_<name> "
            "its mean under convention psnr_<name> (– on natural images)")


def compared_labels(per_image: pd.DataFrame) -> list[str]:
    """Methods of a case's metrics table that GainTuning is compared with (all but the noisy input)."""
    labels = [c.removeprefix("psnr_") for c in per_image.columns if c.startswith("psnr_")]
    return [label for label in labels if label not in ("noisy", "gaintuning")]


def summarise_case(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per condition of one case: mean PSNR of every method, the setting and where it came from,
    and the paired difference GainTuning - each other method over the test units (``unit``,
    ``units``) with its 95% CI and p-value (columns ``gaintuning-<b>``, ``..._low``, ``..._high``,
    ``..._p``; :func:`adjust_summary` adds the table's Holm-adjusted verdicts); TEM cases also the
    mean of every method under every PSNR convention (``<label>_psnr_<name>``, :func:`score_case`)."""
    columns = [c for c in per_image.columns if c.startswith("psnr_")]
    means = columns + convention_columns(per_image.columns)
    summary = per_image.groupby("noise", sort=False)[means].mean().reset_index()
    summary = summary.rename(columns={c: c.removeprefix("psnr_") for c in columns})
    first = per_image.iloc[0]
    summary.insert(0, "case", first["case"])
    summary["images"] = per_image.groupby("noise", sort=False).size().to_numpy()
    summary["unit"] = per_image["unit_kind"].iloc[0]
    summary["n_units"] = per_image.groupby("noise", sort=False)["unit"].nunique().to_numpy()
    summary["setting"] = describe(AdaptSettings(loss=first["loss"], lr=first["lr"], steps=int(first["steps"])))
    summary["setting_from"] = first["setting_from"]
    summary["adapted_params_percent"] = 100 * first["adapted_fraction"]
    tidy = per_image.melt(id_vars=["noise", "image", "unit", "unit_kind"], value_vars=columns, var_name="method",
                          value_name="psnr")
    tidy["method"] = tidy["method"].str.removeprefix("psnr_")
    pairs = [("gaintuning", other) for other in compared_labels(per_image)]
    differences = paired_table(tidy, pairs, family=None)
    for _, row in differences.iterrows():
        name = f"gaintuning-{row['b']}"
        at = summary["noise"] == row["noise"]
        for suffix, key in (("", "diff_mean"), ("_low", "diff_low"), ("_high", "diff_high"), ("_p", "diff_p")):
            summary.loc[at, name + suffix] = row[key]
    return summary


def difference_stems(summary: pd.DataFrame) -> list[str]:
    """The ``gaintuning-<b>`` difference columns of a summary (:func:`summarise_case`)."""
    return [c.removesuffix("_p") for c in summary.columns if c.startswith("gaintuning-") and c.endswith("_p")]


def adjust_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """A table of :func:`summarise_case` rows with every difference's Holm-adjusted p-value over the
    whole table (``..._p_holm``, one family) and its adjusted verdict (``..._resolved``)."""
    summary = summary.copy()
    stems = difference_stems(summary)
    adjusted = holm(summary[[f"{stem}_p" for stem in stems]].to_numpy(dtype=float).ravel()).reshape(len(summary), -1)
    for column, stem in enumerate(stems):
        summary[f"{stem}_p_holm"] = adjusted[:, column]
        summary[f"{stem}_resolved"] = adjusted[:, column] < 0.05
    return summary


def shown_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary for md/tex (after :func:`adjust_summary`): each paired difference as one cell,
    e.g. ``+0.52 dB [-0.10, +1.14] not resolved``; a TEM PSNR convention on a row of natural images as "–"."""
    shown = summary.copy()
    for column in convention_columns(summary.columns):
        shown[column] = [format_psnr_mean(value) for value in summary[column]]
    for stem in difference_stems(summary):
        shown[stem] = [
            "" if np.isnan(mean) else format_interval(mean, low, high) + ("" if resolved else " not resolved")
            for mean, low, high, resolved in zip(summary[stem], summary[f"{stem}_low"], summary[f"{stem}_high"],
                                                 summary[f"{stem}_resolved"])
        ]  # "": the method is not in this case
        shown = shown.drop(columns=[f"{stem}_{suffix}" for suffix in ("low", "high", "p", "p_holm", "resolved")])
    return shown


def summary_job(tables: Sequence[str], kinds: dict[str, str], stems: dict[str, str]) -> None:
    """Rule ``gaintuning_tables``: per case and condition, mean PSNR, setting and its source, and the
    paired differences with 95% CIs; one table per case kind."""
    combined = pd.concat([summarise_case(pd.read_csv(t)) for t in tables], ignore_index=True)
    paired = ("GainTuning - X: paired PSNR difference (dB) averaged within each independent unit (column unit: "
              "structure or image; n_units: how many), mean [unadjusted 95% Student-t CI over the units]; 'not "
              "resolved' unless its p-value, Holm-adjusted over every difference of this table, is below 0.05. "
              "Setting: loss, Adam lr, steps, chosen on the validation images of the test dataset "
              "(setting_from = validation) or fixed by config.")
    captions = {
        "ood": "GainTuning on out-of-distribution noise: mean PSNR (dB) of the pre-trained model, after "
        "GainTuning, of the bias-free model and of the model trained on the wide range. " + paired,
        "shift": "GainTuning under distribution shift (train -> test data): mean PSNR (dB). " + paired,
    }
    for kind, stem in stems.items():
        part = combined[combined["case"].map(kinds) == kind]
        part = adjust_summary(part[[c for c in part.columns if part[c].notna().any()]])
        save_tables(stem, part, captions[kind], shown_summary(part), case_convention(conventions_of(part.columns)))


# -- step curve (rules gaintuning_curve, gaintuning_curve_score) and net bias --------------------


def curve_job(
    *,
    section: dict[str, Any],
    entry: dict[str, Any] | None = None,
    selection_path: str | None = None,
    model: tuple[str, dict[str, Any]],
    noisy_path: str,
    noise: str,
    metadata_path: str,
    steps_path: str,
    estimates_path: str,
    device: str = "cpu",
    seed: int = 0,
) -> None:
    """Rule ``gaintuning_curve``: estimates of the first noisy test item every ``curve.every`` steps
    of gains-only and all-parameter adaptation (the case's loss and lr), for the scoring job."""
    curve = section["curve"]
    noisy, sizes = _noisy_items({noise: noisy_path}, metadata_path, 1)
    chosen, source = settings_of_case(section, entry, selection_path)
    settings = replace(chosen, steps=curve["steps"])
    pretrained = load_trained(model[0], model[1], device)
    item = central_crop(noisy[noise][0], settings.crop, getattr(pretrained, "size_multiple", 1))
    rows, estimates = [], {}
    for mode in ("gains", "all"):
        snapshots, tuned = adaptation_snapshots(pretrained, item, parse_condition(noise), settings, every=curve["every"],
                                                mode=mode, pixel_size=float(sizes[0]), device=device, seed=seed)
        count = tuned.count()["adapted_params"]
        for step, estimate in snapshots.items():
            estimates[f"{mode}/{step}"] = estimate
            rows.append({"mode": mode, "adapted_params": count, "step": step, "loss": settings.loss,
                         "lr": settings.lr if mode == "gains" else settings.all_params_lr, "setting_from": source})
    save_table(steps_path, pd.DataFrame(rows))
    save_arrays(estimates_path, estimates)


def score_curve_job(
    *, steps_path: str, estimates_path: str, clean_path: str, domain: str, tem_psnr: Sequence[str],
    reference_counts: float, noise: str, title: str, table_stem: str, figure_path: str,
) -> None:
    """Rule ``gaintuning_curve_score``: PSNR against adaptation steps of the first test item
    (``psnr`` and, for TEM, ``psnr_<name>`` per convention of ``tem_psnr``, as ``evaluate`` scores)."""
    curve = pd.read_csv(steps_path)
    estimates = load_arrays(estimates_path)
    clean = load_stack(clean_path)
    truth = crop_to(clean[0], next(iter(estimates.values())).shape[-2:])
    scores = pd.DataFrame([psnr_columns(truth, estimates[f"{mode}/{step}"], domain, tem_psnr, reference_counts)
                           for mode, step in zip(curve["mode"], curve["step"])])
    curve = pd.concat([curve, scores], axis=1)
    first = curve.iloc[0]  # a gains row: the case's loss and lr, chosen on validation or fixed by config
    save_tables(table_stem, curve, f"PSNR (dB) against GainTuning steps at {noise} ({first['loss']} loss, gains lr "
                f"{first['lr']:g}, {first['setting_from']}): gains only vs all parameters.",
                convention=table_convention(tem_psnr_conventions(curve.columns)))
    plot_curve(figure_path, curve, title)


def net_bias_before_after(
    model: nn.Module,
    noisy_sets: dict[str, Sequence[np.ndarray]],
    settings: AdaptSettings,
    *,
    patch: int,
    pixel_sizes: Sequence[float] | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> pd.DataFrame:
    """Net bias ``f(y) - A_y y`` (:func:`net_bias_jvp`) of ``model`` before and after GainTuning.

    Each image is adapted exactly as in its case (central ``settings.crop``, same seed), so the
    adapted model is the one scored in the case table; the net bias is computed on the whole crop
    (every output pixel sees its full receptive field) and summarised on its central ``patch``:
    RMS (clean scale) and relative to the RMS of the output, ``|b_y| / |f(y)|``.
    """
    rows = []
    multiple = getattr(model, "size_multiple", 1)
    for name, items in noisy_sets.items():
        condition = parse_condition(name)
        for index, item in enumerate(items):
            item = central_crop(item, settings.crop, multiple)
            pixel_size = 1.0 if pixel_sizes is None else float(pixel_sizes[index])
            _, _, tuned = gaintune_item(model, item, condition, settings, pixel_size=pixel_size, device=device, seed=seed + index)
            row = {"noise": name, "image": index}
            for label, net in (("pretrained", model.eval()), ("gaintuning", tuned.eval())):
                bias = central_crop(net_bias_jvp(net.cpu(), item).numpy(), patch)
                with torch.no_grad():
                    output = central_crop(from_batch(net(as_batch(item, net)), item), patch)
                row[f"net_bias_{label}"] = float(np.sqrt(np.mean(bias**2)))
                row[f"relative_{label}"] = float(np.sqrt(np.sum(bias**2) / np.sum(output**2)))
            rows.append(row)
    return pd.DataFrame(rows)


def net_bias_job(
    *,
    section: dict[str, Any],
    entry: dict[str, Any] | None = None,
    selection_path: str | None = None,
    model: tuple[str, dict[str, Any]],
    noisy_paths: dict[str, str],
    metadata_path: str,
    table_stem: str,
    figure_path: str,
    device: str = "cpu",
    seed: int = 0,
) -> None:
    """Rule ``gaintuning_net_bias``: net bias of a network with biases before and after GainTuning
    (noisy test items only: the net bias needs no clean image)."""
    noisy, sizes = _noisy_items(noisy_paths, metadata_path, section["images"])
    settings, source = settings_of_case(section, entry, selection_path)
    table = net_bias_before_after(
        load_trained(model[0], model[1], device), noisy, settings,
        patch=section["net_bias"]["patch"], pixel_sizes=sizes, device=device, seed=seed,
    )
    save_tables(table_stem, table, "Net bias f(y) - A_y y on the central patch of the adapted crop, before and after "
                f"GainTuning ({describe(settings)}; {source}): RMS (clean scale) and relative to the RMS of the output.")
    plot_net_bias(figure_path, table)


# -- figures --------------------------------------------------------------------------------------


def save_figure(path: str, figure: plt.Figure) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=str(path).rsplit(".", 1)[-1], dpi=120, bbox_inches="tight")
    plt.close(figure)


def plot_example(path: str, example: dict[str, np.ndarray], clean: np.ndarray, domain: str, title: str) -> None:
    """Before/after panels: clean, noisy, pre-trained, GainTuning, compared models (PSNR in titles)."""
    panels = {"clean": clean, **{k: v for k, v in example.items() if k != "clean"}}
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    low, high = np.percentile(clean, [0.5, 99.5])
    for axis, (label, image) in zip(np.atleast_1d(axes), panels.items()):
        image = image[len(image) // 2] if image.ndim == 3 else image
        shown = clean[len(clean) // 2] if clean.ndim == 3 else clean
        axis.imshow(image, cmap="gray", vmin=low, vmax=high)
        axis.set_title(label if label == "clean" else f"{label}\n{psnr(shown, image, domain):.2f} dB", fontsize=8)
        axis.axis("off")
    figure.suptitle(title, fontsize=9)
    save_figure(path, figure)


def plot_curve(path: str, curve: pd.DataFrame, title: str) -> None:
    """PSNR against adaptation steps, gains only vs all parameters."""
    figure, axis = plt.subplots(figsize=(4.5, 3.2))
    for mode, group in curve.groupby("mode"):
        label = f"{mode} ({int(group['adapted_params'].iloc[0]):,} params)"
        axis.plot(group["step"], group["psnr"], marker="o", label=label)
    axis.set_xlabel("adaptation steps")
    axis.set_ylabel("PSNR (dB)")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8)
    save_figure(path, figure)


def plot_net_bias(path: str, table: pd.DataFrame) -> None:
    """Net-bias RMS before and after GainTuning per noise condition."""
    means = table.groupby("noise", sort=False)[["net_bias_pretrained", "net_bias_gaintuning"]].mean()
    axis = means.rename(columns=lambda c: c.removeprefix("net_bias_")).plot.bar(figsize=(4.5, 3.2), rot=0)
    axis.set_ylabel("net bias RMS (clean scale)")
    save_figure(path, axis.figure)
