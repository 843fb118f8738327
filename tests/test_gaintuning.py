"""GainTuning: identity at zero steps, gains-only gradients, unbiased SURE/PURE, out-of-distribution gain."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from temdenoise.adapt.gaintuning import GainTuning, adapt
from temdenoise.adapt.piecewise import piecewise_constant
from temdenoise.stats import holm
from temdenoise.adapt.losses import (
    blind_spot_loss,
    make_loss,
    poisson_variance,
    pure_exact_loss,
    sure_loss,
    thinning_loss,
)
from temdenoise.metrics import psnr
from temdenoise.models.dncnn import DnCNN
from temdenoise.models.layers import BiasFreeBatchNorm2d
from temdenoise.noise import NoiseCondition


def small_cnn(channels: int = 16, depth: int = 4, bias: bool = True) -> nn.Module:
    """A DnCNN-like residual net (conv, BN, ReLU) standing in for any registered model."""

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = [nn.Conv2d(1, channels, 3, padding=1, bias=bias), nn.ReLU()]
            for _ in range(depth - 2):
                layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=bias), nn.BatchNorm2d(channels), nn.ReLU()]
            layers.append(nn.Conv2d(channels, 1, 3, padding=1, bias=bias))
            self.body = nn.Sequential(*layers)

        def forward(self, y: torch.Tensor) -> torch.Tensor:
            return y - self.body(y)

    return Residual()


def piecewise_constant_batch(n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` piecewise-constant images as a ``(n, 1, size, size)`` tensor."""
    return torch.from_numpy(np.stack([piecewise_constant(size, rng) for _ in range(n)])[:, None])


def test_zero_steps_is_pretrained_model_exactly() -> None:
    torch.manual_seed(0)
    model = small_cnn().eval()
    noisy = torch.rand(2, 1, 24, 24)
    with torch.no_grad():
        before = model(noisy)
    tuned = GainTuning(model)
    result = adapt(tuned, noisy, make_loss("sure", NoiseCondition("gaussian", 25)), steps=0, lr=1e-2)
    assert torch.equal(result.estimate, before)
    # ...and after adaptation the estimate does change, so the comparison above can fail.
    statistics = [b.running_mean.clone() for b in model.modules() if isinstance(b, nn.BatchNorm2d)]
    moved = adapt(tuned, noisy, make_loss("sure", NoiseCondition("gaussian", 25)), steps=3, lr=1e-1)
    assert not torch.equal(moved.estimate, before)
    # normalisation layers stayed in eval mode: their statistics are not those of the test input
    assert all(torch.equal(b.running_mean, s) for b, s in zip((b for b in model.modules() if isinstance(b, nn.BatchNorm2d)), statistics))
    tuned.remove()
    with torch.no_grad():
        assert torch.equal(model(noisy), before)


def test_only_gains_receive_gradients_and_are_few() -> None:
    torch.manual_seed(0)
    model = small_cnn(channels=64, depth=8)
    tuned = GainTuning(model)
    make_loss("sure", NoiseCondition("gaussian", 50))(tuned, torch.rand(1, 1, 16, 16)).backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(g.grad is not None and g.grad.abs().sum() > 0 for g in tuned.gains.values())
    count = tuned.count()
    assert count["adapted_params"] == 7 * 64 + 1  # one gain per output channel of each of the 8 convs
    assert count["adapted_fraction"] < 0.01
    everything = GainTuning(small_cnn(channels=64, depth=8), mode="all")
    assert everything.count()["adapted_fraction"] == 1.0


