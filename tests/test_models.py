"""Models: parameter counts, bias-free homogeneity, measured field of view, inference on any size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import REPO, load_config

from temdenoise.models import build_model, count_parameters, homogeneity_facts, load_trained
from temdenoise.registry import entry_on, method_kind
from temdenoise.models.dncnn import DnCNN
from temdenoise.models.fov import measure_fov
from temdenoise.models.inference import denoise_image, denoise_stack
from temdenoise.models.layers import BiasFreeBatchNorm2d
from temdenoise.models.unet import UNet, encoder_widths


def randomise_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random gains and running statistics, so eval mode is not the identity normalisation."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (BiasFreeBatchNorm2d, torch.nn.BatchNorm2d)):
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator))
                    module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator))
    return model


def homogeneity_error(model: torch.nn.Module, size: int = 32) -> float:
    """Largest relative error of f(a y) = a f(y) over a few a > 0, in eval mode, float64."""
    model = model.double().eval()
    y = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        reference = model(y)
        errors = [
            ((model(a * y) - a * reference).norm() / (a * reference).norm()).item() for a in (0.05, 0.7, 3.0, 40.0)
        ]
    return max(errors)


def bias_entries(model: torch.nn.Module) -> int:
    """Entries of the conv and BatchNorm biases of ``model``."""
    return sum(p.numel() for name, p in model.named_parameters() if name.endswith("bias"))


def test_dncnn_parameter_counts_match_the_paper():
    assert count_parameters(DnCNN(depth=20, channels=64, bias_free=False)) == 668_225
    # The authors' 667,008 also counts the 18 x 64 BatchNorm biases their BFBatchNorm2d keeps and never uses.
    bias_free = DnCNN(depth=20, channels=64, bias_free=True)
    assert count_parameters(bias_free) == 665_856 == 667_008 - 18 * 64
    assert bias_entries(bias_free) == 0


# The authors' electron-microscopy UNet (models/unet.py, bilinear, with biases; REFERENCE.md section 9)
AUTHORS_UNET_COUNTS = {(2, 32): 102_657, (4, 32): 352_737, (4, 64): 1_405_889, (4, 128): 5_613_441,
                       (6, 32): 4_412_961, (6, 128): 70_514_817}


@pytest.mark.parametrize(("scales", "base"), list(AUTHORS_UNET_COUNTS), ids=lambda v: str(v))
def test_unet_parameter_counts_match_the_authors_code(scales, base):
    biased = UNet(scales, base)
    assert count_parameters(biased) == AUTHORS_UNET_COUNTS[scales, base]
    # the bias-free version drops exactly the conv and BatchNorm biases
    assert count_parameters(UNet(scales, base, bias_free=True)) == count_parameters(biased) - bias_entries(biased)


def test_unet_widths_follow_the_authors_schedule():
    assert encoder_widths(2, 32) == [32, 32, 32]
    assert encoder_widths(4, 32) == [32, 32, 32, 64, 64]
    assert encoder_widths(6, 32) == [32, 32, 32, 64, 128, 256, 256]
    assert encoder_widths(3, 32) == [32, 32, 32, 32]
    pads = [m for m in UNet(2, 8).modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert pads and all(m.padding_mode == "replicate" for m in pads)


def test_bias_free_batchnorm_running_variance_is_a_buffer_not_a_parameter():
    model = UNet(2, 8, bias_free=True)
    names = [name for name, _ in model.named_parameters()]
    assert not any("running" in name for name in names)
    assert any(name.endswith("running_var") for name, _ in model.named_buffers())
    assert any(name.endswith("running_var") for name in model.state_dict())


def test_unet_parameters_grow_with_width_and_depth():
    small, wide, deep = UNet(2, 8), UNet(2, 16), UNet(3, 8)
    assert count_parameters(small) < count_parameters(wide) and count_parameters(small) < count_parameters(deep)
    # Doubling every width roughly quadruples the conv weights.
    assert 3.5 < count_parameters(wide) / count_parameters(small) < 4.1


@pytest.mark.parametrize(
    "model",
    [
        DnCNN(depth=6, channels=16, bias_free=True),
        DnCNN(depth=6, channels=16, bias_free=True, residual=False),
        UNet(scales=2, base_channels=8, bias_free=True),
    ],
    ids=["bf_dncnn", "bf_dncnn_image", "bf_unet"],
)
def test_bias_free_models_are_homogeneous(model):
    assert homogeneity_error(randomise_norms(model)) < 1e-5


@pytest.mark.parametrize("family", [DnCNN, UNet], ids=["bf_dncnn", "bf_unet"])
def test_offset_models_are_homogeneous_about_the_offset(family):
    size = {DnCNN: {"depth": 6, "channels": 16}, UNet: {"scales": 2, "base_channels": 8}}[family]
    plain = randomise_norms(family(**size, bias_free=True)).double().eval()
    shifted = family(**size, bias_free=True, offset=1.0).double().eval()
    shifted.load_state_dict(plain.state_dict())
    y = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        # the same weights about 1 are the plain net on deviations from 1: o + f(y - o)
        torch.testing.assert_close(shifted(1.0 + y), 1.0 + plain(y))
        # homogeneous about the offset, not about 0
        torch.testing.assert_close(shifted(1.0 + 3.0 * y) - 1.0, 3.0 * (shifted(1.0 + y) - 1.0))
        # (relative to what the net changes: the residual DnCNN starts near the identity)
        assert ((shifted(3.0 * y) - 3.0 * shifted(y)).norm() / (shifted(y) - y).norm()).item() > 1e-2
        # a flat vacuum at the offset level is a fixed point, whatever the weights
        torch.testing.assert_close(shifted(torch.ones_like(y)), torch.ones_like(y))


def configured_networks() -> dict[str, dict]:
    """Every distinct network (family + params, per-dataset overrides merged) of the project's configs."""
    found: dict[str, dict] = {}
    for path in sorted([*(REPO / "config").glob("*.yaml"), *(REPO / "tests/configs").glob("*.yaml")]):
        for name, entry in load_config(path).get("methods", {}).items():
            if method_kind(entry) != "network":
                continue
            for dataset in [None, *entry.get("datasets", {})]:
                flat = entry_on(entry, dataset)
                network = {"family": flat["family"], "params": flat.get("params", {})}
                found.setdefault(json.dumps(network, sort_keys=True), {"where": f"{path.name}:{name}:{dataset}", **network})
    return found


