"""The data card of a simulated TEM dataset: the image statistics that decide how hard clean HRTEM
images are to denoise, against the TEM paper's released clean images.

The statistics are those of ``shared/tools/image_stats.py`` (REFERENCE.md section 12), which
``tests/test_data_stats.py`` checks this module against image by image:

- ``mean_sq_contrast``: mean (I - 1)^2 (vacuum = 1);
- ``hp_std``: std of the image minus its Gaussian blur of sigma 1 A (atomic-scale contrast);
- ``skew_hp``: skewness of that high-pass image (> 0: bright columns dominate);
- ``band_*``: share of the variance (mean removed, Hann window, abs(k) > 0.02 1/A) in the spatial
  frequency bands abs(k) < 0.25, 0.25-0.40, 0.40-0.60 (Pt {111}, {200}; CeO2 {220}), > 0.60 1/A;
- ``oracle_wiener``: PSNR (dB) of the per-image oracle Wiener filter on one Poisson draw at
  ``counts`` per vacuum pixel (seed 0), in the TEM paper's convention (expected counts per pixel
  clamped to [0, 1], data range 1): a training-free measure of difficulty, higher = easier.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter
from scipy.stats import skew

from temdenoise.classical import frames_of

# Spatial-frequency bands (1/A) of the variance shares; the first bound drops the window's DC leak.
BANDS = ((0.02, 0.25), (0.25, 0.40), (0.40, 0.60), (0.60, math.inf))
BAND_COLUMNS = tuple(f"band_{low:.2f}-{high:.2f}" if high < math.inf else f"band_>{low:.2f}" for low, high in BANDS)
STAT_COLUMNS = ("mean_sq_contrast", "hp_std", "skew_hp", *BAND_COLUMNS, "oracle_wiener")
# The lattice band (Pt {111} 0.44, Pt {200} 0.51, CeO2 {220} 0.52 1/A): a dataset whose share there
# is below this has lost its lattice (issue 34: a 0.94-A blur left 1.0 % of it).
LATTICE_BAND = "band_0.40-0.60"
LATTICE_WARNING_SHARE = 0.05
# The TEM paper's released clean images (mean of 4; REFERENCE.md section 12, measured with
# shared/tools/image_stats.py at 0.0625 A/px and 0.45 counts per vacuum pixel), and their defocus: 6 nm
# on the side of focus where the columns are bright.
AUTHORS = {"mean_sq_contrast": 0.0123, "hp_std": 0.098, "skew_hp": 1.47, "band_0.02-0.25": 0.025,
           "band_0.25-0.40": 0.487, "band_0.40-0.60": 0.451, "band_>0.60": 0.037, "oracle_wiener": 34.65}
AUTHORS_DEFOCUS = 60.0
# The largest spherical aberration (A) at which the bright-column side was checked (tests/test_simulate.py).
BRIGHT_SIDE_CHECKED_CS = 1.3e5
# Half-width (A) of the defocus-matched subset around the authors' defocus.
MATCHED_HALF_WIDTH = 20.0
PAPER_COUNTS = 0.45


def image_stats(image: np.ndarray, pixel_size: float, counts: float = PAPER_COUNTS,
                rng: np.random.Generator | None = None) -> dict[str, float]:
    """The statistics of one clean image (normalised intensity, vacuum 1) at ``pixel_size`` A;
    ``rng`` draws the oracle Wiener filter's Poisson sample (seed 0 when not given)."""
    rng = np.random.default_rng(0) if rng is None else rng
    x = np.asarray(image, dtype=np.float64)
    high_pass = x - gaussian_filter(x, 1.0 / pixel_size, mode="reflect")
    window = np.hanning(x.shape[0])[:, None] * np.hanning(x.shape[1])[None, :]
    power = np.abs(np.fft.fft2((x - x.mean()) * window)) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(x.shape[0], pixel_size), np.fft.fftfreq(x.shape[1], pixel_size),
                              indexing="ij"))
    total = power[k > BANDS[0][0]].sum()
    stats = {"mean_sq_contrast": float(((x - 1.0) ** 2).mean()), "hp_std": float(high_pass.std()),
             "skew_hp": float(skew(high_pass.ravel()))}
    for name, (low, high) in zip(BAND_COLUMNS, BANDS):
        stats[name] = float(power[(k >= low) & (k < high)].sum() / total)
    noisy = rng.poisson(np.clip(x, 0, None) * counts) / counts
    spectrum = np.fft.fft2(x)
    noise_power = x.size * x.mean() / counts   # Poisson noise in normalised units: variance x / counts
    estimate = np.real(np.fft.ifft2(np.abs(spectrum) ** 2 / (np.abs(spectrum) ** 2 + noise_power) * np.fft.fft2(noisy)))
    clean_counts, estimate_counts = np.clip(x * counts, 0, 1), np.clip(estimate * counts, 0, 1)
    stats["oracle_wiener"] = float(10 * np.log10(1.0 / np.mean((clean_counts - estimate_counts) ** 2)))
    return stats


