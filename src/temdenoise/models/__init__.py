"""Learned denoisers (``kind = "network"`` families of :mod:`temdenoise.registry`).

* :mod:`~temdenoise.models.dncnn`: DnCNN / BF-DnCNN (family ``dncnn``);
* :mod:`~temdenoise.models.unet`: UNet / BF-UNet (family ``unet``);
* :mod:`~temdenoise.models.layers`: bias-free batch normalisation and shared blocks;
* :mod:`~temdenoise.models.fov`: measured field of view;
* :mod:`~temdenoise.models.inference`: whole-image or tiled inference on any image size.

A ``methods:`` entry ``{family: unet, params: {scales: 2, base_channels: 16, bias_free: true}}``
becomes a module with :func:`build_model`; trained weights are read back with :func:`load_trained`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from temdenoise import registry
from temdenoise.models.layers import count_parameters


def build_model(entry: dict[str, Any]) -> nn.Module:
    """The untrained network of a ``methods:`` entry (``family`` + ``params``)."""
    if registry.method_kind(entry) != "network":
        raise ValueError(f"method family {entry['family']!r} is not a network")
    return registry.build(entry)


def homogeneity_facts(model: nn.Module) -> dict[str, Any]:
    """``bias_free`` and the ``offset`` of ``model``: a bias-free net satisfies
    ``f(o + a (y - o)) = o + a (f(y) - o)`` for ``a > 0`` about its offset ``o`` (tests/test_models.py)."""
    return {"bias_free": bool(getattr(model, "bias_free", False)), "offset": float(getattr(model, "offset", 0.0))}


def load_trained(path: str | os.PathLike, entry: dict[str, Any], device: str = "cpu") -> nn.Module:
    """The network of ``entry`` with the weights saved at ``path`` (a state dict), in eval mode."""
    model = build_model(entry)
    state = torch.load(path, map_location=device, weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"weights {path} do not fit the method entry {entry}: {error}") from error
    return model.to(device).eval()


__all__ = ["build_model", "count_parameters", "homogeneity_facts", "load_trained"]
