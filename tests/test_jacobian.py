"""Jacobian analysis: exact on linear maps, batched == looped, net bias zero iff bias-free."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from temdenoise.analysis import jacobian as jac_mod


def small_cnn(bias: bool, channels: int = 8, depth: int = 3, seed: int = 0) -> nn.Module:
    """A little ReLU CNN, with or without additive constants, in eval mode."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(1, channels, 3, padding=1, bias=bias), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=bias), nn.ReLU()]
    layers.append(nn.Conv2d(channels, 1, 3, padding=1, bias=bias))
    model = nn.Sequential(*layers).eval()
    if bias:
        with torch.no_grad():
            for module in model:
                if isinstance(module, nn.Conv2d):
                    module.bias.uniform_(-0.5, 0.5)
    return model


def test_jacobian_of_conv_layer_is_its_matrix() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(1, 1, 5, padding=2, bias=False).eval()
    kernel = conv.weight.detach()[0, 0].numpy().astype(np.float64)
    shape = (9, 7)
    size = shape[0] * shape[1]
    # Column j of the matrix: the conv (a cross-correlation with zero padding) applied to basis image j.
    matrix = np.empty((size, size))
    for j in range(size):
        basis = np.zeros(size)
        basis[j] = 1.0
        matrix[:, j] = ndimage.correlate(basis.reshape(shape), kernel, mode="constant").ravel()
    image = torch.rand(shape)
    computed = {
        "vjp": jac_mod.jacobian_vjp(conv, image, chunk_size=10),
        "cone": jac_mod.jacobian_cone(nn.Sequential(conv).eval(), image, chunk_size=10),
        "looped": jac_mod.jacobian_looped(conv, image),
    }
    for method, jac in computed.items():
        np.testing.assert_allclose(jac.numpy(), matrix, atol=1e-6, err_msg=method)


@pytest.mark.parametrize("bias", [False, True])
def test_batched_equals_looped(bias: bool) -> None:
    model = small_cnn(bias)
    image = torch.rand(12, 10)
    looped = jac_mod.jacobian_looped(model, image)
    assert torch.count_nonzero(looped) > 0
    for batched in (jac_mod.jacobian_vjp(model, image, chunk_size=17), jac_mod.jacobian_cone(model, image, chunk_size=17)):
        assert batched.shape == (120, 120)
        torch.testing.assert_close(batched, looped, atol=1e-6, rtol=1e-5)


def test_bias_free_net_is_locally_linear_biased_is_not() -> None:
    image = torch.rand(12, 12)
    free = small_cnn(bias=False)
    biased = small_cnn(bias=True)
    out_free = free(image[None, None]).detach()
    bias_free_residual = jac_mod.net_bias(free, image)
    assert bias_free_residual.abs().max() <= 1e-5 * out_free.abs().max()
    assert out_free.abs().max() > 0
    biased_residual = jac_mod.net_bias(biased, image)
    assert biased_residual.norm() > 1e-2 * biased(image[None, None]).detach().norm()


def test_equivalent_filters_and_subspace() -> None:
    model = small_cnn(bias=False)
    image = torch.rand(8, 8)
    jac = jac_mod.jacobian(model, image)
    filters = jac_mod.equivalent_filters(jac, (8, 8), [(0, 0), (4, 5)])
    assert filters.shape == (2, 8, 8)
    np.testing.assert_array_equal(filters[1].ravel(), jac[4 * 8 + 5].numpy())
    # A 3-layer 3x3 net sees a 7x7 window: the filter of (4, 5) vanishes outside it.
    assert np.all(filters[1][:, :2] == 0)
    values = jac_mod.singular_values(jac)
    assert np.all(np.diff(values) <= 1e-12)
    np.testing.assert_allclose(jac_mod.effective_dimensionality(values), float(jac.double().norm() ** 2), rtol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        jac_mod.equivalent_filters(jac, (8, 8), [(8, 0)])


def test_effective_dimensionality_of_projection_is_its_rank() -> None:
    basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(20, 5)))
    projection = torch.from_numpy(basis @ basis.T)
    assert jac_mod.effective_dimensionality(jac_mod.singular_values(projection)) == pytest.approx(5.0)


def test_training_mode_is_refused() -> None:
    model = small_cnn(bias=False).train()
    with pytest.raises(ValueError, match="eval"):
        jac_mod.jacobian(model, torch.rand(4, 4))


@pytest.mark.parametrize("family_params", [{"family": "dncnn", "params": {"depth": 4, "channels": 8}},
                                           {"family": "unet", "params": {"scales": 1, "base_channels": 4}}])
def test_registered_networks_net_bias(family_params: dict) -> None:
    """The registered families: bias-free versions are exactly locally linear, the others are not."""
    from temdenoise.models import build_model

    image = torch.rand(8, 8)
    norms = {}
    for bias_free in (False, True):
        torch.manual_seed(0)
        entry = {"family": family_params["family"], "params": {**family_params["params"], "bias_free": bias_free}}
        model = build_model(entry)
        model(torch.rand(4, 1, 8, 8))  # one training-mode pass sets non-trivial running statistics
        model.eval()
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.Conv2d) and module.bias is not None:
                    module.bias.uniform_(-0.3, 0.3)
        scale = model(image[None, None]).detach().norm()
        norms[bias_free] = float(jac_mod.net_bias(model, image).norm() / scale)
        torch.testing.assert_close(jac_mod.jacobian(model, image, chunk_size=20), jac_mod.jacobian_looped(model, image))
    assert norms[True] < 1e-5
    assert norms[False] > 1e-2


