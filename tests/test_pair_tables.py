"""Paired differences in the PSNR summary and the UDVD table, and the per-frame scores they use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from temdenoise.analysis.udvd import udvd_claim_pairs, write_udvd_table
from temdenoise.benchmark import FRAME_METRIC_COLUMNS, METRIC_COLUMNS, evaluate_split, write_tables
from temdenoise.io import save_stack


def _tidy(scores: dict[tuple[str, str, str], list[float]], frames: bool = False) -> pd.DataFrame:
    """Rows per (dataset, noise, method, item) in reversed order; items are (video, frame) when ``frames``,
    units the videos (three frames each) or the images."""
    rows = []
    for (dataset, noise, method), psnr in scores.items():
        for index, value in enumerate(psnr):
            item, unit = ((index // 3, index % 3), (f"v{index // 3}", "video")) if frames else ((index,), (str(index), "image"))
            rows.append((dataset, noise, method, *item, *unit, value, 0.5))
    columns = FRAME_METRIC_COLUMNS if frames else METRIC_COLUMNS
    return pd.DataFrame(rows[::-1], columns=columns)


BASE = np.array([15.0, 25.0, 20.0, 30.0, 18.0, 27.0])
STEADY = np.array([0.01, -0.01, 0.02, -0.02, 0.0, 0.0])
SWING = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])


def test_psnr_summary_pairs_each_method_with_the_next_per_condition(tmp_path):
    # gaussian-25: wiener 0.3 dB above wavelet on every image; gaussian-50: the order flips and
    # the difference swings +-1 dB around 0.2 dB (not resolved).
    tidy = _tidy({("natural", "gaussian-25", "wiener"): BASE + 0.3 + STEADY,
                  ("natural", "gaussian-25", "wavelet"): BASE,
                  ("natural", "gaussian-25", "noisy"): BASE - 6 + SWING,
                  ("natural", "gaussian-50", "wiener"): BASE - 5,
                  ("natural", "gaussian-50", "wavelet"): BASE - 4.8 + SWING})
    out = {k: str(tmp_path / f"psnr.{k}") for k in ("csv", "summary", "md", "tex", "pairs")}
    write_tables(tidy, out["csv"], out["summary"], out["md"], out["tex"], out["pairs"])
    pairs = pd.read_csv(out["pairs"])
    assert pairs["next_ranked"].all() and not pairs["named"].any()
    first = pairs[pairs["noise"] == "gaussian-25"]
    assert list(zip(first["a"], first["b"])) == [("wiener", "wavelet"), ("wavelet", "noisy")]
    assert first["diff_mean"].iloc[0] == pytest.approx(0.3) and first["verdict"].iloc[0] == "wiener > wavelet"
    second = pairs[pairs["noise"] == "gaussian-50"].iloc[0]
    assert (second["a"], second["b"]) == ("wavelet", "wiener")
    assert second["diff_mean"] == pytest.approx(0.2) and second["verdict"] == "not resolved"
    markdown = open(out["md"]).read()
    assert "wiener − wavelet" in markdown and "+0.30 dB [" in markdown and "not resolved" in markdown
    assert "psnr.pairs" in open(out["tex"]).read()  # the LaTeX caption points to the pairs CSV


def test_udvd_table_pairs_over_frames_with_named_claims(tmp_path):
    entries = {"udvd1": {"family": "udvd", "params": {"frames": 1}},
               "udvd3": {"family": "udvd", "params": {"frames": 3}},
               "udvd5": {"family": "udvd", "params": {"frames": 5}},
               "dncnn": {"family": "dncnn", "params": {}}, "wiener": {"family": "wiener"}}
    assert udvd_claim_pairs(entries) == [
        ("udvd3", "udvd1"), ("udvd5", "udvd1"), ("udvd5", "udvd3"),
        ("udvd1", "dncnn"), ("udvd1", "wiener"), ("udvd3", "dncnn"), ("udvd3", "wiener"),
        ("udvd5", "dncnn"), ("udvd5", "wiener")]
    frames = {("tem_video", "poisson-20", "udvd5"): BASE + 0.4 + STEADY,
              ("tem_video", "poisson-20", "udvd3"): BASE + 0.35 + SWING,
              ("tem_video", "poisson-20", "udvd1"): BASE,
              ("tem_video", "poisson-20", "dncnn"): BASE + 0.1,
              ("tem_video", "poisson-20", "wiener"): BASE - 1.0}
    frame_paths, video_paths = [], []
    for key, psnr in frames.items():
        frame_paths.append(str(tmp_path / f"{key[2]}.frames.csv"))
        _tidy({key: psnr}, frames=True).to_csv(frame_paths[-1], index=False)
        # per-video rows: two videos of three frames
        video_paths.append(str(tmp_path / f"{key[2]}.csv"))
        _tidy({key: [np.mean(psnr[:3]), np.mean(psnr[3:])]}).to_csv(video_paths[-1], index=False)
    out = {k: str(tmp_path / f"udvd.{k}") for k in ("csv", "summary", "md", "tex", "pairs")}
    write_udvd_table(video_paths, frame_paths, entries, out["csv"], out["summary"], out["md"], out["tex"], out["pairs"])
    pairs = pd.read_csv(out["pairs"]).set_index(["a", "b"])
    # the six frames are two videos: two independent units
    assert (pairs["diff_items"] == 6).all() and (pairs["n_units"] == 2).all() and (pairs["unit"] == "video").all()
    assert pairs.loc[("udvd5", "udvd1"), "diff_mean"] == pytest.approx(0.4)
    # +0.41 and +0.39 dB on the two videos: the unadjusted interval excludes 0 (p = 0.01), but not
    # after Holm's adjustment over the table's comparisons
    assert pairs.loc[("udvd5", "udvd1"), "diff_low"] > 0 and pairs.loc[("udvd5", "udvd1"), "diff_p"] < 0.05
    assert pairs.loc[("udvd5", "udvd1"), "verdict"] == "not resolved"
    assert pairs.loc[("udvd3", "udvd1"), "verdict"] == "not resolved"
    assert pairs.loc[("udvd1", "wiener"), "verdict"] == "udvd1 > wiener"  # -1 dB on every frame
    assert pairs.loc[("udvd5", "udvd3"), "named"] and pairs.loc[("udvd5", "udvd3"), "next_ranked"]
    assert "Holm-adjusted" in open(out["md"]).read() and "2 videos (6 items)" in open(out["md"]).read()
    assert len(pd.read_csv(out["csv"])) == 10  # the per-video rows are kept


def test_evaluate_split_scores_each_frame_of_a_video(tmp_path):
    rng = np.random.default_rng(0)
    clean = [rng.uniform(0.5, 1.5, size=(3, 16, 16)) for _ in range(2)]
    # frame 1 of each video is ten times noisier than the others
    scale = np.array([0.01, 0.1, 0.01])[:, None, None]
    estimate = [c + scale * rng.standard_normal(c.shape) for c in clean]
    save_stack(tmp_path / "clean.npz", clean)
    save_stack(tmp_path / "estimate.npz", estimate)
    # one metadata row per frame, as the simulator writes for videos
    metadata = tmp_path / "test.csv"
    pd.DataFrame({"item": [0, 0, 0, 1, 1, 1], "frame": [0, 1, 2] * 2, "structure_id": ["a"] * 3 + ["b"] * 3}).to_csv(metadata)
    videos, frames = tmp_path / "v.csv", tmp_path / "f.csv"
    evaluate_split(str(tmp_path / "clean.npz"), str(tmp_path / "estimate.npz"), str(metadata), "tem_video", "tem",
                   ["range", "seed_counts"], 0.2, "poisson-20", "udvd5", str(videos), str(frames))
    per_video, per_frame = pd.read_csv(videos), pd.read_csv(frames)
    assert len(per_video) == 2 and set(FRAME_METRIC_COLUMNS) <= set(per_frame.columns)
    assert ["psnr_range", "psnr_seed_counts"] == [c for c in per_frame.columns if c.startswith("psnr_")]
    assert (per_frame["psnr"] == per_frame["psnr_range"]).all()
    # 0.2 count per unit intensity at the base dose: nothing reaches the 1-count clamp, so the two
    # conventions differ by the peak alone, 1 count vs the clean frame's range (0.2 x range in counts)
    ranges = np.array([np.ptp(frame) for video in clean for frame in video])
    expected = per_frame["psnr_range"] - 20 * np.log10(0.2 * ranges)
    assert per_frame["psnr_seed_counts"].to_numpy() == pytest.approx(expected.to_numpy(), abs=1e-3)
    assert per_frame[["image", "frame"]].values.tolist() == [[v, f] for v in range(2) for f in range(3)]
    assert per_frame["unit"].tolist() == ["a"] * 3 + ["b"] * 3 and (per_frame["unit_kind"] == "video").all()
    noisy_frame = per_frame.groupby("frame")["psnr"].mean()
    assert noisy_frame[1] == pytest.approx(noisy_frame[0] - 20, abs=1.0)  # 10x the noise: -20 dB
    with pytest.raises(ValueError, match="videos"):
        save_stack(tmp_path / "images.npz", [c[0] for c in clean])
        save_stack(tmp_path / "denoised.npz", [e[0] for e in estimate])
        evaluate_split(str(tmp_path / "images.npz"), str(tmp_path / "denoised.npz"), str(metadata), "tem", "tem",
                       ["range"], 0.2, "poisson-20", "x", str(videos), str(frames))
