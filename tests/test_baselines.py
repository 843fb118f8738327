"""The baselines of issue 23: the Poisson route of the Gaussian denoisers (exact unbiased inverse
Anscombe), the self-calibrated NLM / TV, the optional BM3D extra, and the masking / thinning of
Noise2Self, Noise2Void and Noise2Noise training on noisy images only."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
import yaml
from scipy.stats import poisson

from conftest import REPO
from temdenoise import families, registry
from temdenoise.benchmark import write_noisy_split
from temdenoise.classical import variance_stabilised
from temdenoise.io import load_stack, save_stack
from temdenoise.metrics import psnr
from temdenoise.noise import NoiseCondition, anscombe, apply_condition, inverse_anscombe, parse_condition
from temdenoise.runtime import derive_seed
from temdenoise.train.noisy_images import (
    NoisyPatchSampler,
    Objective,
    binomial_split,
    masked_mse,
    noise2self_input,
    noise2void_input,
    noisy_images,
    train_noisy_images,
)


def expected_anscombe(rate: float) -> float:
    """E[anscombe(y)] for y ~ Poisson(rate), summed exactly over the distribution."""
    counts = np.arange(0, int(rate * 10 + 50))
    return float(np.sum(poisson.pmf(counts, rate) * anscombe(counts)))


@pytest.mark.parametrize("rate", [1.0, 1.25, 5.0])
def test_exact_inverse_is_unbiased_where_the_algebraic_one_is_not(rate) -> None:
    mean = expected_anscombe(rate)
    assert inverse_anscombe(mean) == pytest.approx(rate, rel=0.01)
    if rate < 2:  # the algebraic inverse (z / 2)^2 - 3/8 loses about 18% at one count
        assert (mean / 2) ** 2 - 3 / 8 < 0.85 * rate


def test_poisson_route_is_unbiased_on_a_constant_image_at_one_count() -> None:
    """An ideal Gaussian denoiser of a constant image (its mean) through the Anscombe route returns
    the true intensity at 1 count per pixel: the stabilised mean is inverted without bias."""
    pixel_size, dose = 0.5, 4.0  # 1 count per pixel of intensity 1
    clean = np.full((256, 256), 1.0)
    noisy = apply_condition(clean, NoiseCondition("poisson", dose), np.random.default_rng(0), pixel_size)
    estimate = variance_stabilised(noisy, NoiseCondition("poisson", dose), pixel_size,
                                   lambda z, sigma: np.full_like(z, z.mean()))
    assert float(estimate.mean()) == pytest.approx(1.0, abs=0.01)


def test_gaussian_route_passes_the_known_sigma() -> None:
    seen = []
    variance_stabilised(np.zeros((4, 4)), NoiseCondition("gaussian", 25), 1.0,
                        lambda image, sigma: seen.append(sigma) or image)
    assert seen == [pytest.approx(25 / 255)]


def _test_image() -> np.ndarray:
    rows, cols = np.mgrid[:64, :64]
    return np.where((rows // 16 + cols // 16) % 2, 0.8, 0.2)


@pytest.mark.parametrize("family", ["nlm", "tv", "wavelet"])
def test_per_image_denoisers_declare_nothing_to_fit(family) -> None:
    assert families.family_info(family).fits is False and not hasattr(registry.build({"family": family}), "fit")


@pytest.mark.parametrize("family", ["nlm", "tv"])
def test_self_calibration_comes_close_to_the_best_strength_chosen_with_the_clean_image(family) -> None:
    method = registry.build({"family": family})
    clean = _test_image()
    condition = NoiseCondition("gaussian", 50)
    noisy = apply_condition(clean, condition, np.random.default_rng(1))
    calibrated = psnr(clean, method.denoise(noisy, {}, condition, 1.0), "natural")
    candidates = method.candidates(50 / 255)
    oracle = max(
        psnr(clean, method.denoiser(noisy, **dict(zip(candidates, values))), "natural")
        for values in itertools.product(*candidates.values())
    )
    assert oracle - 2.0 < calibrated and calibrated > psnr(clean, noisy, "natural") + 5


def test_bm3d_needs_its_extra(monkeypatch) -> None:
    monkeypatch.setattr(families.importlib.util, "find_spec", lambda name: None)
    assert families.missing_extra("bm3d") == "bm3d" and families.missing_extra("bm4d") == "bm3d"
    assert families.missing_extra("nlm") is None


def test_bm4d_takes_videos_only() -> None:
    with pytest.raises(ValueError, match="use bm3d"):
        registry.build({"family": "bm4d"}).denoise(np.ones((32, 32)), {}, NoiseCondition("gaussian", 25), 1.0)


@pytest.mark.parametrize("grid, phase", [(2, (0, 1)), (4, (3, 2))])
def test_noise2self_masking_leaves_the_target_pixels_unseen(grid, phase) -> None:
    noisy = np.random.default_rng(2).random((32, 32)).astype(np.float32)
    masked, mask = noise2self_input(noisy, grid, phase)
    assert mask.sum() == (32 // grid) ** 2 and np.array_equal(masked[~mask], noisy[~mask])
    changed = noisy + 10.0 * mask  # any values at the targets: the input does not move
    assert np.array_equal(noise2self_input(changed, grid, phase)[0], masked)


def test_noise2void_masking_leaves_the_target_pixels_unseen() -> None:
    noisy = np.random.default_rng(3).random((64, 64)).astype(np.float32)
    masked, mask = noise2void_input(noisy, 0.05, 2, np.random.default_rng(4))
    assert mask.sum() == round(0.05 * 64 * 64) and np.array_equal(masked[~mask], noisy[~mask])
    changed = noisy + 10.0 * mask
    again, same_mask = noise2void_input(changed, 0.05, 2, np.random.default_rng(4))
    assert np.array_equal(same_mask, mask) and np.array_equal(again, masked)
    # each masked pixel took the value of an unmasked pixel within the radius
    for row, col in zip(*np.nonzero(mask)):
        window = noisy[max(row - 2, 0) : row + 3, max(col - 2, 0) : col + 3]
        window_mask = mask[max(row - 2, 0) : row + 3, max(col - 2, 0) : col + 3]
        assert masked[row, col] in window[~window_mask]


def test_thinning_halves_are_independent_poisson_with_the_right_means() -> None:
    rate, p = 3.0, 0.3
    rng = np.random.default_rng(5)
    counts = rng.poisson(rate, 400_000)
    first, second = binomial_split(counts, p, rng)
    assert np.array_equal(first + second, counts)
    assert first.mean() == pytest.approx(p * rate, rel=0.01) and first.var() == pytest.approx(p * rate, rel=0.02)
    assert second.mean() == pytest.approx((1 - p) * rate, rel=0.01)
    assert second.var() == pytest.approx((1 - p) * rate, rel=0.02)
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.01  # Binomial(y, p) given y alone would be -0.6
    assert np.mean(first == 0) == pytest.approx(poisson.pmf(0, p * rate), abs=0.003)


def test_noise2noise_pair_estimates_the_intensity_from_each_half() -> None:
    scale = 2.0  # counts per unit intensity
    clean = np.full((128, 128), 1.5)
    noisy = np.random.default_rng(6).poisson(clean * scale) / scale
    source, target, mask = Objective("noise2noise", thinning=0.5).pair(noisy, scale, np.random.default_rng(7))
    assert mask.all() and np.allclose((source + target) / 2, noisy)
    assert source.mean() == pytest.approx(1.5, rel=0.03) and target.mean() == pytest.approx(1.5, rel=0.03)
    with pytest.raises(ValueError, match="Poisson"):
        Objective("noise2noise").pair(noisy, None, np.random.default_rng(7))


def test_masked_loss_has_no_gradient_outside_the_mask() -> None:
    output = torch.zeros(1, 1, 8, 8, requires_grad=True)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2, 3] = 1
    loss = masked_mse(lambda x: output + 0 * x, (torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8), mask))
    loss.backward()
    assert loss.item() == pytest.approx(1.0) and torch.count_nonzero(output.grad) == 1


def test_schema_defaults_are_the_objective_defaults() -> None:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    properties = schema["properties"]["methods"]["additionalProperties"]["properties"]["objective"]["properties"]
    defaults = {key: spec["default"] for key, spec in properties.items() if "default" in spec}
    assert Objective(name="noise2void") == Objective(name="noise2void", **defaults)


@pytest.mark.parametrize(
    "objective",
    [{"name": "noise2self"}, {"name": "noise2void", "weighting": "inverse_variance"}, {"name": "noise2noise"},
     {"name": "noise2noise", "pairs": "two_exposures"}],
    ids=["noise2self", "noise2void-weighted", "noise2noise-thinning", "noise2noise-two-exposures"],
)
def test_training_reads_noisy_stacks_and_writes_the_outputs(objective, tmp_path) -> None:
    rng = np.random.default_rng(8)
    conditions, pixel_size = ["poisson-20", "poisson-200"], 0.5
    paths = {}
    for split, copy, name in itertools.product(("train", "validation"), ("", "_second"), conditions):
        condition = parse_condition(name)
        stack = [apply_condition(0.5 + 0.5 * _test_image(), condition, rng, pixel_size) for _ in range(2)]
        paths[split + copy, name] = str(tmp_path / f"{split}{copy}-{name}.npz")
        save_stack(paths[split + copy, name], stack)
        (tmp_path / f"{split}.csv").write_text("item,pixel_size\n0,0.5\n1,0.5\n")
    entry = {"family": "dncnn", "params": {"depth": 3, "channels": 4}, "objective": objective}
    recipe = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 32, "validation_images": 1,
              "progress": False}
    second = {split: [paths[split + "_second", name] for name in conditions] for split in ("train", "validation")}
    two_exposures = objective.get("pairs") == "two_exposures"
    result = train_noisy_images(entry, recipe, conditions, [paths["train", n] for n in conditions],
                                [paths["validation", n] for n in conditions], str(tmp_path / "out"),
                                str(tmp_path / "train.csv"), str(tmp_path / "validation.csv"), device="cpu",
                                train_second_paths=second["train"] if two_exposures else None,
                                validation_second_paths=second["validation"] if two_exposures else None)
    info = json.loads((tmp_path / "out/info.json").read_text())
    assert info["objective"]["name"] == objective["name"] and info["training_data"] == "stored noisy recordings only"
    assert np.isfinite(result.best_score) and (tmp_path / "out/model.pt").is_file()
    assert set(info["val_score_by_condition"]) == set(conditions)
    with pytest.raises(ValueError, match="second noisy copies"):  # a second copy exactly when two exposures
        train_noisy_images(entry, recipe, conditions, [paths["train", n] for n in conditions],
                           [paths["validation", n] for n in conditions], str(tmp_path / "again"),
                           train_second_paths=None if two_exposures else second["train"],
                           validation_second_paths=None if two_exposures else second["validation"])


def test_noisy_image_batches_are_the_same_in_any_number_of_workers(tmp_path) -> None:
    """Loader workers (issue 37 item 4) draw each batch from its own seed: one worker or two train
    the same weights, and the batches differ from those of the in-process generator."""
    rng = np.random.default_rng(3)
    for split in ("train", "validation"):
        save_stack(tmp_path / f"{split}.npz", [apply_condition(0.5 + 0.5 * _test_image(), parse_condition("poisson-20"),
                                                               rng, 0.5) for _ in range(2)])
    entry = {"family": "dncnn", "params": {"depth": 3, "channels": 4}, "objective": {"name": "noise2void"}}
    recipe = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 32, "validation_images": 1,
              "progress": False}
    weights = {}
    for workers in (0, 1, 2):
        train_noisy_images(entry, recipe, ["poisson-20"], [str(tmp_path / "train.npz")],
                           [str(tmp_path / "validation.npz")], str(tmp_path / str(workers)), device="cpu",
                           loader_workers=workers)
        weights[workers] = torch.load(tmp_path / str(workers) / "model.pt", weights_only=True)
    assert all(torch.equal(weights[1][key], weights[2][key]) for key in weights[1])
    assert not all(torch.equal(weights[0][key], weights[2][key]) for key in weights[0])


@pytest.mark.parametrize("weighting, ratio", [("inverse_variance", 1.0), ("none", 10.0)])
def test_inverse_variance_weighting_makes_every_dose_weigh_alike(weighting, ratio) -> None:
    """What a masked pixel of a noisy image at dose 20 or 200 adds to the pooled loss (numerator of
    :func:`masked_mse`, whose denominator is the pooled weight) when the net outputs the clean image
    (the ideal denoiser): unweighted, the noise variance, 10 times larger at dose 20; weighted, 1 at both."""
    clean, pixel_size = np.ones((64, 64)), 0.5
    objective = Objective("noise2void", weighting=weighting)
    rng = np.random.default_rng(9)
    losses = {}
    for dose in (20.0, 200.0):
        condition = NoiseCondition("poisson", dose)
        stack = [apply_condition(clean, condition, rng, pixel_size) for _ in range(4)]
        images = noisy_images(stack, [condition] * 4, [pixel_size] * 4, weighting)
        sampler = NoisyPatchSampler(images, objective, patch_size=32, batch_size=64)
        batches = [sampler(rng) for _ in range(20)]
        losses[dose] = np.mean([float((mask * (1 - target) ** 2).sum() / (mask > 0).sum())
                                for _, target, mask in batches])
    assert losses[20.0] / losses[200.0] == pytest.approx(ratio, rel=0.1)
    if weighting == "inverse_variance":
        assert losses[20.0] == pytest.approx(1.0, rel=0.1) and losses[200.0] == pytest.approx(1.0, rel=0.1)


def test_the_second_exposure_is_an_independent_draw_of_the_same_scenes(tmp_path) -> None:
    """The seeds of rules add_noise and add_noise_second (workflow/rules/noise.smk): two noisy copies
    of a split with the same mean and uncorrelated noise."""
    clean = [0.5 + 0.5 * _test_image() for _ in range(3)]
    save_stack(tmp_path / "clean.npz", clean)
    (tmp_path / "clean.csv").write_text("item,pixel_size\n0,0.5\n1,0.5\n2,0.5\n")
    copies = []
    for stage in ("noise", "noise_second"):
        out = tmp_path / f"{stage}.npz"
        write_noisy_split(str(tmp_path / "clean.npz"), str(tmp_path / "clean.csv"), "poisson-20",
                          derive_seed(0, stage, "tem", "poisson-20", "train"), str(out))
        copies.append(np.stack(load_stack(out)))
    first, second = (copy - np.stack(clean) for copy in copies)
    assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < 0.05
    assert copies[0].mean() == pytest.approx(copies[1].mean(), rel=0.02)
    assert first.var() == pytest.approx(second.var(), rel=0.1)


def test_two_exposures_pair_the_copies_and_leave_thinning_unchanged() -> None:
    scale = 2.0
    noisy, second = (np.random.default_rng(s).poisson(np.full((32, 32), 1.5) * scale) / scale for s in (1, 2))
    source, target, mask = Objective("noise2noise", pairs="two_exposures").pair(noisy, None, np.random.default_rng(3),
                                                                              second)
    assert np.array_equal(source, noisy) and np.array_equal(target, second) and mask.all()
    thinned = Objective("noise2noise").pair(noisy, scale, np.random.default_rng(3))
    again = Objective("noise2noise", pairs="thinning").pair(noisy, scale, np.random.default_rng(3), second)
    assert all(np.array_equal(a, b) for a, b in zip(thinned, again))  # the second copy is not used
    with pytest.raises(ValueError, match="second noisy copy"):
        Objective("noise2noise", pairs="two_exposures").pair(noisy, None, np.random.default_rng(3))
