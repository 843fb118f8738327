"""UDVD: blind spot, self-supervised training, equivalent filters and motion compensation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter, shift as subpixel_shift
from torch import nn

from temdenoise.analysis.udvd import (
    UDVD_ESTIMATE, ZERO_MOTION, flow_shifts, grid_pixels, motion_records, motion_summary, udvd_shifts, video_motion_rows,
)
from temdenoise.metrics import psnr
from temdenoise.models import build_model
from temdenoise.models.udvd import UDVD, BlindUNet, _apply_tiled, denoise_video, frame_windows, window_frames
from temdenoise.train.data import NoiseRange
from temdenoise.train.engine import TrainSettings
from temdenoise.train.self_supervised import (
    VideoWindowSampler,
    blind_spot_mse,
    fit_single_video,
    held_out_frames,
    noise_variance,
    noisy_frame_validation,
)


@pytest.mark.parametrize("frames", [1, 3, 5])
@pytest.mark.parametrize("bias_free", [True, False])
@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_output_pixel_never_sees_itself_in_any_frame(frames: int, bias_free: bool, offset: float) -> None:
    torch.manual_seed(frames)
    model = UDVD(frames=frames, channels=4, window_channels=4, bias_free=bias_free, offset=offset)
    video = torch.rand(1, frames, 19, 14, requires_grad=True)  # odd, non-square: padding paths
    output = model(video)
    assert output.shape == (1, 1, 19, 14)
    for row, col in [(0, 0), (9, 7), (18, 13), (5, 12)]:
        (grad,) = torch.autograd.grad(output[0, 0, row, col], video, retain_graph=True)
        assert torch.all(grad[0, :, row, col] == 0), f"pixel ({row}, {col}) sees itself"
        # non-degenerate: every frame, and the pixel's direct neighbours, do contribute
        assert torch.all(grad[0].abs().sum(dim=(1, 2)) > 0)
        neighbours = [(row + dr, col + dc) for dr, dc in [(-1, 0), (1, 0), (0, -1), (0, 1)]]
        seen = [grad[0, :, r, c].abs().sum() > 0 for r, c in neighbours if 0 <= r < 19 and 0 <= c < 14]
        assert all(seen)


def test_bias_free_udvd_is_homogeneous_and_registered() -> None:
    torch.manual_seed(0)
    model = build_model({"family": "udvd", "params": {"frames": 3, "channels": 4, "window_channels": 4}})
    assert isinstance(model, UDVD) and all(not name.endswith("bias") for name, _ in model.named_parameters())
    video = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(model(3.5 * video), 3.5 * model(video), rtol=1e-4, atol=1e-5)
    shifted = build_model({"family": "udvd", "params": {"frames": 3, "channels": 4, "window_channels": 4, "offset": 1.0}})
    shifted.load_state_dict(model.state_dict())
    # homogeneous about the offset: a bias-free net with offset 1 is f(x - 1) + 1
    torch.testing.assert_close(shifted(1.0 + video) - 1.0, model(video), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="frames"):
        UDVD(frames=4)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 5, 16, 16))


@pytest.mark.parametrize("frames", [1, 5])
def test_offset_makes_flat_vacuum_a_fixed_point_with_no_padding_edges(frames: int) -> None:
    # TEM frames are normalised intensity (vacuum = 1). Without the offset, the zero padding of
    # every tile and the zero rows of the shifted convolutions are black edges against the
    # background, and the untrained bias-free net maps a flat vacuum to a random, edged image
    # (the quick UDVD nets then learnt little more than the mean: below the noisy input at
    # gaussian-25). With offset 1 the flat vacuum is exactly reproduced, whatever the weights.
    torch.manual_seed(frames)
    vacuum = torch.ones(2, frames, 20, 20)
    plain = UDVD(frames=frames, channels=4, window_channels=4)
    assert (plain(vacuum) - 1.0).abs().max() > 0.1
    centred = UDVD(frames=frames, channels=4, window_channels=4, offset=1.0)
    torch.testing.assert_close(centred(vacuum), vacuum[:, :1], rtol=0, atol=1e-6)
    video = np.ones((5, 40, 40), np.float32)
    tiled = UDVD(frames=frames, channels=4, window_channels=4, tile=16, offset=1.0)
    np.testing.assert_allclose(denoise_video(tiled, video), video, atol=1e-6)


def test_blind_unet_hands_over_signed_features() -> None:
    # The first stage of the multi-frame net hands only window_channels (quick: 4) maps to the
    # second. With a LeakyReLU on the UNet output every negative deviation from the offset level
    # was squashed by 0.1 (dark atoms, or bright ones after contrast inversion), and the quick
    # 5-frame nets ended below the 1-frame net (udvd5_gauss even below the noisy input). The
    # output convolution is linear: negating its weights negates the output exactly.
    torch.manual_seed(0)
    core = BlindUNet(3, 4, 4, bias=False)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        y = core(x)
        assert y.clamp(max=0).abs().mean() > 0.5 * y.clamp(min=0).mean()  # negatives not squashed
        core.dec0[-1].conv.weight.neg_()
        torch.testing.assert_close(core(x), -y)


@pytest.mark.parametrize("seed", range(8))
def test_untrained_net_starts_near_the_constant_offset(seed: int) -> None:
    # He-initialised, the initial output was a seed-dependent 0.2-2 times the input deviations;
    # from the large initial loss the quick udvd3 (workflow seed) silenced whole layers in its first
    # Adam steps and collapsed to the constant offset for good (18.1 dB on poisson-100, the PSNR of
    # a constant image). The output convolution starts scaled down: every seed starts below half
    # the input deviations (unscaled, seeds 3 and 6 start at 3 times them).
    torch.manual_seed(seed)
    model = UDVD(frames=3, channels=8, window_channels=4, offset=1.0)
    video = 1.0 + 0.5 * torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        deviation = model(video) - 1.0
    assert 0 < float(deviation.std()) < 0.5 * 0.5


def test_weighted_windows_carry_inverse_noise_variances() -> None:
    # Poisson doses over [10, 200]: the noise variance of a window spans a factor 20, and without
    # weights the noisiest windows dominate the loss and its gradient noise.
    video = np.ones((3, 24, 24), np.float32)  # flat vacuum: the noise is all there is
    noise = NoiseRange("poisson", 10.0, 200.0)
    sampler = VideoWindowSampler([video], 3, 24, 32, noise=noise, pixel_sizes=[0.5], flips=False,
                                 time_reversal=False, weighted=True)
    windows, weights = sampler(np.random.default_rng(0))
    measured = windows[:, 1].var(dim=(1, 2))
    assert float(weights.max() / weights.min()) > 5  # doses drawn over the range
    torch.testing.assert_close(weights * measured, torch.ones(32), rtol=0.35, atol=0)  # w = 1 / variance
    # blind_spot_mse averages the per-window errors with these weights
    constant = nn.Module()
    constant.forward = lambda x: torch.ones_like(x[:, :1])
    errors = ((windows[:, 1:2] - 1.0) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(blind_spot_mse(constant, (windows, weights)), (weights * errors).sum() / weights.sum())
    torch.testing.assert_close(blind_spot_mse(constant, (windows,)), errors.mean())
    assert noise_variance("gaussian", 25.0, video[0]) == pytest.approx((25 / 255) ** 2)
    with pytest.raises(ValueError, match="noise level"):
        VideoWindowSampler([video], 3, 8, 4, weighted=True)  # noisy videos: the level is unknown


def test_edge_windows_mirror_about_their_centre_and_denoise_video_keeps_shape() -> None:
    video = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 8, 8), np.float32)
    windows = frame_windows(video, 5)
    assert windows.shape == (6, 5, 8, 8)
    np.testing.assert_array_equal(windows[0, :, 0, 0], [2, 1, 0, 1, 2])
    np.testing.assert_array_equal(windows[1, :, 0, 0], [3, 0, 1, 2, 3])
    np.testing.assert_array_equal(windows[5, :, 0, 0], [3, 4, 5, 4, 3])
    # The blind spot holds at every frame: the centre frame is in its window only at the centre.
    for frames in (3, 5, 7):
        for centre in range(7):
            indices = window_frames(7, frames, centre)
            assert indices[frames // 2] == centre and np.count_nonzero(indices == centre) == 1
    with pytest.raises(ValueError, match="too short"):
        frame_windows(video[:4], 5)
    model = UDVD(frames=5, channels=4, window_channels=4)
    assert denoise_video(model, video).shape == video.shape
    np.testing.assert_allclose(denoise_video(model, video, indices=[2]), denoise_video(model, video)[2:3], atol=1e-6)


def test_window_sampler_draws_one_noise_realisation_per_frame() -> None:
    """A frame used twice in an edge window carries the same noise twice, as in a noisy video."""
    video = np.ones((6, 8, 8), np.float32)
    noise = NoiseRange("gaussian", 25.0, 25.0)
    sampler = VideoWindowSampler([video], 5, 8, 8, noise=noise, centres=[[0]], flips=False, time_reversal=False)
    (windows,) = sampler(np.random.default_rng(0))
    for window in windows.numpy():  # frames (2, 1, 0, 1, 2)
        np.testing.assert_array_equal(window[0], window[4])
        np.testing.assert_array_equal(window[1], window[3])
        assert not np.array_equal(window[0], window[1]) and not np.array_equal(window[1], window[2])


def test_window_sampler_targets_only_allowed_frames_and_augments() -> None:
    video = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 10, 10), np.float32)
    sampler = VideoWindowSampler([video], 3, 8, 64, centres=[[2]], flips=False, time_reversal=True)
    (windows,) = sampler(np.random.default_rng(0))
    assert windows.shape == (64, 3, 8, 8)
    assert torch.all(windows[:, 1] == 2)  # the centre (target) is always frame 2
    orders = {tuple(w[:, 0, 0].tolist()) for w in windows}
    assert orders == {(1.0, 2.0, 3.0), (3.0, 2.0, 1.0)}  # time reversal happens, both ways
    np.testing.assert_array_equal(held_out_frames(10, 2), [1, 8])


def test_window_sampler_inverts_the_contrast_of_clean_windows_only() -> None:
    # one training video of dark atoms must also teach bright atoms (the test video's contrast)
    video = np.ones((3, 8, 8), np.float32)
    video[:, 4, 4] = 0.25  # a dark atom; video mean = 1 - 0.75 / 64
    mean = float(video.mean())
    clean_copy = NoiseRange("gaussian", 0.0, 0.0)  # level 0: the clean window itself
    sampler = VideoWindowSampler([video], 3, 8, 64, noise=clean_copy, flips=False, time_reversal=False,
                                 contrast_inversion=True)
    (windows,) = sampler(np.random.default_rng(0))
    atoms = windows[:, 1, 4, 4]
    inverted = torch.isclose(atoms, torch.tensor(2 * mean - 0.25))
    assert inverted.any() and torch.isclose(atoms[~inverted], torch.tensor(0.25)).all()
    torch.testing.assert_close(windows[inverted][:, 1, 0, 0], torch.full((int(inverted.sum()),), 2 * mean - 1.0))
    plain = VideoWindowSampler([video], 3, 8, 64, noise=clean_copy, flips=False, time_reversal=False)
    assert torch.all(plain(np.random.default_rng(0))[0][:, 1, 4, 4] == 0.25)
    with pytest.raises(ValueError, match="clean videos"):
        VideoWindowSampler([video], 3, 8, 4, contrast_inversion=True)  # noisy videos: never


def _moving_video(frames: int, size: int, step: float, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random texture translating ``step`` pixels right per frame, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    texture = gaussian_filter(rng.normal(size=(size, size + int(frames * abs(step)) + 8)), 2.0, mode="wrap")
    texture = 1.0 + texture / texture.std() * 0.5
    clean = np.stack([subpixel_shift(texture, (0, t * step), mode="wrap")[:, :size] for t in range(frames)])
    noisy = clean + noise * rng.normal(size=clean.shape)
    return clean.astype(np.float32), noisy.astype(np.float32)


def test_self_supervised_training_lowers_loss_and_raises_psnr() -> None:
    # patches as large as the frames: the half-plane receptive fields reach far upwards, so a net
    # trained on small patches meets unseen context on larger frames
    clean, noisy = _moving_video(frames=6, size=24, step=1.0, noise=0.3, seed=1)
    entry = {"family": "udvd", "params": {"frames": 3, "channels": 6, "window_channels": 6}}
    settings = TrainSettings(epochs=3, steps_per_epoch=40, batch_size=8, patch_size=24, lr=3e-3,
                             schedule="constant", early_stopping=2, progress=False)
    model, result = fit_single_video(entry, noisy, settings, flips=True, time_reversal=True,
                                     early_stopping=True, validation_frames=1, seed=0)
    losses = [record["loss"] for record in result.history]
    assert losses[-1] < losses[0]
    denoised = denoise_video(model, noisy)
    assert psnr(clean, denoised, "tem") > psnr(clean, noisy, "tem") + 1.0
    # the selection score uses noisy frames only and improves with the weights it selected
    score = noisy_frame_validation([noisy], [held_out_frames(6, 1)])
    assert score(model) == pytest.approx(max(r["val_psnr"] for r in result.history), abs=1e-3)
    with torch.no_grad():
        loss = blind_spot_mse(model, (torch.from_numpy(frame_windows(noisy, 3)),))
    assert float(loss) > 0.5 * 0.3**2  # the blind spot cannot fit the noise of its own pixel


class _MotionCompensatingAverage(nn.Module):
    """A constructed 3-frame blind-spot denoiser that knows the motion: the mean of the previous
    frame moved forward and the next frame moved back by ``step`` pixels (integer, wrap-around)."""

    frames = 3

    def __init__(self, step: tuple[int, int], tile: int) -> None:
        super().__init__()
        self.step, self.tile = step, tile

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        back = torch.roll(x[:, 0:1], self.step, dims=(2, 3))
        forward = torch.roll(x[:, 2:3], (-self.step[0], -self.step[1]), dims=(2, 3))
        return 0.5 * (back + forward)


@pytest.mark.parametrize("tile", [0, 12])
@pytest.mark.parametrize("step", [(0, 2), (1, -3)])
def test_filter_centroids_recover_a_constructed_motion(step: tuple[int, int], tile: int) -> None:
    """Content moving by ``step`` per frame: the centroid of the previous frame's filter sits at
    -step, the next frame's at +step, on whole frames and on tiles around each pixel."""
    model = _MotionCompensatingAverage(step, tile)
    video = np.random.default_rng(0).random((5, 24, 24)).astype(np.float32)
    pixels = grid_pixels(24, 24, margin=6, count=2)
    shifts = udvd_shifts(model, video, [1, 2, 3], pixels, radius=4, chunk=3)
    assert shifts.shape == (3, 3, len(pixels), 2)
    np.testing.assert_allclose(shifts[:, 0], np.broadcast_to(-np.asarray(step, float), (3, len(pixels), 2)), atol=1e-6)
    np.testing.assert_allclose(shifts[:, 2], np.broadcast_to(np.asarray(step, float), (3, len(pixels), 2)), atol=1e-6)
    # the centre frame has no filter at all here: its centroid is undefined, not 0
    assert np.isnan(shifts[:, 1]).all()
    with pytest.raises(ValueError, match="centre frame 0"):
        udvd_shifts(model, video, [0], pixels, radius=4)


