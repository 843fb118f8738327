"""PSNR conventions: natural images clamp and use range 1; TEM uses the clean image's range."""

import numpy as np
import pytest

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
