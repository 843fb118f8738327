"""The TEM table: parameters and FoV beside PSNR/SSIM, best model first per condition, paired Δ."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from temdenoise.report.pairs import homogeneity_label
from temdenoise.claims import CNN_CLASSICAL
from temdenoise.report.tem_table import claim_pairs, claim_tags, classical_info, write_tem_table


def _metadata(tmp_path, pixel_size: float = 0.25, support: str = "CeO2") -> str:
    """A test split's metadata: three images at one pixel size on one support."""
    path = tmp_path / "test.csv"
    pd.DataFrame({"item": range(3), "pixel_size": pixel_size, "support": support}).to_csv(path, index=False)
    return str(path)


def test_tem_table_joins_metrics_with_parameters_and_fov(tmp_path):
    rows = []
    for noise, offset in (("poisson-50", 0.0), ("poisson-5", -5.0)):
        for method, psnr in (("wiener", 20.0), ("unet", 25.0), ("wavelet", 18.0)):
            for image in range(3):
                rows.append(("tem", noise, method, image, psnr + offset + image, 0.5))
    paths = []
    for (noise, method), part in pd.DataFrame(
        rows, columns=["dataset", "noise", "method", "image", "psnr", "ssim"]
    ).groupby(["noise", "method"]):
        path = tmp_path / f"{noise}-{method}.csv"
        part.to_csv(path, index=False)
        paths.append(str(path))
    (tmp_path / "info.json").write_text(json.dumps({"parameters": 1234, "fov": 52, "bias_free": True, "offset": 1.0}))
    entries = {"wiener": {"family": "wiener", "params": {"kernel_size": 7}}, "wavelet": {"family": "wavelet"},
               "unet": {"family": "unet"}}
    table = write_tem_table(paths, {"unet": str(tmp_path / "info.json")}, entries, _metadata(tmp_path, 0.5),
                            str(tmp_path / "t.csv"),
                            str(tmp_path / "t.md"), str(tmp_path / "t.tex"), str(tmp_path / "pairs.csv"))
    # Highest dose first, then best PSNR first within a condition.
    assert table["noise"].tolist()[:3] == ["poisson-50"] * 3
    assert table["model"].tolist()[:3] == ["unet", "wiener", "wavelet"]
    first = table.iloc[0]
    assert (first["parameters"], first["fov"], first["psnr_mean"], first["psnr_std"]) == (1234, 52, 26.0, 1.0)
    assert table.set_index(["noise", "model"]).loc[("poisson-5", "wiener"), "parameters"] == 49
    # FoV in angstroms at the test pixel (0.5 A) and in projected CeO2 cells (sqrt(2) 5.411^2 / 4 = 10.352 A^2)
    assert first["fov_angstrom"] == 26.0 and first["fov_cells"] == pytest.approx(26.0**2 / 10.352, rel=1e-4)
    wiener = table.set_index(["noise", "model"]).loc[("poisson-5", "wiener")]
    assert wiener["fov_angstrom"] == 3.5 and wiener["fov_cells"] == pytest.approx(3.5**2 / 10.352, rel=1e-4)
    assert table.set_index(["noise", "model"])["fov_angstrom"].isna().loc[("poisson-5", "wavelet")]
    markdown = (tmp_path / "t.md").read_text()
    assert "52x52" in markdown and "26.00 ± 1.00" in markdown and "data_range" in markdown
    assert "FoV (CeO2 cells)" in markdown and "| 26.0 " in markdown and "65.3" in markdown
    # a bias-free net with an offset is homogeneous about it, not about 0: its row says so
    assert table.set_index(["noise", "model"]).loc[("poisson-5", "unet"), "homogeneity"] == "homogeneous about offset 1"
    assert "homogeneous about offset 1" in markdown
    assert homogeneity_label({"bias_free": True, "offset": 0.0}) == "homogeneous"
    assert homogeneity_label({"bias_free": False, "offset": 1.0}) == homogeneity_label({}) == ""
    assert "\\begin{table}" in (tmp_path / "t.tex").read_text()
    assert classical_info({"family": "wavelet"}) == {"parameters": 0, "fov": None}


def _metric_files(tmp_path, scores: dict[tuple[str, str], list[float]], seed: int = 0) -> list[str]:
    """One per-image metric CSV per (noise, method), rows in a shuffled order (pairs must match images)."""
    rng = np.random.default_rng(seed)
    paths = []
    for (noise, method), psnr in scores.items():
        part = pd.DataFrame({"dataset": "tem", "noise": noise, "method": method, "image": range(len(psnr)),
                             "psnr": psnr, "ssim": 0.5})
        path = tmp_path / f"{noise}-{method}.csv"
        part.sample(frac=1.0, random_state=int(rng.integers(1000))).to_csv(path, index=False)
        paths.append(str(path))
    return paths