def test_flow_shifts_recover_a_translation() -> None:
    """Frame 1 is frame 0 moved by (1.5, -2) px: the flow from frame 0 to 1 is that shift."""
    image = gaussian_filter(np.random.default_rng(1).random((64, 64)), 2.0)
    video = np.stack([image, subpixel_shift(image, (1.5, -2.0), order=3, mode="wrap")])
    pixels = grid_pixels(64, 64, margin=16, count=3)
    flow = flow_shifts(video, [0], [1], pixels, smoothing=0.0)
    assert flow.shape == (1, 1, len(pixels), 2)
    np.testing.assert_allclose(flow[0, 0], np.tile([1.5, -2.0], (len(pixels), 1)), atol=0.2)


def test_motion_summary_scores_the_same_items_and_pairs_the_errors() -> None:
    rng = np.random.default_rng(2)
    centres, offsets, pixels = [2, 3], [-1, 1], grid_pixels(20, 20, margin=2, count=4)
    truth = rng.normal(0, 2, size=(2, 2, len(pixels), 2))
    regions = np.where(np.arange(len(pixels)) < 4, "vacuum", "support")[None].repeat(2, axis=0)
    noisy = truth + rng.normal(0, 0.5, size=truth.shape)
    noisy[0, 0, 5] = np.nan   # an undefined centroid drops that item for every estimator
    estimates = {UDVD_ESTIMATE: noisy, ZERO_MOTION: np.zeros_like(truth), "perfect": truth.copy()}
    records = motion_records(estimates, truth, regions, centres, offsets, pixels)
    assert len(records) == 3 * 2 * 2 * len(pixels)
    summary = motion_summary(records).set_index("estimator")
    assert (summary["pixels"] == 2 * 2 * (len(pixels) - 4) - 1).all()
    assert summary.loc["perfect", "epe_mean_px"] == 0 and summary.loc["perfect", "slope_row"] == pytest.approx(1)
    assert summary.loc["perfect", "corr_col"] == pytest.approx(1)
    assert summary.loc[ZERO_MOTION, "slope_col"] == 0 and np.isnan(summary.loc[ZERO_MOTION, "corr_col"])
    # UDVD (error ~0.6 px) is resolved worse than the perfect estimate and better than zero motion
    assert summary.loc["perfect", "udvd_minus_this_low"] > 0 and summary.loc[ZERO_MOTION, "udvd_minus_this_high"] < 0
    assert np.isnan(summary.loc[UDVD_ESTIMATE, "udvd_minus_this_mean"])