def test_every_configured_bias_free_network_is_homogeneous_about_its_offset():
    """f(o + a (y - o)) - o = a (f(y) - o) for a > 0, exactly (float64), o = the net's offset (0: f(a y) = a f(y))."""
    checked = []
    for network in configured_networks().values():
        with torch.device("meta"):  # the label only: no weights for the 70M-parameter UNet
            labelled = homogeneity_facts(build_model(network))["bias_free"]
        if not labelled:
            continue
        torch.manual_seed(0)
        model = randomise_norms(build_model(network)).double().eval()
        offset = homogeneity_facts(model)["offset"]
        channels, size = getattr(model, "frames", 1), max(32, getattr(model, "size_multiple", 1))
        y = offset + torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        with torch.no_grad():
            reference = model(y) - offset
            for a in (0.05, 0.7, 3.0, 40.0):
                error = (model(offset + a * (y - offset)) - offset - a * reference).norm() / (a * reference).norm()
                assert error < 1e-9, f"{network['where']}: relative error {error:.2e} at a = {a}"
        checked.append(network["where"])
    # the quick, laptop and paper BF-DnCNN, BF-UNet and UDVD entries (UDVD is bias-free by default)
    assert {name.split(":")[1] for name in checked} >= {"bf_dncnn", "bf_unet", "udvd1", "udvd3", "udvd5"}


@pytest.mark.parametrize(
    "model", [DnCNN(depth=6, channels=16), UNet(scales=2, base_channels=8)], ids=["dncnn", "unet"]
)
def test_models_with_biases_are_not_homogeneous(model):
    assert homogeneity_error(randomise_norms(model)) > 1e-3


def test_bias_free_batchnorm_divides_by_std_without_centring():
    norm = BiasFreeBatchNorm2d(3)
    x = 2.0 + 3.0 * torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = norm.train()(x)
    std = x.var(dim=(0, 2, 3)).sqrt().view(1, -1, 1, 1)
    torch.testing.assert_close(out, x / (std + norm.eps))
    assert out.mean() > 0.3  # the mean is kept: no centring
    # The running variance moved towards the batch variance, and eval mode uses it.
    assert torch.all(norm.running_var > 1.0)
    torch.testing.assert_close(norm.eval()(x), x / (norm.running_var.sqrt().view(1, -1, 1, 1) + norm.eps))
    assert not norm.running_var.requires_grad