def test_all_parameters_mode_never_trains_the_bias_free_running_variance() -> None:
    # The running variance of BiasFreeBatchNorm2d is a buffer (as in the authors' BFBatchNorm2d): an
    # optimiser over "all parameters" must not move it (it was a frozen parameter before, and the
    # "all" mode switched requires_grad on for every parameter).
    torch.manual_seed(0)
    model = DnCNN(depth=4, channels=8, bias_free=True)
    variances = [m.running_var for m in model.modules() if isinstance(m, BiasFreeBatchNorm2d)]
    before = [v.clone() for v in variances]
    tuned = GainTuning(model, mode="all")
    assert not any(p is v for p in tuned.adapted_parameters() for v in variances)
    adapt(tuned, torch.rand(1, 1, 16, 16), make_loss("sure", NoiseCondition("gaussian", 25)), steps=3, lr=1e-1)
    assert all(torch.equal(v, b) for v, b in zip(variances, before))


def test_gain_vector_round_trip() -> None:
    tuned = GainTuning(small_cnn())
    vector = np.linspace(0.5, 1.5, tuned.count()["adapted_params"]).astype(np.float32)
    tuned.set_gain_vector(vector)
    assert np.array_equal(tuned.gain_vector(), vector)
    with pytest.raises(ValueError, match="gain vector"):
        tuned.set_gain_vector(vector[:-1])


def _linear_denoiser() -> nn.Module:
    """A fixed 3x3 box blur: a linear denoiser with divergence 1/9 per pixel."""
    blur = nn.Conv2d(1, 1, 3, padding=1, bias=False, padding_mode="circular")
    blur.weight.data.fill_(1.0 / 9.0)
    return blur


def _risk_gap(estimator, draws: int, noise, clean: torch.Tensor) -> tuple[float, float, float]:
    """Mean and standard error of (estimated - true MSE), and the gap of the naive |f(y)-y|^2 loss."""
    net = _linear_denoiser()
    generator = torch.Generator().manual_seed(1)
    gaps, naive = [], []
    with torch.no_grad():
        for _ in range(draws):
            noisy = noise(clean, generator)
            true_mse = float(((net(noisy) - clean) ** 2).mean())
            gaps.append(float(estimator(net, noisy, generator)) - true_mse)
            naive.append(float(((net(noisy) - noisy) ** 2).mean()) - true_mse)
    gaps_array = np.array(gaps)
    return gaps_array.mean(), gaps_array.std(ddof=1) / np.sqrt(draws), float(np.mean(naive))


def test_sure_is_unbiased_for_gaussian_noise_on_a_linear_denoiser() -> None:
    clean = piecewise_constant_batch(1, 32, np.random.default_rng(0))
    sigma = 0.1
    mean_gap, stderr, naive_gap = _risk_gap(
        lambda net, y, g: sure_loss(net, y, sigma**2, generator=g),
        draws=300,
        noise=lambda x, g: x + sigma * torch.randn(x.shape, generator=g),
        clean=clean,
    )
    assert abs(mean_gap) < 4 * stderr
    # The tolerance is far below the bias of an estimator without the SURE correction.
    assert 4 * stderr < 0.05 * abs(naive_gap)


def test_pure_is_unbiased_for_poisson_noise_on_a_linear_denoiser() -> None:
    clean = piecewise_constant_batch(1, 32, np.random.default_rng(1))
    scale = 20.0  # counts per unit intensity
    mean_gap, stderr, naive_gap = _risk_gap(
        lambda net, y, g: sure_loss(net, y, lambda observed: poisson_variance(observed, scale), generator=g),
        draws=300,
        noise=lambda x, g: torch.poisson(x * scale, generator=g) / scale,
        clean=clean,
    )
    assert abs(mean_gap) < 4 * stderr
    assert 4 * stderr < 0.05 * abs(naive_gap)


def _risk_gap_nonlinear(estimator, true_risk, draws: int, scale: float) -> tuple[float, float]:
    """Mean and standard error of (estimate - true MSE) for a fixed *nonlinear* residual net at a low dose."""
    torch.manual_seed(3)
    net = small_cnn(channels=8, depth=3).eval()  # receptive field 7x7: radius 3
    clean = piecewise_constant_batch(1, 24, np.random.default_rng(2))
    generator = torch.Generator().manual_seed(4)
    gaps = []
    with torch.no_grad():
        for _ in range(draws):
            noisy = torch.poisson(clean * scale, generator=generator) / scale
            gaps.append(float(estimator(net, noisy, generator)) - true_risk(net, clean, generator))
    gaps_array = np.array(gaps)
    return gaps_array.mean(), gaps_array.std(ddof=1) / np.sqrt(draws)


