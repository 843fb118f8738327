"""Analysis library: generalisation table, Jacobian statistics, pixel choice and filter panels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from temdenoise import metrics
from temdenoise.analysis import filters, generalization, net_bias
from temdenoise.benchmark import METRIC_COLUMNS
from temdenoise.models import build_model


def _metric_file(path, noise: str, method: str, psnrs: list[float]) -> str:
    rows = [("natural", noise, method, i, str(i), "image", p, 0.5) for i, p in enumerate(psnrs)]
    pd.DataFrame(rows, columns=METRIC_COLUMNS).to_csv(path, index=False)
    return str(path)


def test_generalization_table_and_outputs(tmp_path) -> None:
    paths = []
    for sigma, base in ((10, 28.0), (70, 12.0)):
        for method, gain in (("noisy", 0.0), ("dncnn", 5.0), ("bf_dncnn", 9.0)):
            name = f"gaussian-{sigma}"
            paths.append(_metric_file(tmp_path / f"{name}-{method}.csv", name, method, [base + gain, base + gain + 2]))
    ranges = {m: {"kind": "gaussian", "range": [0, 55]} for m in ("dncnn", "bf_dncnn")}
    outputs = {k: str(tmp_path / f"out.{k}") for k in ("csv", "markdown", "latex", "png", "svg", "pairs")}
    table = generalization.run_generalization(paths, ["bf_dncnn", "dncnn"], ranges, "natural", outputs, TWINS)
    assert list(table.index) == ["noisy", "bf_dncnn", "dncnn"]
    assert list(table.columns) == ["trained on", "10", "70"]
    assert table.loc["dncnn", "70"] == pytest.approx(18.0)
    assert table.loc["noisy", "trained on"] == "-" and table.loc["dncnn", "trained on"] == "gaussian [0, 55]"
    written = pd.read_csv(outputs["csv"])
    assert written["model"].tolist() == ["noisy", "bf_dncnn", "dncnn"]
    assert "data_range" in open(outputs["markdown"]).read()
    assert "bf\\_dncnn" in open(outputs["latex"]).read()
    for key in ("png", "svg"):
        assert (tmp_path / f"out.{key}").stat().st_size > 0
    with pytest.raises(ValueError, match="no metrics"):
        generalization.generalization_table(paths, ["dncnn", "unet"], ranges)


def test_tem_generalization_tables_carry_every_psnr_convention(tmp_path) -> None:
    paths = []
    for dose in (5, 50):
        for method, gain in (("noisy", 0.0), ("dncnn", 4.0)):
            path = tmp_path / f"poisson-{dose}-{method}.csv"
            # psnr_seed_counts 3 dB below psnr_range: the two columns must not be confused
            pd.DataFrame({"dataset": "tem", "noise": f"poisson-{dose}", "method": method, "image": [0, 1],
                          "psnr": [dose + gain] * 2, "psnr_range": [dose + gain] * 2,
                          "psnr_seed_counts": [dose + gain - 3] * 2, "ssim": 0.5}).to_csv(path, index=False)
            paths.append(str(path))
    outputs = {k: str(tmp_path / f"out.{k}") for k in ("csv", "markdown", "latex", "png", "svg", "pairs")}
    ranges = {"dncnn": {"kind": "poisson", "range": [1, 50]}}
    generalization.run_generalization(paths, ["dncnn"], ranges, "tem", outputs, {"dncnn": TWINS["dncnn"]})
    written = pd.read_csv(outputs["csv"]).set_index(["score", "model"])
    assert written.loc[("psnr", "dncnn"), "5"] == pytest.approx(9.0)
    assert written.loc[("psnr_seed_counts", "dncnn"), "5"] == pytest.approx(6.0)
    markdown = open(outputs["markdown"]).read()
    assert metrics.psnr_header(["range", "seed_counts"]) in markdown and "Column psnr_seed_counts" in markdown


TWINS = {"dncnn": {"family": "dncnn", "params": {"depth": 7}},
         "bf_dncnn": {"family": "dncnn", "params": {"depth": 7, "bias_free": True}}}


def test_generalization_pairs_bias_free_with_its_twin_per_level(tmp_path) -> None:
    # Three images 10 dB apart. sigma 10: the bias-free net is 0.2 dB better on every image
    # (resolved); sigma 70: +0.2 dB on average but -0.8 / +1.2 image by image (not resolved).
    base = np.array([20.0, 30.0, 25.0, 35.0])
    scores = {("gaussian-10", "dncnn"): base, ("gaussian-10", "bf_dncnn"): base + 0.2 + [0.01, -0.01, 0.0, 0.0],
              ("gaussian-70", "dncnn"): base - 8, ("gaussian-70", "bf_dncnn"): base - 7.8 + [-1, 1, -1, 1],
              ("gaussian-70", "noisy"): base - 15, ("gaussian-10", "noisy"): base - 5}
    paths = []
    for (noise, method), psnr in scores.items():
        path = _metric_file(tmp_path / f"{noise}-{method}.csv", noise, method, list(psnr))
        pd.read_csv(path).iloc[::-1].to_csv(path, index=False)  # row order must not matter
        paths.append(path)
    outputs = {k: str(tmp_path / f"out.{k}") for k in ("csv", "markdown", "latex", "png", "svg", "pairs")}
    ranges = {m: {"kind": "gaussian", "range": [0, 55]} for m in TWINS}
    generalization.run_generalization(paths, ["dncnn", "bf_dncnn"], ranges, "natural", outputs, TWINS)
    pairs = pd.read_csv(outputs["pairs"]).set_index("noise")
    assert pairs.index.tolist() == ["gaussian-10", "gaussian-70"]
    assert (pairs["a"] == "bf_dncnn").all() and (pairs["b"] == "dncnn").all()
    assert pairs.loc["gaussian-10", "diff_mean"] == pytest.approx(0.2)
    assert pairs.loc["gaussian-10", "verdict"] == "bf_dncnn > dncnn"
    assert pairs.loc["gaussian-70", "diff_mean"] == pytest.approx(0.2)
    assert pairs.loc["gaussian-70", "verdict"] == "not resolved"
    markdown = open(outputs["markdown"]).read()
    assert "bf_dncnn − dncnn" in markdown and "not resolved" in markdown and "95% t-interval" in markdown
    latex = open(outputs["latex"]).read()
    assert "95\\% t-interval" in latex and "bf\\_dncnn $-$ dncnn" in latex  # no bare U+2212 for pdflatex


def test_generalization_table_rejects_mixed_kinds(tmp_path) -> None:
    paths = [
        _metric_file(tmp_path / "a.csv", "gaussian-10", "dncnn", [20.0]),
        _metric_file(tmp_path / "b.csv", "poisson-5", "dncnn", [20.0]),
    ]
    with pytest.raises(ValueError, match="mixes noise kinds"):
        generalization.generalization_table(paths, ["dncnn"], {})


def scaled_identity(gain: float, bias: float = 0.0) -> nn.Module:
    """``f(y) = gain * y + bias`` as a 1x1 convolution (eval mode)."""
    conv = nn.Conv2d(1, 1, 1, bias=True)
    with torch.no_grad():
        conv.weight.fill_(gain)
        conv.bias.fill_(bias)
    return conv.eval()


def test_jacobian_statistics_of_affine_maps() -> None:
    clean = [np.full((20, 20), 0.5, dtype=np.float32), np.linspace(0, 1, 300, dtype=np.float32).reshape(15, 20)]
    table = net_bias.jacobian_statistics(scaled_identity(0.5, 0.1), clean, [1.0, 1.0], ["gaussian-25"], 8, seed=0)
    assert len(table) == 2 and (table["pixels"] == 64).all()
    # A_y = 0.5 I: effective dimensionality 64 * 0.25; net bias = the constant 0.1 at every pixel.
    np.testing.assert_allclose(table["effective_dim"], 16.0, rtol=1e-5)
    np.testing.assert_allclose(table["net_bias_norm"], 0.1 * 8, rtol=1e-4)
    np.testing.assert_allclose(table["noise_norm"], 25 / 255 * 8, rtol=0.3)
    unbiased = net_bias.jacobian_statistics(scaled_identity(0.5), clean, [1.0, 1.0], ["gaussian-25"], 8, seed=0)
    assert (unbiased["net_bias_norm"] < 1e-6).all()
    np.testing.assert_allclose(unbiased["noise_norm"], table["noise_norm"])  # same seeded noise


def test_net_bias_of_a_bias_free_model_is_zero_about_its_offset() -> None:
    torch.manual_seed(0)
    model = build_model({"family": "unet", "params": {"scales": 1, "base_channels": 4, "bias_free": True, "offset": 1.0}})
    clean = [1.0 + 0.2 * np.random.default_rng(0).random((16, 16)).astype(np.float32)]
    table = net_bias.jacobian_statistics(model.eval(), clean, [1.0], ["poisson-20"], 16, seed=0)
    assert (table["net_bias_norm"] < 1e-4 * table["output_norm"]).all()
    # the same map seen without its offset (a wrapper has none) has the net bias (I - A_y) 1
    about_zero = net_bias.jacobian_statistics(nn.Sequential(model), clean, [1.0], ["poisson-20"], 16, seed=0)
    assert (about_zero["net_bias_norm"] > 1e-2 * about_zero["output_norm"]).all()


def test_central_crop_respects_size_multiple() -> None:
    image = np.arange(30 * 50, dtype=np.float32).reshape(30, 50)
    crop = net_bias.central_crop(image, 20, multiple=8)
    assert crop.shape == (16, 16)
    assert crop[0, 0] == image[7, 17]
    assert net_bias.central_crop(image, 64, multiple=4).shape == (28, 48)


def test_choose_pixel_finds_edge_flat_and_column() -> None:
    image = np.zeros((64, 64))
    image[:, 40:] = 1.0  # a vertical step edge at column 40
    rows, cols = np.mgrid[:64, :64]
    image += 0.8 * np.exp(-((rows - 20) ** 2 + (cols - 15) ** 2) / (2 * 2.0**2))  # an atomic column
    row, col = filters.choose_pixel(image, "edge", margin=5)
    assert col in (39, 40)
    assert filters.choose_pixel(image, "column", margin=5) == (20, 15)
    row, col = filters.choose_pixel(image, "flat", margin=5)
    assert 5 <= row < 59 and 5 <= col < 59 and not (col in range(35, 45) or (abs(row - 20) < 10 and abs(col - 15) < 10))
    with pytest.raises(ValueError, match="unknown pixel kind"):
        filters.choose_pixel(image, "corner", margin=5)


def test_filter_panels_and_figure(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1, bias=False))
    model.eval()
    clean = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    x, pixels, panels = filters.filter_panels(model, clean, 1.0, ["gaussian-10", "gaussian-50"], ["edge", "flat"], 32, 0)
    assert x.shape == (32, 32) and len(panels) == 2
    for panel in panels:
        assert panel["noisy"].shape == panel["denoised"].shape == (32, 32)
        edge = panel["filters"]["edge"]
        row, col = pixels["edge"]
        # A two-layer 3x3 network: the filter is supported on the 5x5 window around the pixel.
        support = np.argwhere(edge != 0)
        assert np.abs(support - [row, col]).max() <= 2
    filters.plot_filters(x, pixels, panels, 9, "test", str(tmp_path / "f.png"), str(tmp_path / "f.svg"))
    assert (tmp_path / "f.png").stat().st_size > 0
