"""The GainTuning experiments of the study: per-image adaptation, step curves, net bias, tables, figures.

Each test item (an ``(H, W)`` image or a ``(T, H, W)`` video) is adapted on its own, starting from
the pre-trained weights every time (Mohan et al., NeurIPS 2021). The central ``crop`` of each item
is used (a multiple of the network's ``size_multiple``) so that the adaptation cost is bounded;
every compared method is scored on the same crop.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from temdenoise.adapt.gaintuning import GainTuning, adapt  # noqa: E402
from temdenoise.adapt.losses import make_loss  # noqa: E402
from temdenoise.analysis.jacobian import net_bias_jvp  # noqa: E402
from temdenoise.io import atomic_path, load_stack, save_stack, save_table, save_text  # noqa: E402
from temdenoise.metrics import CONVENTION, psnr, ssim  # noqa: E402
from temdenoise.models import load_trained  # noqa: E402
from temdenoise.models.udvd import frame_windows  # noqa: E402
from temdenoise.noise import NoiseCondition, item_pixel_sizes, parse_condition  # noqa: E402


@dataclass
class AdaptSettings:
    """The ``experiments.gaintuning`` knobs of one adaptation."""

    loss: str = "sure"
    lr: float = 1e-3
    steps: int = 20
    all_params_lr: float = 1e-4
    crop: int = 0
    loss_options: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: dict[str, Any], entry: dict[str, Any] | None = None) -> "AdaptSettings":
        """Settings of ``section`` (``experiments.gaintuning``), with the per-case overrides
        (:data:`CASE_OVERRIDES`, ``None`` = the section's value) of the case ``entry``."""
        merged = {**section, **{k: v for k, v in (entry or {}).items() if k in CASE_OVERRIDES and v is not None}}
        return cls(**{key: merged[key] for key in cls.__dataclass_fields__ if key in merged and merged[key] is not None})


CASE_OVERRIDES = ("loss", "lr", "steps", "loss_options")
"""Keys a case may set to override the section's value (e.g. noise resampling for Poisson cases)."""


def central_crop(item: np.ndarray, size: int, multiple: int = 1) -> np.ndarray:
    """The central ``size`` x ``size`` window of the last two axes (``0`` = whole), sides cut to ``multiple``."""
    height, width = item.shape[-2:]
    crop_h, crop_w = (height, width) if size <= 0 else (min(size, height), min(size, width))
    crop_h, crop_w = crop_h - crop_h % multiple, crop_w - crop_w % multiple
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return item[..., top : top + crop_h, left : left + crop_w]


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


def run_case(
    pretrained: nn.Module,
    compared: dict[str, nn.Module],
    noisy_sets: dict[str, Sequence[np.ndarray]],
    clean: Sequence[np.ndarray],
    domain: str,
    settings: AdaptSettings,
    *,
    pixel_sizes: Sequence[float] | None = None,
    device: str = "cpu",
    seed: int = 0,
    log=None,
) -> tuple[pd.DataFrame, list[np.ndarray], dict[str, np.ndarray]]:
    """PSNR/SSIM per item and condition of: noisy, pre-trained, GainTuning, and each ``compared`` model.

    ``noisy_sets`` maps a condition name to the noisy test items. Returns the per-item table, the
    adapted gains of each (condition, item) in table order, and an example (first item of the first
    condition) as arrays ``clean``, ``noisy``, ``pretrained``, ``gaintuning``.
    """
    multiple = max(getattr(m, "size_multiple", 1) for m in [pretrained, *compared.values()])
    rows, gains, example = [], [], {}
    for name, items in noisy_sets.items():
        condition = parse_condition(name)
        for index, (noisy_item, clean_item) in enumerate(zip(items, clean)):
            noisy_item = central_crop(noisy_item, settings.crop, multiple)
            clean_item = central_crop(clean_item, settings.crop, multiple)
            start = time.perf_counter()
            reference, result, tuned = gaintune_item(
                pretrained, noisy_item, condition, settings, device=device, seed=seed + index,
                pixel_size=1.0 if pixel_sizes is None else float(pixel_sizes[index]),
            )
            seconds = time.perf_counter() - start
            estimates = {
                "noisy": noisy_item,
                "pretrained": from_batch(reference, noisy_item),
                "gaintuning": from_batch(result.estimate, noisy_item),
            }
            for label, model in compared.items():
                estimates[label] = from_batch(_pretrained(model, as_batch(noisy_item, model).to(device)), noisy_item)
            row = {"noise": name, "image": index}
            for label, estimate in estimates.items():
                row[f"psnr_{label}"] = psnr(clean_item, estimate, domain)
                row[f"ssim_{label}"] = ssim(clean_item, estimate, domain)
            row.update(tuned.count(), final_loss=result.losses[-1] if result.losses else np.nan, seconds=seconds)
            rows.append(row)
            gains.append(tuned.gain_vector())
            if not example:
                example = {"clean": clean_item, **estimates}
            if log:
                log.info("%s image %d: pre-trained %.2f dB -> GainTuning %.2f dB (%.1f s)", name, index,
                         row["psnr_pretrained"], row["psnr_gaintuning"], seconds)
    return pd.DataFrame(rows), gains, example


def adaptation_curve(
    model: nn.Module,
    noisy: np.ndarray,
    clean: np.ndarray,
    condition: NoiseCondition,
    domain: str,
    settings: AdaptSettings,
    *,
    every: int,
    pixel_size: float = 1.0,
    device: str = "cpu",
    seed: int = 0,
) -> pd.DataFrame:
    """PSNR against adaptation steps for gains-only and all-parameter adaptation of one item."""
    multiple = getattr(model, "size_multiple", 1)
    noisy, clean = central_crop(noisy, settings.crop, multiple), central_crop(clean, settings.crop, multiple)
    rows = []
    for mode in ("gains", "all"):
        _, result, tuned = gaintune_item(
            model, noisy, condition, settings, mode=mode, pixel_size=pixel_size, device=device, seed=seed,
            monitor=lambda estimate: psnr(clean, from_batch(estimate, noisy), domain), monitor_every=every,
        )
        count = tuned.count()["adapted_params"]
        rows += [{"mode": mode, "adapted_params": count, "step": s, "psnr": v} for s, v in result.monitored]
    return pd.DataFrame(rows)


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


def save_tables(stem: str, table: pd.DataFrame, caption: str) -> None:
    """Write ``stem``.csv, .md and .tex; the md/tex captions repeat the PSNR convention."""
    save_table(f"{stem}.csv", table)
    note = f"{caption} {CONVENTION['unit']}."
    save_text(f"{stem}.md", f"{note}\n\n{table.to_markdown(index=False, floatfmt='.2f')}\n")
    save_text(f"{stem}.tex", table.to_latex(index=False, float_format="%.2f", caption=note))


def summarise_case(case: str, per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR per condition of every method of one case (one row per condition)."""
    columns = [c for c in per_image.columns if c.startswith("psnr_")]
    summary = per_image.groupby("noise", sort=False)[columns].mean().reset_index()
    summary = summary.rename(columns={c: c.removeprefix("psnr_") for c in columns})
    summary.insert(0, "case", case)
    summary["adapted_params_percent"] = 100 * per_image["adapted_fraction"].iloc[0]
    return summary


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


# -- workflow jobs: one function per rule, reading and writing the files the rule names ----------


def _test_items(noisy_paths: dict[str, str], clean_path: str, metadata_path: str, images: int):
    clean = load_stack(clean_path)
    sizes = item_pixel_sizes(pd.read_csv(metadata_path), len(clean))
    count = images or len(clean)
    noisy = {name: load_stack(path)[:count] for name, path in noisy_paths.items()}
    return noisy, clean[:count], sizes[:count]


def case_job(
    *,
    case: str,
    section: dict[str, Any],
    entry: dict[str, Any] | None = None,
    pretrained: tuple[str, dict[str, Any]],
    compared: dict[str, tuple[str, dict[str, Any]]],
    noisy_paths: dict[str, str],
    clean_path: str,
    metadata_path: str,
    domain: str,
    table_path: str,
    gains_path: str,
    figure_path: str,
    device: str = "cpu",
    seed: int = 0,
    log=None,
) -> None:
    """Rule ``gaintuning_case``: per-image PSNR of one case, adapted gains, before/after figure.

    ``pretrained`` and each ``compared`` value are ``(weights path, methods entry)``; ``entry`` is
    the case (its ``loss``/``lr``/``steps``/``loss_options`` override the section's).
    """
    noisy, clean, sizes = _test_items(noisy_paths, clean_path, metadata_path, section["images"])
    model = load_trained(pretrained[0], pretrained[1], device)
    others = {label: load_trained(path, entry, device) for label, (path, entry) in compared.items()}
    table, gains, example = run_case(
        model, others, noisy, clean, domain, AdaptSettings.from_config(section, entry),
        pixel_sizes=sizes, device=device, seed=seed, log=log,
    )
    table.insert(0, "case", case)
    save_table(table_path, table)
    save_stack(gains_path, gains)
    first = next(iter(noisy_paths))
    plot_example(figure_path, {k: v for k, v in example.items() if k != "clean"}, example["clean"], domain,
                 f"GainTuning, {case}, {first}")


def summary_job(tables: Sequence[str], kinds: dict[str, str], stems: dict[str, str]) -> None:
    """Rule ``gaintuning_tables``: mean PSNR per case and condition, one table per case kind."""
    summaries = [summarise_case(t["case"].iloc[0], t) for t in map(pd.read_csv, tables)]
    combined = pd.concat(summaries, ignore_index=True)
    captions = {
        "ood": "GainTuning on out-of-distribution noise: mean PSNR (dB) of the pre-trained model, after "
        "GainTuning, of the bias-free model and of the model trained on the wide range.",
        "shift": "GainTuning under distribution shift (train -> test data): mean PSNR (dB).",
    }
    for kind, stem in stems.items():
        part = combined[combined["case"].map(kinds) == kind].dropna(axis=1, how="all")
        save_tables(stem, part, captions[kind])


def curve_job(
    *,
    section: dict[str, Any],
    entry: dict[str, Any] | None = None,
    model: tuple[str, dict[str, Any]],
    noisy_path: str,
    noise: str,
    clean_path: str,
    metadata_path: str,
    domain: str,
    table_stem: str,
    figure_path: str,
    device: str = "cpu",
    seed: int = 0,
) -> None:
    """Rule ``gaintuning_curve``: PSNR vs adaptation steps, gains only vs all parameters (first image)."""
    curve_section = section["curve"]
    noisy, clean, sizes = _test_items({noise: noisy_path}, clean_path, metadata_path, 1)
    settings = AdaptSettings.from_config(section, {**(entry or {}), "steps": curve_section["steps"]})
    curve = adaptation_curve(
        load_trained(model[0], model[1], device), noisy[noise][0], clean[0], parse_condition(noise), domain, settings,
        every=curve_section["every"], pixel_size=float(sizes[0]), device=device, seed=seed,
    )
    save_tables(table_stem, curve, f"PSNR (dB) against GainTuning steps at {noise}: gains only vs all parameters.")
    plot_curve(figure_path, curve, f"{curve_section['case']}, {noise}")


def net_bias_job(
    *,
    section: dict[str, Any],
    entry: dict[str, Any] | None = None,
    model: tuple[str, dict[str, Any]],
    noisy_paths: dict[str, str],
    clean_path: str,
    metadata_path: str,
    table_stem: str,
    figure_path: str,
    device: str = "cpu",
    seed: int = 0,
) -> None:
    """Rule ``gaintuning_net_bias``: net bias of a network with biases before and after GainTuning."""
    noisy, _, sizes = _test_items(noisy_paths, clean_path, metadata_path, section["images"])
    table = net_bias_before_after(
        load_trained(model[0], model[1], device), noisy, AdaptSettings.from_config(section, entry),
        patch=section["net_bias"]["patch"], pixel_sizes=sizes, device=device, seed=seed,
    )
    save_tables(table_stem, table, "Net bias f(y) - A_y y on the central patch of the adapted crop, before and after "
                "GainTuning: RMS (clean scale) and relative to the RMS of the output.")
    plot_net_bias(figure_path, table)