def test_exact_poisson_losses_are_unbiased_below_one_count_for_a_nonlinear_net() -> None:
    """At 0.5 counts per unit intensity exact PURE is unbiased for the risk at the test dose and
    thinning for the risk at the thinned dose, for a nonlinear (ReLU, biased) network."""
    scale = 0.5

    def risk_at(dose_fraction: float):
        def risk(net, clean, generator):
            a = scale * dose_fraction
            return float(((net(torch.poisson(clean * a, generator=generator) / a) - clean) ** 2).mean())
        return risk

    mean_gap, stderr = _risk_gap_nonlinear(lambda n, y, g: pure_exact_loss(n, y, scale, spacing=4, probes=16, generator=g),
                                           risk_at(1.0), 400, scale)
    assert abs(mean_gap) < 4 * stderr, (mean_gap, stderr)
    mean_gap, stderr = _risk_gap_nonlinear(lambda n, y, g: thinning_loss(n, y, scale, keep=0.5, generator=g),
                                           risk_at(0.5), 400, scale)
    assert abs(mean_gap) < 4 * stderr, (mean_gap, stderr)


def test_exact_poisson_losses_are_unbiased_on_a_linear_denoiser() -> None:
    clean = piecewise_constant_batch(1, 32, np.random.default_rng(1))
    scale = 2.0
    mean_gap, stderr, naive_gap = _risk_gap(
        lambda net, y, g: pure_exact_loss(net, y, scale, spacing=4, probes=16, generator=g),
        draws=300,
        noise=lambda x, g: torch.poisson(x * scale, generator=g) / scale,
        clean=clean,
    )
    assert abs(mean_gap) < 4 * stderr and 4 * stderr < 0.2 * abs(naive_gap)


def test_poisson_losses_need_poisson_data() -> None:
    with pytest.raises(ValueError, match="Poisson"):
        make_loss("thinning", NoiseCondition("gaussian", 25))
    loss = make_loss("thinning", NoiseCondition("poisson", 2), pixel_size=0.5, options={"keep": 0.8, "probes": 3})
    assert torch.isfinite(loss(small_cnn(), torch.poisson(torch.ones(1, 1, 16, 16)) / 0.5))


def test_blind_spot_loss_scores_the_centre_frame() -> None:
    video = torch.rand(1, 5, 8, 8)
    centre = lambda y: y[:, 2:3]  # noqa: E731 - a "network" returning the centre frame exactly
    assert float(blind_spot_loss(centre, video)) == 0.0
    assert float(blind_spot_loss(lambda y: y[:, 1:2], video)) > 0.0