def test_video_motion_rows_reads_one_video_in_frame_order() -> None:
    from temdenoise.simulate.video import MOTION_COLUMNS

    metadata = pd.DataFrame({"item": [0, 0, 1, 1, 1], "frame": [1, 0, 2, 0, 1],
                             **{column: [0.5, 0.0, 2.0, 0.0, 1.0] for column in MOTION_COLUMNS}})
    rows = video_motion_rows(metadata, 1)
    assert [r["frame"] for r in rows] == [0, 1, 2] and [r["rotation_deg"] for r in rows] == [0.0, 1.0, 2.0]
    with pytest.raises(KeyError, match="pivot_row_px"):
        video_motion_rows(metadata.drop(columns="pivot_row_px"), 0)


def test_tiled_inference_keeps_the_blind_spot_and_matches_whole_frames_for_big_tiles() -> None:
    torch.manual_seed(0)
    video = np.random.default_rng(0).random((3, 40, 36)).astype(np.float32)
    whole = UDVD(frames=3, channels=4, window_channels=4)
    tiled = UDVD(frames=3, channels=4, window_channels=4, tile=16)
    tiled.load_state_dict(whole.state_dict())
    assert denoise_video(tiled, video).shape == video.shape
    big = UDVD(frames=3, channels=4, window_channels=4, tile=64)  # one tile covers the frame
    big.load_state_dict(whole.state_dict())
    np.testing.assert_allclose(denoise_video(big, video), denoise_video(whole, video), atol=1e-6)
    windows = torch.from_numpy(frame_windows(video, 3, [1])).requires_grad_(True)
    output = _apply_tiled(tiled, windows)
    for row, col in [(0, 0), (13, 14), (20, 30), (39, 35)]:  # inside tiles and in their overlaps
        (grad,) = torch.autograd.grad(output[0, 0, row, col], windows, retain_graph=True)
        assert torch.all(grad[0, :, row, col] == 0) and grad.abs().sum() > 0