def matched_defocus(Cs: float) -> float:
    """The authors' defocus, 6 nm, on the side of focus where the columns are bright (A; abTEM's
    convention, positive defocus = underfocus): overfocus, -60 A, at Cs = -13 um and at +13 um alike
    (at these small Cs the defocus term sets the sign of the phase contrast), as
    ``tests/test_simulate.py::test_bright_columns_side_follows_the_sign_of_defocus`` checks; ``Cs`` is
    taken so that a dataset at another Cs is checked there too."""
    if abs(Cs) > BRIGHT_SIDE_CHECKED_CS:
        raise ValueError(f"the bright-column side is checked for |Cs| <= {BRIGHT_SIDE_CHECKED_CS:g} A only, got {Cs:g}")
    return -AUTHORS_DEFOCUS


def frames(stack: list[np.ndarray], metadata: pd.DataFrame) -> tuple[list[np.ndarray], pd.DataFrame]:
    """The images of a split (a video's frames one by one), with their metadata rows in order."""
    images = frames_of(stack)
    if len(images) != len(metadata):
        raise ValueError(f"{len(images)} images but {len(metadata)} metadata rows")
    return images, metadata.reset_index(drop=True)


def split_stats(stack: list[np.ndarray], metadata: pd.DataFrame, counts: float = PAPER_COUNTS) -> pd.DataFrame:
    """One row of statistics per image of a split, beside its defocus and measured contrast class; the
    oracle Wiener filter's Poisson draws come from one generator of seed 0 in image order, as in
    ``image_stats.py``, so the split's means are the tool's (up to its 40-image limit)."""
    images, metadata = frames(stack, metadata)
    rng = np.random.default_rng(0)
    rows = [{"defocus": row.defocus, "contrast_class": row.contrast_class,
             **image_stats(image, float(row.pixel_size), counts, rng)} for image, row in zip(images, metadata.itertuples())]
    return pd.DataFrame(rows)


def summary(per_image: pd.DataFrame, Cs: float) -> pd.DataFrame:
    """Mean statistics of the whole split, of each measured contrast class and of the images within
    +-:data:`MATCHED_HALF_WIDTH` A of the authors' defocus, and the authors' row."""
    subsets = [("all", per_image)]
    subsets += [(f"class {name}", group) for name, group in per_image.groupby("contrast_class")]
    target = matched_defocus(Cs)
    matched = per_image[(per_image.defocus - target).abs() <= MATCHED_HALF_WIDTH]
    subsets.append((f"defocus {target:+.0f} +- {MATCHED_HALF_WIDTH:.0f} A", matched))
    rows = [{"subset": name, "images": len(group), **{c: group[c].mean() if len(group) else float("nan")
                                                      for c in STAT_COLUMNS}} for name, group in subsets]
    rows.append({"subset": "authors (REFERENCE.md 12)", "images": 4, **AUTHORS})
    return pd.DataFrame(rows)


def lattice_warning(table: pd.DataFrame) -> str | None:
    """A warning naming the likely cause when the split's lattice band share is below
    :data:`LATTICE_WARNING_SHARE`, else None."""
    share = float(table.loc[table.subset == "all", LATTICE_BAND].iloc[0])
    if share >= LATTICE_WARNING_SHARE:
        return None
    return (f"WARNING: {share:.1%} of the variance lies at 0.40-0.60 1/A (the authors' images: "
            f"{AUTHORS[LATTICE_BAND]:.0%}): the lattice fringes are lost. Likely causes: a blur wider than "
            "the lattice period (image_spread, mtf_sigma; a Gaussian of 0.9 A removes Pt {111}), a detector "
            "pixel too coarse for 0.6 1/A (Nyquist below it), or the contrast carried by shading (thickness, "
            "a support edge) rather than by the columns.")


def data_card(dataset: str, split: str, per_image: pd.DataFrame, table: pd.DataFrame, Cs: float,
              pixel_size: float) -> str:
    """The Markdown data card of one split: its per-image statistics ``per_image`` (:func:`split_stats`)
    and their :func:`summary` ``table``."""
    shown = table.rename(columns={c: c.replace("band_", "") for c in BAND_COLUMNS})
    lines = [f"**Data card: {dataset}, {split} split.**", "",
             f"{len(per_image)} clean images at {pixel_size:g} A/px, defocus {per_image.defocus.min():+.0f} to "
             f"{per_image.defocus.max():+.0f} A (positive = underfocus), Cs {Cs:+.3g} A. Oracle Wiener PSNR at "
             f"{PAPER_COUNTS} counts per vacuum pixel. Statistics: `temdenoise.simulate.data_stats` "
             "(= shared/tools/image_stats.py); bands in 1/A, shares of the variance.", ""]
    warning = lattice_warning(table)
    if warning:
        lines += [f"**{warning}**", ""]
    lines.append(shown.to_markdown(index=False, floatfmt=".4g"))
    return "\n".join(lines) + "\n"
