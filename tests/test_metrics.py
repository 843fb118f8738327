"""PSNR conventions: natural images clamp and use range 1; TEM uses the clean image's range and the
TEM paper's counts at the base dose (seed_counts); scored tables stay finite."""

import re

import numpy as np
import pandas as pd
import pytest

from temdenoise import metrics
from temdenoise.metrics import psnr, ssim


def test_natural_psnr_clamps_and_uses_unit_range():
    clean = np.full((8, 8), 0.5)
    estimate = clean + 0.1
    assert psnr(clean, estimate, "natural") == pytest.approx(20.0)
    with np.errstate(divide="ignore"):
        assert psnr(np.ones((8, 8)), np.full((8, 8), 3.0), "natural") == np.inf  # clamped to 1


def test_tem_psnr_uses_clean_range():
    clean = np.linspace(0.5, 1.5, 64).reshape(8, 8)  # range 1
    assert psnr(clean, clean + 0.1, "tem") == pytest.approx(20.0)
    assert psnr(2 * clean, 2 * clean + 0.2, "tem") == pytest.approx(20.0)  # scale invariant


def test_video_ssim_averages_frames_and_unknown_domain_fails():
    rng = np.random.default_rng(0)
    video = rng.random((3, 16, 16))
    assert ssim(video, video, "tem") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="domain"):
        psnr(video, video, "astro")


def test_seed_counts_psnr_is_the_tem_papers_clamped_count_convention():
    # 0.4 counts per vacuum pixel at the base dose: clean counts (0.4, 0.2, 0.8, 1.2 -> 1), estimate
    # counts (0.4, 0.4, 0.8, 2.0 -> 1); only the second pixel differs (by 0.2 count) once both are
    # clamped to [0, 1] count: MSE 0.01 at data range 1, 20 dB
    clean = np.array([[1.0, 0.5], [2.0, 3.0]])
    estimate = np.array([[1.0, 1.0], [2.0, 5.0]])
    assert metrics.seed_counts_psnr(clean, estimate, reference_counts=0.4) == pytest.approx(20.0, abs=1e-5)
    columns = metrics.psnr_columns(clean, estimate, "tem", ["range", "seed_counts"], reference_counts=0.4)
    # range convention: data range 2.5 of the clean image, intensity errors (0, 0.5, 0, 2): MSE 1.0625
    assert columns["psnr"] == columns["psnr_range"] == pytest.approx(10 * np.log10(2.5**2 / 1.0625))
    assert columns["psnr_seed_counts"] == pytest.approx(20.0, abs=1e-5)
    primary = metrics.psnr_columns(clean, estimate, "tem", ["seed_counts", "range"], reference_counts=0.4)
    assert primary["psnr"] == columns["psnr_seed_counts"]
    assert set(metrics.psnr_columns(clean / 3, estimate / 5, "natural", ["range"], reference_counts=0.4)) == {"psnr"}


@pytest.mark.parametrize("counts", [0.45, 1.25, 12.5])
def test_seed_counts_is_the_tem_papers_formula_at_every_dose(counts):
    """The authors' train.py at a test dose of ``counts`` per vacuum pixel: clean and denoised images
    in counts at that dose, ``psnr(clean / noise_scale, denoised / noise_scale)`` with noise_scale =
    counts / 0.45 and utils/metrics.py's clamp to [0, 1] and peak 1. The project scores the same
    images in normalised intensity (vacuum = 1) with the base dose's 0.45 counts, whatever the dose
    (the former per-dose conversion passed at 0.45 only)."""
    rng = np.random.default_rng(int(counts * 100))
    clean = counts * rng.uniform(0.2, 2.6, (32, 32))  # some pixels above 1 / 0.45 of vacuum: clamped
    denoised = clean + rng.normal(0.0, 0.3 * counts, clean.shape)
    noise_scale = counts / 0.45
    error = np.clip(clean / noise_scale, 0, 1) - np.clip(denoised / noise_scale, 0, 1)
    authors = 10 * np.log10(1.0 / np.mean(error**2))
    intensity, estimate = clean / counts, denoised / counts  # normalised: vacuum = 1
    assert metrics.seed_counts_psnr(intensity, estimate, reference_counts=0.45) == pytest.approx(authors, abs=1e-4)
    columns = metrics.psnr_columns(intensity, estimate, "tem", ["seed_counts"], reference_counts=0.45)
    assert columns["psnr_seed_counts"] == pytest.approx(authors, abs=1e-4)


