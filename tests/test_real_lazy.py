"""Bounded memory for any input size (issue 38, item 4): a movie file is read lazily, a frame at
a time, by ``temdenoise denoise``'s path (:func:`temdenoise.realdata.denoise_file`): its peak
memory does not grow with the frame count; the gain is estimated on a bounded sample of frames."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from temdenoise import realdata
from temdenoise.models.dncnn import DnCNN
from temdenoise.readers import read_recording
from temdenoise.realdata import ApplySettings, denoise_file, gain_sample, mean_value
from test_real_tiles import PIXEL_SIZE, trained
from test_realdata import write_mrc, write_tiff

SIDE = 512


def movie_file(folder: Path, suffix: str, frames: int) -> Path:
    """A ``frames``-frame movie of uint16 Poisson counts (25 per pixel) at the model's pixel size."""
    counts = np.random.default_rng(frames).poisson(25, (frames, SIDE, SIDE)).astype(np.uint16)
    path = folder / f"movie{frames}{suffix}"
    write_mrc(path, counts, PIXEL_SIZE) if suffix == ".mrc" else write_tiff(path, counts, PIXEL_SIZE / 10)
    return path


def traced_peak_denoising(folder: Path, suffix: str, frames: int) -> int:
    """Peak traced memory (numpy's allocations) of reading, calibrating, denoising and writing a movie file."""
    path = movie_file(folder, suffix, frames)
    model = trained(DnCNN(depth=3, channels=4), "dncnn", "dncnn", fov=7)
    tracemalloc.start()
    try:
        denoise_file(path, folder, model, folder / "out", ApplySettings(tile=None))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("suffix", [".mrc", ".tif"])
def test_a_movie_file_is_never_loaded_whole(suffix, tmp_path, monkeypatch):
    """From 8 to 64 frames of 512 x 512 the peak memory of ``denoise_file`` grows by less than two
    float32 frames and stays below twelve (the 64-frame movie is 32 float32 frames' worth as
    uint16, 64 as float32: an eager read, or a float32 copy of it, exceeds both bounds). The gain
    sample is held to one frame here (its budget, GAIN_PIXELS, is a constant: it bounds, it does
    not scale); a 2-frame run first takes the one-time allocations (imports, caches) out of the peaks."""
    monkeypatch.setattr(realdata, "GAIN_PIXELS", SIDE * SIDE)
    frame = SIDE * SIDE * 4
    traced_peak_denoising(tmp_path, suffix, 2)
    small = traced_peak_denoising(tmp_path, suffix, 8)
    large = traced_peak_denoising(tmp_path, suffix, 64)
    assert large - small < 2 * frame and large < 12 * frame, (small / frame, large / frame)


def test_the_gain_sample_is_bounded_and_spread_over_the_movie(monkeypatch):
    movie = np.arange(10 * 8 * 6, dtype=np.float32).reshape(10, 8, 6)
    monkeypatch.setattr(realdata, "GAIN_PIXELS", 3 * 8 * 6)
    sample, used = gain_sample(movie)
    assert np.array_equal(sample, movie[[0, 4, 9]]) and used == "3 of 10 frames, evenly spread"
    monkeypatch.setattr(realdata, "GAIN_PIXELS", 4 * 6)  # less than a frame: its central rows, in whole blocks
    sample, used = gain_sample(movie[0])
    assert np.array_equal(sample, movie[0][None, 2:6]) and used == "the image, central 4 of 8 rows"
    assert mean_value(movie) == pytest.approx(movie.mean())


def test_a_movie_is_read_as_frames_on_demand(tmp_path):
    """The reader returns a lazy float32 array (one chunk per frame) whose frames equal the file's."""
    path = movie_file(tmp_path, ".mrc", 4)
    recording = read_recording(path)
    assert recording.data.dtype == np.float32 and recording.data.chunks[0] == (1, 1, 1, 1)
    with __import__("mrcfile").open(path) as mrc:
        assert np.array_equal(np.asarray(recording.data[2]), mrc.data[2].astype(np.float32))


def test_a_float_movie_scaled_by_its_dose_is_read_once_for_its_mean(tmp_path, monkeypatch):
    """Float values with a stated dose: the mean that scales them to counts is the mean the dose
    check uses: one pass over the file, not two."""
    path = tmp_path / "float.mrc"
    write_mrc(path, np.random.default_rng(0).uniform(0.5, 1.5, (6, 32, 32)).astype(np.float32), PIXEL_SIZE)
    passes = []
    monkeypatch.setattr(realdata, "mean_value", lambda values: passes.append(1) or mean_value(values))
    calibration = realdata.calibrate(read_recording(path), realdata.Stated(dose=100.0))
    assert calibration.dose == 100.0 and len(passes) == 1