def test_gaintuning_raises_psnr_out_of_distribution() -> None:
    """Trained on sigma in [0, 20], tested at sigma 60: SURE-GainTuning must gain over 0.5 dB."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = small_cnn(channels=16, depth=5)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(250):
        clean = piecewise_constant_batch(8, 32, rng)
        sigma = torch.rand(8, 1, 1, 1) * 20 / 255
        loss = ((model(clean + sigma * torch.randn_like(clean)) - clean) ** 2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    clean = piecewise_constant_batch(1, 64, np.random.default_rng(123))
    noisy = clean + 60 / 255 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        before = psnr(clean[0, 0].numpy(), model(noisy)[0, 0].numpy(), "natural")
    result = adapt(GainTuning(model), noisy, make_loss("sure", NoiseCondition("gaussian", 60)), steps=60, lr=0.02)
    after = psnr(clean[0, 0].numpy(), result.estimate[0, 0].numpy(), "natural")
    assert after > before + 0.5, (before, after)


def test_resample_gaintuning_raises_psnr_on_low_dose_poisson_ood() -> None:
    """Trained on 20-200 counts per unit intensity, tested at 1 (below one count per pixel on the
    dark parts): noise-resampling GainTuning must gain over 0.5 dB; first-order PURE must not gain."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = small_cnn(channels=16, depth=5)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(250):
        clean = piecewise_constant_batch(8, 32, rng) + 0.5
        scale = 20 + 180 * torch.rand(8, 1, 1, 1)
        loss = ((model(torch.poisson(clean * scale) / scale) - clean) ** 2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    clean = piecewise_constant_batch(1, 64, np.random.default_rng(123)) + 0.5
    condition = NoiseCondition("poisson", 1.0)  # pixel size 1: a = 1 count per unit intensity
    noisy = torch.poisson(clean, generator=torch.Generator().manual_seed(5))
    score = lambda estimate: psnr(clean[0, 0].numpy(), estimate[0, 0].numpy(), "tem")  # noqa: E731
    with torch.no_grad():
        reference = model(noisy)
    before = score(reference)
    generator = torch.Generator().manual_seed(0)
    resample = make_loss("resample", condition, reference=reference, generator=generator)
    after = score(adapt(GainTuning(copy.deepcopy(model)), noisy, resample, steps=100, lr=0.05).estimate)
    assert after > before + 0.5, (before, after)
    pure = make_loss("sure", condition, generator=torch.Generator().manual_seed(0))
    first_order = score(adapt(GainTuning(copy.deepcopy(model)), noisy, pure, steps=100, lr=0.05).estimate)
    assert first_order < after, (first_order, after)


def test_case_overrides_and_net_bias_jvp() -> None:
    from temdenoise.adapt.settings import AdaptSettings
    from temdenoise.analysis.jacobian import net_bias_jvp
    from temdenoise.analysis.jacobian import net_bias

    section = {"loss": "sure", "lr": 0.01, "steps": 30, "loss_options": {"keep": 0.5}}
    settings = AdaptSettings.from_config(section, {"loss": "resample", "lr": 0.05, "steps": None, "model": "dncnn"})
    assert (settings.loss, settings.lr, settings.steps, settings.loss_options) == ("resample", 0.05, 30, {"keep": 0.5})
    torch.manual_seed(0)
    model = small_cnn().eval()
    image = np.random.default_rng(0).random((12, 12)).astype(np.float32)
    assert torch.allclose(net_bias_jvp(model, image), net_bias(model, image), atol=1e-5)
    assert float(net_bias_jvp(small_cnn(bias=False).eval(), image).abs().max()) < 1e-5  # bias-free: zero


def test_selection_grid_and_provenance(tmp_path) -> None:
    from temdenoise.adapt.settings import FROM_CONFIG, FROM_VALIDATION, selection_grid, settings_of_case, write_selection

    section = {"loss": "sure", "lr": 0.01, "steps": 30, "selection": {"losses": ["sure", "resample"], "lr": [], "steps": [10, 30], "images": 2}}
    grid = selection_grid(section, {"lr": 0.05})
    assert [(s.loss, s.lr, s.steps) for s in grid] == [("sure", 0.05, 10), ("sure", 0.05, 30), ("resample", 0.05, 10), ("resample", 0.05, 30)]
    assert selection_grid(section, {"selection": False}) == []  # pinned by the case
    assert selection_grid(section, {"selection": {"losses": ["resample"], "steps": [30]}}) == []  # one point: nothing to choose
    assert settings_of_case(section, {"lr": 0.05})[1] == FROM_CONFIG
    write_selection(str(tmp_path / "s.json"), "c", grid[2], "test", 2, ["gaussian-25"])
    settings, source = settings_of_case(section, {"lr": 0.05}, str(tmp_path / "s.json"))
    assert (settings.loss, settings.lr, settings.steps, source) == ("resample", 0.05, 10, FROM_VALIDATION)


def test_choose_setting_takes_the_validation_optimum() -> None:
    from temdenoise.adapt.experiments import choose_setting

    # per item: the second setting wins on the mean although the first wins on image 0
    table = pd.DataFrame({"loss": ["sure", "sure", "resample", "sure", "sure", "resample"],
                          "lr": [0.01, 0.05, 0.01] * 2, "steps": [30] * 6, "noise": ["gaussian-70"] * 6,
                          "image": [0, 0, 0, 1, 1, 1], "psnr": [25.0, 24.0, 20.0, 20.0, 23.0, 21.0],
                          "psnr_pretrained": [19.0] * 6})
    means, chosen = choose_setting(table)
    assert chosen == {"loss": "sure", "lr": 0.05, "steps": 30}
    assert list(means["chosen"]) == [False, True, False]


def test_sweep_reads_shorter_step_counts_off_the_longest_run() -> None:
    """One adaptation of the longest step count gives the estimate of every shorter one exactly,
    so the sweep scores the very estimate a k-step case adaptation would produce."""
    from temdenoise.adapt.experiments import adaptation_snapshots, sweep
    from temdenoise.adapt.settings import AdaptSettings

    torch.manual_seed(0)
    model = small_cnn(channels=8, depth=3).eval()
    rng = np.random.default_rng(0)
    clean = [piecewise_constant(24, rng) for _ in range(2)]
    noisy = {"gaussian-50": [c + 50 / 255 * rng.standard_normal(c.shape).astype(np.float32) for c in clean]}
    condition = NoiseCondition("gaussian", 50)
    short = AdaptSettings(loss="resample", lr=0.05, steps=4)
    snapshots, _ = adaptation_snapshots(model, noisy["gaussian-50"][0], condition, replace(short, steps=12), every=4, seed=3)
    alone, _ = adaptation_snapshots(model, noisy["gaussian-50"][0], condition, short, every=4, seed=3)
    assert sorted(snapshots) == [0, 4, 8, 12] and np.allclose(snapshots[4], alone[4], atol=1e-5)
    assert not np.allclose(snapshots[4], snapshots[12])
    grid = [replace(short, steps=s) for s in (0, 4, 12)] + [replace(short, lr=0.01, steps=12)]
    table = sweep(model, noisy, clean, "natural", grid, seed=3)
    assert len(table) == 4 * 2
    assert np.allclose(table[table["steps"] == 0]["psnr"], table[table["steps"] == 0]["psnr_pretrained"])
    first = table[(table["steps"] == 4) & (table["image"] == 0)]["psnr"].iloc[0]
    assert np.isclose(first, psnr(clean[0], alone[4], "natural"), atol=1e-3)


def test_workflow_jobs_write_consistent_tables(tmp_path) -> None:
    """The rule bodies: validation sweep, noisy-only adaptation, scoring, summary with paired CIs,
    curve and net-bias tables."""
    import json

    from temdenoise.adapt.experiments import (
        case_job, curve_job, load_arrays, net_bias_job, score_case_job, score_curve_job, select_job, summary_job,
    )
    from temdenoise.adapt.piecewise import piecewise_split
    from temdenoise.io import load_stack, save_stack, save_table
    from temdenoise.models import build_model
    from temdenoise.noise import gaussian_noise

    entry = {"family": "dncnn", "params": {"depth": 3, "channels": 8}}
    torch.save(build_model(entry).state_dict(), tmp_path / "model.pt")
    rng = np.random.default_rng(0)
    noisy = {}
    for split, count in (("test", 3), ("validation", 2)):
        images, metadata = piecewise_split(count, 24, 4, seed={"test": 0, "validation": 1}[split])
        save_stack(tmp_path / f"{split}.npz", images)
        save_table(tmp_path / f"{split}.csv", metadata)
        for sigma in (70, 80):
            noisy[split, sigma] = str(tmp_path / f"noisy{sigma}-{split}.npz")
            save_stack(noisy[split, sigma], [gaussian_noise(image, sigma, rng) for image in images])
    section = {"loss": "sure", "lr": 0.01, "steps": 2, "images": 3, "crop": 16, "all_params_lr": 1e-3,
               "selection": {"losses": ["sure", "resample"], "lr": [0.01], "steps": [2, 4], "images": 1},
               "curve": {"case": "c", "noise": "gaussian-70", "steps": 4, "every": 2}, "net_bias": {"case": "c", "patch": 8}}
    case = {"kind": "ood", "noise": ["gaussian-70", "gaussian-80"]}
    model = (str(tmp_path / "model.pt"), entry)
    paths = {split: {f"gaussian-{s}": noisy[split, s] for s in (70, 80)} for split in ("test", "validation")}
    select_job(case="c", section=section, entry=case, pretrained=model, noisy_paths=paths["validation"],
               clean_path=str(tmp_path / "validation.npz"), metadata_path=str(tmp_path / "validation.csv"),
               domain="natural", json_path=str(tmp_path / "selection.json"), table_path=str(tmp_path / "selection.csv"))
    grid = pd.read_csv(tmp_path / "selection.csv")
    assert len(grid) == 4 * 2 * 1 and grid["chosen"].sum() == 2  # 4 settings x 2 conditions x 1 image
    chosen = json.loads((tmp_path / "selection.json").read_text())["chosen"]
    best = grid.groupby(["loss", "lr", "steps"])["psnr"].mean().idxmax()
    assert (chosen["loss"], chosen["lr"], chosen["steps"]) == best

    case_job(case="c", section=section, entry=case, selection_path=str(tmp_path / "selection.json"), pretrained=model,
             compared={"same": model}, noisy_paths=paths["test"], metadata_path=str(tmp_path / "test.csv"),
             adaptation_path=str(tmp_path / "adaptation.csv"), estimates_path=str(tmp_path / "estimates.npz"),
             gains_path=str(tmp_path / "gains.npz"))
    records = pd.read_csv(tmp_path / "adaptation.csv")
    assert len(records) == 6 and set(records["setting_from"]) == {"validation"}
    assert (records["steps"] == chosen["steps"]).all() and (records["loss"] == chosen["loss"]).all()
    assert len(load_arrays(tmp_path / "estimates.npz")) == 6 * 4  # noisy, pretrained, gaintuning, same
    gains = load_stack(tmp_path / "gains.npz")
    assert len(gains) == 6 and all(len(g) == records["adapted_params"].iloc[0] for g in gains)
    score_case_job(adaptation_path=str(tmp_path / "adaptation.csv"), estimates_path=str(tmp_path / "estimates.npz"),
                   clean_path=str(tmp_path / "test.npz"), metadata_path=str(tmp_path / "test.csv"), domain="natural",
                   tem_psnr=["range", "seed_counts"],
                   reference_counts=0.45, table_path=str(tmp_path / "c.csv"), figure_path=str(tmp_path / "c.png"))
    table = pd.read_csv(tmp_path / "c.csv")
    assert len(table) == 6  # 3 images x 2 conditions
    assert np.allclose(table["psnr_pretrained"], table["psnr_same"])  # same weights, same crop
    summary_job([str(tmp_path / "c.csv")], {"c": "ood"}, {"ood": str(tmp_path / "ood")})
    summary = pd.read_csv(tmp_path / "ood.csv")
    assert list(summary["noise"]) == ["gaussian-70", "gaussian-80"]
    assert np.isclose(summary["gaintuning"].iloc[0], table["psnr_gaintuning"].iloc[:3].mean())
    difference = table["psnr_gaintuning"].iloc[:3] - table["psnr_pretrained"].iloc[:3]
    assert np.isclose(summary["gaintuning-pretrained"].iloc[0], difference.mean())
    assert (summary["gaintuning-pretrained_low"] < summary["gaintuning-pretrained"]).all()
    assert {"gaintuning-same", "gaintuning-same_high", "gaintuning-same_resolved", "setting", "setting_from"} <= set(summary.columns)
    # natural images are their own units; the verdicts are Holm-adjusted over the whole table
    assert (summary["unit"] == "image").all() and (summary["n_units"] == 3).all()
    p_values = summary[["gaintuning-pretrained_p", "gaintuning-same_p"]].to_numpy().ravel()
    assert summary[["gaintuning-pretrained_p_holm", "gaintuning-same_p_holm"]].to_numpy().ravel() == pytest.approx(holm(p_values))
    markdown = (tmp_path / "ood.md").read_text()
    assert "validation" in markdown and "gaintuning-pretrained" in markdown and " dB [" in markdown

    case_job(case="c", section=section, entry={**case, "selection": False}, pretrained=model, compared={},
             noisy_paths=paths["test"], metadata_path=str(tmp_path / "test.csv"),
             adaptation_path=str(tmp_path / "fixed.csv"), estimates_path=str(tmp_path / "fixed.npz"),
             gains_path=str(tmp_path / "fixed-gains.npz"))
    fixed = pd.read_csv(tmp_path / "fixed.csv")
    assert set(fixed["setting_from"]) == {"fixed by config"} and (fixed["steps"] == 2).all()

    common = {"metadata_path": str(tmp_path / "test.csv"), "selection_path": str(tmp_path / "selection.json")}
    curve_job(section=section, entry=case, model=model, noisy_path=noisy["test", 70], noise="gaussian-70",
              steps_path=str(tmp_path / "steps.csv"), estimates_path=str(tmp_path / "curve.npz"), **common)
    score_curve_job(steps_path=str(tmp_path / "steps.csv"), estimates_path=str(tmp_path / "curve.npz"),
                    clean_path=str(tmp_path / "test.npz"), domain="natural", tem_psnr=["range", "seed_counts"],
                    reference_counts=0.45, noise="gaussian-70", title="c",
                    table_stem=str(tmp_path / "curve"), figure_path=str(tmp_path / "curve.png"))
    curve = pd.read_csv(tmp_path / "curve.csv")
    assert list(curve["step"]) == [0, 2, 4, 0, 2, 4]
    assert curve.groupby("mode")["psnr"].first().nunique() == 1  # both modes start from the pre-trained model
    net_bias_job(section=section, entry=case, model=model, noisy_paths=paths["test"], table_stem=str(tmp_path / "bias"),
                 figure_path=str(tmp_path / "bias.png"), **common)
    bias = pd.read_csv(tmp_path / "bias.csv")
    assert (bias["net_bias_pretrained"] > 0).all() and len(bias) == 6
    for name in ("c.png", "curve.png", "bias.png", "ood.md", "ood.tex", "curve.md", "bias.tex"):
        assert (tmp_path / name).stat().st_size > 0


def test_tem_case_tables_carry_both_psnr_conventions_scored_as_evaluate_scores(tmp_path) -> None:
    """A TEM GainTuning case and its step curve are scored under range and seed_counts at the test
    dataset's reference_counts, under Gaussian noise too (the base dose needs no dose of the condition)."""
    from temdenoise.adapt.experiments import save_arrays, score_case_job, score_curve_job, summary_job
    from temdenoise.io import save_stack, save_table
    from temdenoise.metrics import seed_counts_psnr

    rng = np.random.default_rng(0)
    clean = [(1.0 - 0.6 * rng.random((12, 12))).astype(np.float32) for _ in range(2)]  # as stored
    save_stack(tmp_path / "test.npz", clean)
    conditions = ("poisson-10", "gaussian-25")
    records = pd.DataFrame([{"case": "c", "noise": noise, "image": image, "loss": "sure", "lr": 0.01, "steps": 2,
                             "setting_from": "fixed by config", "adapted_fraction": 0.01}
                            for noise in conditions for image in (0, 1)])
    estimates = {f"{noise}/{image}/{label}": clean[image][2:10, 2:10] + rng.normal(0, 0.1, (8, 8))
                 for noise in conditions for image in (0, 1) for label in ("noisy", "pretrained", "gaintuning")}
    save_table(tmp_path / "adaptation.csv", records)
    save_arrays(str(tmp_path / "estimates.npz"), estimates)
    # two defoci of one simulated structure: one independent unit
    save_table(tmp_path / "test.csv", pd.DataFrame({"item": [0, 1], "structure_id": "tem-test-00000"}))
    score_case_job(adaptation_path=str(tmp_path / "adaptation.csv"), estimates_path=str(tmp_path / "estimates.npz"),
                   clean_path=str(tmp_path / "test.npz"), metadata_path=str(tmp_path / "test.csv"), domain="tem",
                   tem_psnr=["range", "seed_counts"],
                   reference_counts=0.6, table_path=str(tmp_path / "c.csv"), figure_path=str(tmp_path / "c.png"))
    table = pd.read_csv(tmp_path / "c.csv")
    stored = {key: value.astype(np.float32) for key, value in estimates.items()}  # as the case job saves them
    for noise in conditions:
        # by hand: image 1 at 0.6 counts per vacuum pixel, clean and estimate on the same central 8 x 8 crop
        by_hand = seed_counts_psnr(clean[1][2:10, 2:10], stored[f"{noise}/1/gaintuning"], reference_counts=0.6)
        row = table[(table["noise"] == noise) & (table["image"] == 1)].iloc[0]
        assert row["gaintuning_psnr_seed_counts"] == pytest.approx(by_hand, rel=1e-12)
        assert row["psnr_gaintuning"] == row["gaintuning_psnr_range"] == pytest.approx(
            psnr(clean[1][2:10, 2:10], stored[f"{noise}/1/gaintuning"], "tem"))

    summary_job([str(tmp_path / "c.csv")], {"c": "ood"}, {"ood": str(tmp_path / "ood")})
    summary = pd.read_csv(tmp_path / "ood.csv")
    means = table.groupby("noise", sort=False)[["gaintuning_psnr_seed_counts", "psnr_gaintuning"]].mean()
    for column, mean in (("gaintuning_psnr_seed_counts", "gaintuning_psnr_seed_counts"),
                         ("gaintuning_psnr_range", "psnr_gaintuning")):
        assert summary[column].to_numpy() == pytest.approx(means[mean].to_numpy())
    markdown = (tmp_path / "ood.md").read_text()
    assert "psnr_range:" in markdown and "psnr_seed_counts:" in markdown  # the header names both conventions

    save_table(tmp_path / "steps.csv", pd.DataFrame({"mode": ["gains", "gains"], "step": [0, 2], "loss": "sure",
                                                     "lr": 0.01, "adapted_params": 5, "setting_from": "fixed by config"}))
    save_arrays(str(tmp_path / "curve.npz"), {"gains/0": estimates["poisson-10/0/pretrained"],
                                              "gains/2": estimates["poisson-10/0/gaintuning"]})
    score_curve_job(steps_path=str(tmp_path / "steps.csv"), estimates_path=str(tmp_path / "curve.npz"),
                    clean_path=str(tmp_path / "test.npz"), domain="tem", tem_psnr=["range", "seed_counts"],
                    reference_counts=0.6, noise="poisson-10", title="c",
                    table_stem=str(tmp_path / "curve"), figure_path=str(tmp_path / "curve.png"))
    curve = pd.read_csv(tmp_path / "curve.csv")
    assert curve["psnr_seed_counts"].iloc[1] == pytest.approx(table.loc[
        (table["noise"] == "poisson-10") & (table["image"] == 0), "gaintuning_psnr_seed_counts"].iloc[0])
    assert (curve["psnr"] == curve["psnr_range"]).all() and "psnr_seed_counts:" in (tmp_path / "curve.md").read_text()