def test_a_perfect_tem_estimate_scores_the_ceiling_not_inf():
    clean = np.linspace(0.5, 3.0, 64).reshape(8, 8)
    columns = metrics.psnr_columns(clean, clean.copy(), "tem", ["range", "seed_counts"], reference_counts=0.45)
    assert columns == {"psnr": metrics.PSNR_CEILING, "psnr_range": metrics.PSNR_CEILING,
                       "psnr_seed_counts": metrics.PSNR_CEILING}
    assert metrics.PSNR_CEILING == pytest.approx(138.47, abs=0.01)
    # saturated: both above 1 count wherever they differ, so no error once clamped
    saturated = metrics.psnr_columns(clean, clean + (clean > 2.3), "tem", ["seed_counts"], reference_counts=0.45)
    assert saturated["psnr"] == metrics.PSNR_CEILING


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_psnr_equals_scikit_image(dtype, tolerance):
    # scikit-image computes in float32 for float32 inputs, this module always in float64
    from skimage.metrics import peak_signal_noise_ratio as skimage_psnr

    rng = np.random.default_rng(0)
    clean = rng.random((3, 17, 13)).astype(dtype)
    estimate = (clean + rng.normal(0, 0.05, clean.shape)).astype(dtype)
    assert metrics.peak_signal_noise_ratio(clean, estimate, 1.7) == pytest.approx(skimage_psnr(clean, estimate, data_range=1.7), rel=tolerance)


def test_scored_tem_tables_hold_no_inf(tmp_path):
    """The evaluate job's per-image scores and the summary tables written from them are finite for a
    noisy estimate at 12.5 counts per vacuum pixel (every pixel above 1 count at the condition's
    dose: the former per-dose seed_counts was inf there) and for a perfect estimate (capped)."""
    from temdenoise.benchmark import evaluate_split, write_tables
    from temdenoise.io import save_stack
    from temdenoise.noise import NoiseCondition, apply_condition

    rng = np.random.default_rng(0)
    clean = [rng.uniform(0.4, 1.6, (16, 16)).astype(np.float32) for _ in range(3)]
    # poisson-200 at 0.25 A pixels: 12.5 counts per vacuum pixel
    noisy = [apply_condition(image, NoiseCondition("poisson", 200.0), rng, 0.25) for image in clean]
    save_stack(tmp_path / "clean.npz", clean)
    pd.DataFrame({"item": range(3), "structure_id": ["s0", "s0", "s1"]}).to_csv(tmp_path / "test.csv", index=False)
    scores = []
    for method, estimate in (("noisy", noisy), ("perfect", clean)):
        save_stack(tmp_path / f"{method}.npz", estimate)
        evaluate_split(str(tmp_path / "clean.npz"), str(tmp_path / f"{method}.npz"), str(tmp_path / "test.csv"), "tem", "tem",
                       ["range", "seed_counts"], 0.45, "poisson-200", method, str(tmp_path / f"{method}.csv"))
        scores.append(pd.read_csv(tmp_path / f"{method}.csv"))
    tidy = pd.concat(scores, ignore_index=True)
    perfect, noisy = (tidy[tidy["method"] == method] for method in ("perfect", "noisy"))
    assert (perfect[["psnr_range", "psnr_seed_counts"]] == metrics.PSNR_CEILING).all().all()
    assert (noisy["psnr_seed_counts"] < metrics.PSNR_CEILING).all()
    paths = {name: tmp_path / f"table.{name}" for name in ("csv", "summary", "md", "tex", "pairs")}
    write_tables(tidy, *(str(path) for path in paths.values()))
    for path in (tmp_path / "noisy.csv", tmp_path / "perfect.csv", *paths.values()):
        text = path.read_text()
        assert not re.search(r"\binf\b", text, re.IGNORECASE), path.name
    for path in (tmp_path / "noisy.csv", tmp_path / "perfect.csv", paths["csv"], paths["summary"]):
        numbers = pd.read_csv(path).select_dtypes("number")
        assert np.isfinite(numbers.to_numpy(dtype=float)).all(), path.name