def test_selected_rows_match_full_jacobian() -> None:
    model = small_cnn(bias=True)
    image = torch.rand(10, 9)
    full = jac_mod.jacobian(model, image)
    pixels = [(0, 0), (5, 4), (9, 8)]
    np.testing.assert_allclose(
        jac_mod.filters_at(model, image, pixels), jac_mod.equivalent_filters(full, (10, 9), pixels), atol=1e-6
    )
    with pytest.raises(ValueError, match="outside"):
        jac_mod.filters_at(model, image, [(10, 0)])


@pytest.mark.parametrize("bias", [False, True])
def test_coloured_jacobian_equals_looped_with_the_measured_fov(bias: bool) -> None:
    """Rows a field of view apart share one product; the result is still the exact Jacobian."""
    from temdenoise.models.fov import measure_fov

    model = small_cnn(bias, depth=3)  # three 3x3 layers: a 7 px field of view on a 24 x 20 patch
    field_of_view = measure_fov(model)
    assert field_of_view == 7
    image = torch.rand(24, 20)
    looped = jac_mod.jacobian_looped(model, image)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a correct field of view must not fall back
        coloured = jac_mod.jacobian_vjp(model, image, chunk_size=9, field_of_view=field_of_view)
        torch.testing.assert_close(coloured, looped, atol=1e-6, rtol=1e-5)
        pixels = [0, 7 * 20 + 7, 7 * 20 + 14, 24 * 20 - 1]  # two of them share a colour
        torch.testing.assert_close(jac_mod.jacobian_vjp(model, image, pixels=pixels, field_of_view=7), looped[pixels])


def test_coloured_jacobian_with_too_small_fov_falls_back_to_exact() -> None:
    model = small_cnn(bias=True, depth=4)  # 9 px field of view
    image = torch.rand(20, 20)
    with pytest.warns(UserWarning, match="beyond the given field of view of 5 px"):
        jac = jac_mod.jacobian_vjp(model, image, field_of_view=5)
    torch.testing.assert_close(jac, jac_mod.jacobian_looped(model, image), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="field_of_view"):
        jac_mod.jacobian_vjp(model, image, field_of_view=0)


def trained_looking_dncnn(bias_free: bool, offset: float, residual: bool = True) -> nn.Module:
    """A small DnCNN with non-trivial running statistics, biases and output scale, in eval mode."""
    from temdenoise.models import build_model

    torch.manual_seed(0)
    params = {"depth": 5, "channels": 8, "bias_free": bias_free, "offset": offset, "residual": residual}
    model = build_model({"family": "dncnn", "params": params})
    model(torch.rand(4, 1, 16, 16) + offset)  # a training-mode pass sets the running statistics
    model.eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.bias is not None:
                module.bias.uniform_(-0.3, 0.3)
        # well beyond the near-identity start (residual: the last layer starts scaled by 0.01)
        model.body[-1].weight.mul_(2000.0 if residual else 20.0)
    return model


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("bias_free", [False, True])
@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_cone_jacobian_of_dncnn_equals_looped(bias_free: bool, offset: float, residual: bool) -> None:
    """The light-cone route (residual or not, offset, normalisations, image borders) is exact."""
    model = trained_looking_dncnn(bias_free, offset, residual)
    assert jac_mod._conv_stack(model) is not None
    image = torch.rand(14, 11) + offset
    looped = jac_mod.jacobian_looped(model, image)
    identity = torch.eye(looped.shape[0])
    assert (looped - identity).abs().max() > 0.05  # the body contributes
    torch.testing.assert_close(jac_mod.jacobian(model, image, chunk_size=13), looped, atol=1e-6, rtol=1e-5)
    pixels = [0, 30, 14 * 11 - 1]
    torch.testing.assert_close(jac_mod.jacobian_cone(model, image, pixels=pixels), looped[pixels], atol=1e-6, rtol=1e-5)


def test_hooked_or_pooling_networks_take_the_vjp_route() -> None:
    """Gains hooked onto a DnCNN change what its layers compute: the cone route must not be taken,
    and the Jacobian of the adapted network is still exact."""
    from temdenoise.adapt.gaintuning import GainTuning
    from temdenoise.models import build_model

    model = trained_looking_dncnn(bias_free=False, offset=0.0)
    adapted = GainTuning(model)
    with torch.no_grad():
        for gain in adapted.gains.values():
            gain.uniform_(0.5, 1.5)
    assert jac_mod._conv_stack(model) is None
    image = torch.rand(10, 9)
    torch.testing.assert_close(jac_mod.jacobian(model, image), jac_mod.jacobian_looped(model, image), atol=1e-6, rtol=1e-5)
    unet = build_model({"family": "unet", "params": {"scales": 1, "base_channels": 4}}).eval()
    assert jac_mod._conv_stack(unet) is None
    with pytest.raises(ValueError, match="not a plain stack"):
        jac_mod.jacobian_cone(unet, torch.rand(8, 8))
