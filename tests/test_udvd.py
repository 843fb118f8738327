"""UDVD: blind spot, self-supervised training, equivalent filters and motion compensation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter, shift as subpixel_shift
from torch import nn

from temdenoise.analysis.udvd import (
    AUGMENTATION_VARIANTS, UDVD_ESTIMATE, ZERO_MOTION, flow_shifts, grid_pixels, motion_records, motion_summary,
    run_augmentation_study, udvd_shifts, video_motion_rows, write_augmentation_table,
)
from temdenoise.io import load_stack, save_stack
from temdenoise.metrics import psnr, seed_counts_psnr
from temdenoise.models import build_model, count_parameters, load_trained
from temdenoise.models.udvd import UDVD, BlindUNet, _apply_tiled, denoise_video, frame_windows, window_frames
from temdenoise.noise import NoiseCondition, apply_condition, parse_condition
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


# The authors' nets (udvd models/udvd.py) with one channel per frame and one output:
# BlindSpotNet, BlindVideoNetD1 (one blind UNet over 3 frames), BlindVideoNet (two stages).
AUTHORS_UDVD_COUNTS = {1: 1_118_832, 3: 1_121_424, 5: 2_123_664}


@pytest.mark.parametrize("frames", list(AUTHORS_UDVD_COUNTS))
def test_udvd_has_the_authors_depth_and_parameter_counts(frames: int) -> None:
    model = UDVD(frames=frames, channels=48, window_channels=32)
    assert abs(count_parameters(model) / AUTHORS_UDVD_COUNTS[frames] - 1) < 0.01
    cores = [m for m in model.modules() if isinstance(m, BlindUNet)]
    assert len(cores) == (2 if frames == 5 else 1)
    assert all(sum(isinstance(m, nn.Conv2d) for m in core.modules()) == 17 for core in cores)


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
        core.dec1[-1].conv.weight.neg_()
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


def test_weighted_windows_carry_inverse_noise_variances_estimated_from_the_recordings() -> None:
    # Recordings at doses 10 and 200: the noise variance spans a factor 20, and without weights the
    # noisiest recordings dominate the loss and its gradient noise. The weights come from the noisy
    # recording (its mean, the known dose and pixel size): the sampler is never given a clean frame.
    rng = np.random.default_rng(0)
    vacuum = np.ones((3, 24, 24), np.float32)  # flat: the noise is all there is
    doses = [NoiseCondition("poisson", 10.0), NoiseCondition("poisson", 200.0)]
    recordings = [apply_condition(vacuum, c, rng, 0.5) for c in doses]
    sampler = VideoWindowSampler(recordings, 3, 24, 64, flips=False, time_reversal=False, conditions=doses,
                                 pixel_sizes=[0.5, 0.5])
    windows, weights = sampler(np.random.default_rng(0))
    measured = windows[:, 1].var(dim=(1, 2))
    assert float(weights.max() / weights.min()) > 15  # both recordings drawn, weights about 20 apart
    torch.testing.assert_close(weights * measured, torch.ones(64), rtol=0.35, atol=0)  # w = 1 / variance
    for dose, recording in zip(doses, recordings):  # from the noisy mean, not from the clean one (1)
        assert noise_variance(dose, recording, 0.5) == pytest.approx(float(recording.mean()) / (dose.level * 0.25))
        assert float(recording.mean()) != 1.0
    assert noise_variance(NoiseCondition("gaussian", 25.0), recordings[0]) == pytest.approx((25 / 255) ** 2)
    # blind_spot_mse averages the per-window errors with these weights
    constant = nn.Module()
    constant.forward = lambda x: torch.ones_like(x[:, :1])
    errors = ((windows[:, 1:2] - 1.0) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(blind_spot_mse(constant, (windows, weights)), (weights * errors).sum() / weights.sum())
    torch.testing.assert_close(blind_spot_mse(constant, (windows,)), errors.mean())
    with pytest.raises(ValueError, match="conditions"):
        VideoWindowSampler(recordings, 3, 8, 4, conditions=doses[:1])


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


def test_window_sampler_keeps_the_recorded_noise_of_each_frame() -> None:
    """A window holds the stored noisy frames: a frame used twice in an edge window carries the
    same noise twice, and a frame carries the same noise whenever it is drawn, as in a recording."""
    recording = np.random.default_rng(0).normal(1.0, 0.1, (6, 8, 8)).astype(np.float32)
    sampler = VideoWindowSampler([recording], 5, 8, 8, centres=[[0]], flips=False, time_reversal=False)
    (windows,) = sampler(np.random.default_rng(0))
    for window in windows.numpy():
        np.testing.assert_array_equal(window, recording[[2, 1, 0, 1, 2]])


def test_window_sampler_targets_only_allowed_frames_and_augments() -> None:
    video = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 10, 10), np.float32)
    sampler = VideoWindowSampler([video], 3, 8, 64, centres=[[2]], flips=False, time_reversal=True)
    (windows,) = sampler(np.random.default_rng(0))
    assert windows.shape == (64, 3, 8, 8)
    assert torch.all(windows[:, 1] == 2)  # the centre (target) is always frame 2
    orders = {tuple(w[:, 0, 0].tolist()) for w in windows}
    assert orders == {(1.0, 2.0, 3.0), (3.0, 2.0, 1.0)}  # time reversal happens, both ways
    np.testing.assert_array_equal(held_out_frames(10, 2), [1, 8])


def _transforms(block: np.ndarray, mean: float) -> list[np.ndarray]:
    """Every window the sampler may make of ``block`` (frames, P, P): time reversal, two flips and
    the contrast mirror ``2 mean - x``."""
    out = []
    for values in (block, 2.0 * mean - block):
        for reverse in (False, True):
            for vertical in (False, True):
                for horizontal in (False, True):
                    window = values[::-1] if reverse else values
                    window = window[:, ::-1] if vertical else window
                    out.append(window[:, :, ::-1] if horizontal else window)
    return out


def test_augmentation_keeps_the_recorded_values_up_to_flips_reversal_and_the_contrast_mirror() -> None:
    # Augmentation works on the recording itself: each window is the stored noisy frames, flipped,
    # time-reversed or mirrored about the recording's noisy mean, never clipped (a clip at 0 would
    # bias the noise) nor re-noised. One training video of dark atoms also teaches bright atoms.
    rng = np.random.default_rng(0)
    recording = apply_condition(np.ones((5, 8, 8), np.float32), NoiseCondition("poisson", 5.0), rng, 0.5)
    mean = float(recording.mean())
    sampler = VideoWindowSampler([recording], 3, 8, 128, contrast_inversion=True)
    (windows,) = sampler(np.random.default_rng(1))
    allowed = {c: _transforms(recording[window_frames(5, 3, c)], mean) for c in range(5)}
    kinds = set()
    for window in windows.numpy():
        matches = [i for c in allowed for i, t in enumerate(allowed[c]) if np.allclose(window, t, atol=1e-6)]
        assert matches, "a window that is not a transform of the recorded frames"
        kinds.add(matches[0] >= 8)
    assert kinds == {False, True}  # both contrasts were drawn
    assert windows.min() < 0  # the mirror of bright noisy pixels is negative: not clipped
    plain = VideoWindowSampler([recording], 3, 8, 64, flips=False, time_reversal=False)
    (windows,) = plain(np.random.default_rng(1))
    assert all(any(np.array_equal(w, recording[window_frames(5, 3, c)]) for c in range(5)) for w in windows.numpy())


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
    descriptive = summary[["udvd_minus_this_descriptive_low", "udvd_minus_this_descriptive_high"]]
    assert descriptive.loc["perfect"].iloc[0] > 0 and descriptive.loc[ZERO_MOTION].iloc[1] < 0
    # one test video: the items are not independent units, so no ordering is resolved
    assert (summary.loc["perfect", "n_units"], summary.loc["perfect", "unit"]) == (1, "video")
    assert not summary["udvd_minus_this_resolved"].fillna(False).astype(bool).any()
    assert np.isnan(summary.loc[UDVD_ESTIMATE, "udvd_minus_this_mean"])


def test_video_motion_rows_reads_one_video_in_frame_order() -> None:
    from temdenoise.simulate.motion import MOTION_COLUMNS

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


def _recordings(tmp_path, conditions: list[str], rng: np.random.Generator) -> dict[str, list[str]]:
    """Stored noisy copies of two training videos and one validation video under each condition,
    beside their clean training stack (which the sentinel of the test below forbids to open)."""
    clean = [(1.0 - 0.5 * (rng.random((5, 24, 24)) > 0.9)).astype(np.float32) for _ in range(3)]
    save_stack(tmp_path / "clean_train.npz", clean[:2])
    paths: dict[str, list[str]] = {"train": [], "validation": []}
    for name in conditions:
        for split, videos in (("train", clean[:2]), ("validation", clean[2:])):
            path = tmp_path / name / f"{split}.npz"
            path.parent.mkdir(exist_ok=True)
            save_stack(path, [apply_condition(v, parse_condition(name), rng, 0.5) for v in videos])
            paths[split].append(str(path))
    for split, count in (("train", 2), ("validation", 1)):
        pd.DataFrame({"item": np.repeat(range(count), 5), "frame": np.tile(range(5), count),
                      "pixel_size": 0.5}).to_csv(tmp_path / f"{split}.csv", index=False)
    return paths


def test_train_udvd_reads_only_the_noisy_recordings_and_selects_by_their_validation_loss(tmp_path, monkeypatch) -> None:
    from temdenoise.train.self_supervised import OUTPUTS, train_udvd

    conditions = ["poisson-20", "poisson-100"]
    paths = _recordings(tmp_path, conditions, np.random.default_rng(0))
    opened = []
    real_load = np.load

    def load(path, *args, **kwargs):  # the sentinel: a clean stack is never opened
        opened.append(str(path))
        if "clean" in str(path):
            raise AssertionError(f"train_udvd opened a clean stack: {path}")
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(np, "load", load)
    recipe = {"epochs": 3, "steps_per_epoch": 3, "batch_size": 2, "patch_size": 16, "validation_images": 1,
              "schedule": "constant", "progress": False}
    entry = {"family": "udvd", "params": {"frames": 3, "channels": 4, "window_channels": 4, "offset": 1.0}}
    result = train_udvd(entry, recipe, conditions, paths["train"], paths["validation"], str(tmp_path / "a"),
                        str(tmp_path / "train.csv"), str(tmp_path / "validation.csv"), device="cpu", seed=0)
    assert sorted(opened) == sorted(paths["train"] + paths["validation"])  # every recording, nothing else
    assert all((tmp_path / "a" / name).exists() for name in OUTPUTS)
    info = json.loads((tmp_path / "a" / "info.json").read_text())
    assert info["conditions"] == conditions and info["params"]["offset"] == 1.0
    # The exported weights are those of the best blind-spot score on the stored noisy validation
    # videos of every condition (no clean frame): recomputing that score gives the best epoch's.
    monkeypatch.setattr(np, "load", real_load)
    validation = [video for path in paths["validation"] for video in load_stack(path)]
    score = noisy_frame_validation(validation, [range(len(v)) for v in validation])
    scores = [record["val_psnr"] for record in result.history]
    assert result.best_score == max(scores) and result.best_epoch == 1 + int(np.argmax(scores))
    assert score(load_trained(str(tmp_path / "a" / "model.pt"), entry, "cpu")) == pytest.approx(max(scores), abs=1e-4)
    with pytest.raises(ValueError, match="2 noisy stacks for 1 conditions"):
        train_udvd(entry, recipe, conditions[:1], paths["train"], paths["validation"], str(tmp_path / "b"),
                   device="cpu")


def test_train_udvd_never_resumes_another_runs_checkpoint(tmp_path) -> None:
    from temdenoise.train.self_supervised import train_udvd

    paths = _recordings(tmp_path, ["poisson-50"], np.random.default_rng(0))
    recipe = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 16, "validation_images": 1,
              "schedule": "constant", "progress": False}

    def run(offset: float, out: str):
        entry = {"family": "udvd", "params": {"frames": 3, "channels": 4, "window_channels": 4, "offset": offset}}
        return train_udvd(entry, recipe, ["poisson-50"], paths["train"], paths["validation"], str(tmp_path / out),
                          device="cpu", seed=0)

    first = run(1.0, "a")
    # Another entry in the same folder (a config edit) trains afresh instead of resuming the old run:
    # its first epoch's loss differs from the finished run's.
    (tmp_path / "a" / "metrics.csv").unlink()
    other = run(0.0, "a")
    assert other.history[0]["loss"] != first.history[0]["loss"]
    # The same entry again resumes the finished run: nothing is retrained, the metrics come back.
    again = run(0.0, "a")
    assert again.history == other.history and (tmp_path / "a" / "metrics.csv").exists()


def test_augmentation_study_trains_on_the_noisy_video_and_only_scoring_reads_the_clean(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    clean = [(1.0 - 0.5 * (rng.random((6, 20, 20)) > 0.9)).astype(np.float32) for _ in range(2)]
    noisy = [apply_condition(v, NoiseCondition("poisson", 20.0), rng, 0.5) for v in clean]
    save_stack(tmp_path / "clean.npz", clean)
    save_stack(tmp_path / "noisy.npz", noisy)
    section = {"videos": 1, "frames": 5, "crop": 16, "validation_frames": 1, "noise": "poisson-20"}
    recipe = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 8, "early_stopping": 1,
              "schedule": "constant", "progress": False}
    entry = {"family": "udvd", "params": {"frames": 3, "channels": 4, "window_channels": 4, "offset": 1.0}}
    opened, real_load = [], np.load
    monkeypatch.setattr(np, "load", lambda path, *a, **k: opened.append(str(path)) or real_load(path, *a, **k))
    runs, estimates = str(tmp_path / "runs.csv"), str(tmp_path / "denoised.npz")
    run_augmentation_study(entry, recipe, str(tmp_path / "noisy.npz"), section, "cpu", 0, runs, estimates)
    assert opened == [str(tmp_path / "noisy.npz")]  # the training job reads the noisy video only
    table = pd.read_csv(runs)
    assert list(table["variant"]) == [v["name"] for v in AUGMENTATION_VARIANTS] and "psnr" not in table
    assert all(e.shape == (5, 16, 16) for e in load_stack(estimates))  # the configured frames and crop
    csv, markdown = str(tmp_path / "table.csv"), str(tmp_path / "table.md")
    write_augmentation_table(runs, estimates, str(tmp_path / "clean.npz"), str(tmp_path / "noisy.npz"),
                             section, "tem", ["range", "seed_counts"], 0.45, csv, markdown)
    scored = pd.read_csv(csv)
    crop = clean[0][:5, 2:18, 2:18]  # the scoring cuts the clean video as the training job cut the noisy one
    for row in scored.itertuples():
        estimate = load_stack(estimates)[row.estimate]
        assert row.psnr == row.psnr_range == pytest.approx(psnr(crop, estimate, "tem"))
        # at the base dose's 0.45 counts per vacuum pixel, not the condition's 5 (20 e/A^2 x (0.5 A)^2)
        assert row.psnr_seed_counts == pytest.approx(seed_counts_psnr(crop, estimate, reference_counts=0.45))
        assert np.isfinite(row.psnr_seed_counts)
        assert row.noisy_psnr == pytest.approx(psnr(crop, noisy[0][:5, 2:18, 2:18], "tem"))
    text = Path(markdown).read_text()
    assert "psnr_range:" in text and "psnr_seed_counts mean (dB)" in text  # the header names both columns
    assert re.search(r"\| F \+ TR − F +\| [+-]\d", text) and "95%" in text  # paired differences, with intervals
    assert "| 1 video (5 items) |" in text  # one video: one independent unit


def test_a_udvd_entry_without_a_stored_recording_in_its_range_stops_the_workflow(workflow_runner) -> None:
    import yaml

    from conftest import REPO

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["methods"]["udvd3"]["train_noise"] = {"kind": "poisson", "range": [300, 400]}  # stored: doses 20, 100
    result = workflow_runner(config, "--dry-run", check=False)
    assert result.returncode != 0
    assert "methods.udvd3.train_noise: no stored poisson condition" in result.stdout + result.stderr


def test_train_udvd_builds_the_same_batches_in_any_number_of_workers(tmp_path) -> None:
    """Loader workers (issue 37 item 4) draw each batch from its own seed: one worker or two train
    the same weights, and the batches differ from those of the in-process generator."""
    from temdenoise.train.self_supervised import train_udvd

    paths = _recordings(tmp_path, ["poisson-50"], np.random.default_rng(0))
    recipe = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 16, "validation_images": 1,
              "schedule": "constant", "progress": False}
    entry = {"family": "udvd", "params": {"frames": 3, "channels": 4, "window_channels": 4, "offset": 1.0}}
    weights = {}
    for workers in (0, 1, 2):
        train_udvd(entry, recipe, ["poisson-50"], paths["train"], paths["validation"], str(tmp_path / str(workers)),
                   device="cpu", seed=0, loader_workers=workers)
        weights[workers] = load_trained(str(tmp_path / str(workers) / "model.pt"), entry, "cpu").state_dict()
    assert all(torch.equal(weights[1][key], weights[2][key]) for key in weights[1])
    assert not all(torch.equal(weights[0][key], weights[2][key]) for key in weights[0])