def test_dncnn_fov_is_its_receptive_field():
    for depth in (3, 7):
        assert measure_fov(DnCNN(depth=depth, channels=8)) == 2 * depth + 1
        assert measure_fov(DnCNN(depth=depth, channels=8, residual=False)) == 2 * depth + 1


def test_dncnn_predicts_the_noise_or_the_image():
    """Residual: ``y - body(y - o)``; ``residual=False``: ``o + body(y - o)``, same weights; only the
    residual form starts near the identity."""
    residual = DnCNN(depth=4, channels=8, offset=1.0).eval()
    image = DnCNN(depth=4, channels=8, offset=1.0, residual=False).eval()
    image.load_state_dict(residual.state_dict())
    y = 1.0 + torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        body = residual.body(y - 1.0)
        torch.testing.assert_close(residual(y), y - body)
        torch.testing.assert_close(image(y), 1.0 + body)
        fresh = DnCNN(depth=4, channels=8, offset=1.0, residual=False).eval()
        assert (residual(y) - y).abs().max() < 0.1 * (fresh(y) - y).abs().max()


def test_unet_fov_grows_with_scales_and_matches_the_reference():
    def fov(scales: int) -> int:
        # one seed per net: a thin random net whose deep path is all dead ReLUs measures the shallow FoV only
        torch.manual_seed(0)
        return measure_fov(UNet(scales=scales, base_channels=8), start_size=64 if scales < 6 else 1024)

    fovs = {scales: fov(scales) for scales in (1, 2, 3, 4, 6)}
    assert fovs[1] < fovs[2] < fovs[3] < fovs[4] < fovs[6]
    # REFERENCE.md section 1: about 52 / 220 / 892 px for 2 / 4 / 6 scales (the seed: 49 / 221 / 893)
    assert 49 <= fovs[2] <= 52
    assert 217 <= fovs[4] <= 221
    assert 885 <= fovs[6] <= 893


def test_build_and_load_trained_roundtrip(tmp_path):
    entry = {"family": "unet", "params": {"scales": 2, "base_channels": 4, "bias_free": True}}
    model = randomise_norms(build_model(entry))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    loaded = load_trained(tmp_path / "model.pt", entry)
    assert not loaded.training
    x = torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    with pytest.raises(ValueError, match="do not fit"):
        load_trained(tmp_path / "model.pt", {"family": "unet", "params": {"scales": 3, "base_channels": 4}})
    with pytest.raises(ValueError, match="not a network"):
        build_model({"family": "wiener", "params": {}})


def test_unet_rejects_sizes_not_divisible_and_inference_pads_them():
    model = randomise_norms(UNet(scales=2, base_channels=4)).eval()
    with pytest.raises(ValueError, match="divisible"):
        model(torch.rand(1, 1, 30, 32))
    image = np.random.default_rng(0).random((37, 45)).astype(np.float32)
    assert denoise_image(model, image).shape == (37, 45)
    video = np.stack([image, image[::-1]])
    out = denoise_stack(model, [video], progress=False)[0]
    assert out.shape == video.shape
    np.testing.assert_allclose(out[0], denoise_image(model, image), rtol=1e-5, atol=1e-6)


def test_tiled_inference_blends_exactly_for_a_pointwise_model():
    model = torch.nn.Conv2d(1, 1, kernel_size=1)
    image = np.random.default_rng(0).random((101, 77)).astype(np.float32)
    whole = denoise_image(model, image)
    np.testing.assert_allclose(denoise_image(model, image, tile=32, overlap=8), whole, rtol=1e-5, atol=1e-6)


def test_tiled_inference_matches_whole_image_inference():
    torch.manual_seed(0)
    # predicting the image: a residual net starts near the identity, whose tiles blend without seams
    model = randomise_norms(UNet(scales=2, base_channels=8)).eval()  # FoV 52 px
    # Sides divisible by 4, so that whole-image and tiled inference see the same borders.
    image = np.random.default_rng(1).random((180, 156)).astype(np.float32)
    whole = denoise_image(model, image)
    tiled = denoise_image(model, image, tile=96, overlap=64)
    seams = denoise_image(model, image, tile=96, overlap=0)
    # Tiles overlapping by more than the FoV blend to the whole-image result up to a small error;
    # without overlap the tile seams show.
    assert np.abs(tiled - whole).mean() / np.abs(whole).mean() < 1e-3
    assert np.abs(tiled - whole).max() < 0.1 * np.abs(seams - whole).max()
    odd = denoise_image(model, image[:171, :149], tile=96, overlap=64)
    assert odd.shape == (171, 149) and np.isfinite(odd).all()