# Images differ by up to 12 dB; unet gains a steady 0.5 dB over dncnn on each; dncnn and wiener
# swap sign image by image (mean +0.1 dB, interval across 0); wavelet trails wiener by 1 dB.
BASE = np.array([18.0, 24.0, 30.0, 21.0, 27.0, 19.0])
SCORES = {
    "unet": BASE + 0.5 + np.array([0.02, -0.02, 0.01, -0.01, 0.0, 0.0]),
    "dncnn": BASE,
    "wiener": BASE - 0.1 + np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]),
    "wavelet": BASE - 1.1 + np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]),
    "bf_dncnn": BASE + 0.05 + np.array([0.3, -0.3, 0.3, -0.3, 0.3, -0.3]),
}
ENTRIES = {"unet": {"family": "unet", "params": {"scales": 3}},
           "dncnn": {"family": "dncnn", "params": {"depth": 7}},
           "bf_dncnn": {"family": "dncnn", "params": {"depth": 7, "bias_free": True, "offset": 1.0}},
           "wiener": {"family": "wiener", "params": {"kernel_size": 7}}, "wavelet": {"family": "wavelet"}}


def _write(tmp_path, pairs=()):
    paths = _metric_files(tmp_path, {("poisson-20", m): list(v) for m, v in SCORES.items()})
    out = {k: str(tmp_path / f"t.{k}") for k in ("csv", "md", "tex", "pairs")}
    table = write_tem_table(paths, {}, ENTRIES, _metadata(tmp_path), out["csv"], out["md"], out["tex"], out["pairs"],
                            pairs)
    return table, pd.read_csv(out["pairs"]), out


def test_tem_table_pairs_each_model_with_the_next_on_matched_images(tmp_path):
    table, pairs, out = _write(tmp_path)
    assert table["model"].tolist() == ["unet", "bf_dncnn", "dncnn", "wiener", "wavelet"]
    # Each row carries its difference to the row below, computed image by image (rows were shuffled:
    # matched by position the 12 dB image spread would swamp the 0.5 dB gain).
    assert table["next_model"].tolist()[:4] == ["bf_dncnn", "dncnn", "wiener", "wavelet"]
    assert pd.isna(table["next_model"].iloc[-1])
    unet = pairs[(pairs["a"] == "unet") & (pairs["b"] == "dncnn")].iloc[0]
    assert unet["diff_mean"] == pytest.approx(0.5) and unet["diff_high"] - unet["diff_low"] < 0.1
    assert unet["verdict"] == "unet > dncnn" and unet["named"] and not unet["next_ranked"]
    # dncnn vs wiener: +0.1 dB on average but +-1 dB image by image: the order is not established.
    dncnn = table.set_index("model").loc["dncnn"]
    assert dncnn["diff_mean"] == pytest.approx(0.1) and dncnn["diff_low"] < 0 < dncnn["diff_high"]
    assert dncnn["verdict"] == "not resolved"
    wiener = table.set_index("model").loc["wiener"]
    assert wiener["diff_mean"] == pytest.approx(1.0) and wiener["verdict"] == "wiener > wavelet"
    markdown = open(out["md"]).read()
    assert "+0.10 dB [" in markdown and "not resolved" in markdown and "95% t-interval" in markdown
    assert "Holm-adjusted" in markdown and "| 6 items " in markdown
    assert "\\$\\Delta\\$" not in open(out["tex"]).read() and "$\\Delta$" in open(out["tex"]).read()
    # Default named comparisons: UNet vs DnCNN, every supervised CNN vs Wiener, Wiener vs wavelet,
    # bias-free vs twin.
    named = set(zip(pairs.loc[pairs["named"], "a"], pairs.loc[pairs["named"], "b"]))
    assert named == {("unet", "dncnn"), ("unet", "wiener"), ("dncnn", "wiener"), ("bf_dncnn", "wiener"),
                     ("wiener", "wavelet"), ("bf_dncnn", "dncnn")}


def test_tem_table_configured_pairs_replace_the_defaults(tmp_path):
    _, pairs, _ = _write(tmp_path, [["wavelet", "unet"]])
    named = pairs[pairs["named"]]
    assert list(zip(named["a"], named["b"])) == [("wavelet", "unet")]
    assert named["diff_mean"].iloc[0] == pytest.approx(-1.6) and named["diff_high"].iloc[0] < 0
    with pytest.raises(ValueError, match="unet_s9"):
        _write(tmp_path, [["unet_s9", "dncnn"]])


def test_claim_pairs_find_bias_free_twins():
    entries = {**ENTRIES, "bf_unet": {"family": "unet", "params": {"scales": 3, "bias_free": True, "offset": 1.0}},
               "unet_s2": {"family": "unet", "params": {"scales": 2}}}
    claims = claim_pairs(entries)
    assert ("bf_unet", "unet") in claims and ("bf_dncnn", "dncnn") in claims
    assert ("bf_unet", "unet_s2") not in claims and ("unet_s2", "dncnn") in claims


def test_every_supervised_cnn_is_compared_with_the_wiener_filter():
    entries = {**ENTRIES, "bf_unet": {"family": "unet", "params": {"scales": 3, "bias_free": True, "offset": 1.0}},
               "n2v_unet": {"family": "unet", "params": {"scales": 2}, "objective": {"name": "noise2void"}}}
    tags = claim_tags(entries)
    cnns = [name for name, e in entries.items() if e["family"] in ("dncnn", "unet") and "objective" not in e]
    assert sorted(tags) == sorted((name, "wiener") for name in cnns)
    assert set(tags.values()) == {CNN_CLASSICAL} and set(tags) <= set(claim_pairs(entries))