def test_train_udvd_writes_its_outputs_and_never_resumes_another_runs_checkpoint(tmp_path) -> None:
    from temdenoise.io import save_stack
    from temdenoise.train.self_supervised import OUTPUTS, train_udvd

    rng = np.random.default_rng(0)
    videos = [(1.0 + 0.2 * rng.random((5, 24, 24))).astype(np.float32) for _ in range(2)]
    save_stack(tmp_path / "train.npz", videos)
    save_stack(tmp_path / "validation.npz", videos[:1])
    recipe = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 16, "validation_images": 1,
              "schedule": "constant", "progress": False}
    noise = {"kind": "poisson", "range": [50, 100]}

    def run(offset: float, out: str):
        entry = {"family": "udvd", "params": {"frames": 3, "channels": 4, "window_channels": 4, "offset": offset}}
        return train_udvd(entry, recipe, noise, "tem", str(tmp_path / "train.npz"), str(tmp_path / "validation.npz"),
                          str(tmp_path / out), device="cpu", seed=0)

    first = run(1.0, "a")
    assert all((tmp_path / "a" / name).exists() for name in OUTPUTS)
    assert json.loads((tmp_path / "a" / "info.json").read_text())["params"]["offset"] == 1.0
    # Another entry in the same folder (a config edit) trains afresh instead of resuming the old run:
    # its first epoch's loss differs from the finished run's.
    (tmp_path / "a" / "metrics.csv").unlink()
    other = run(0.0, "a")
    assert other.history[0]["loss"] != first.history[0]["loss"]
    # The same entry again resumes the finished run: nothing is retrained, the metrics come back.
    again = run(0.0, "a")
    assert again.history == other.history and (tmp_path / "a" / "metrics.csv").exists()
