"""Noise models: Poisson (electron dose) and additive Gaussian, with named conditions.

A Poisson condition at dose ``D`` electrons per square angstrom on a detector of pixel size ``p``
angstrom draws counts ``~ Poisson(I * D * p**2)`` for the normalised clean intensity ``I``
(vacuum = 1) and returns ``counts / (D * p**2)``, an unbiased estimate of ``I`` on the clean scale.
Gaussian noise levels ``sigma`` are on the 0..255 scale of the natural-image anchors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np

# Condition names are light (the workflow lists them while parsing, before numpy is needed).
from temdenoise.conditions import NoiseCondition, condition_name, parse_condition

if TYPE_CHECKING:
    import pandas as pd

def expected_counts(intensity: np.ndarray, dose: float, pixel_size: float) -> np.ndarray:
    """Expected electron counts per pixel: intensity x dose (e/A^2) x pixel area (A^2)."""
    return np.asarray(intensity, dtype=np.float64) * dose * pixel_size**2


def poisson_noise(
    intensity: np.ndarray, dose: float, pixel_size: float, rng: np.random.Generator
) -> np.ndarray:
    """Shot-noise image on the clean scale: ``Poisson(I * D * p^2) / (D * p^2)``."""
    scale = dose * pixel_size**2
    counts = rng.poisson(np.clip(expected_counts(intensity, dose, pixel_size), 0, None))
    return (counts / scale).astype(np.float32)


def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise with standard deviation ``sigma / 255``."""
    return (image + rng.normal(0.0, sigma / 255.0, size=np.shape(image))).astype(np.float32)


def apply_condition(
    image: np.ndarray, condition: NoiseCondition, rng: np.random.Generator, pixel_size: float = 1.0
) -> np.ndarray:
    """Noisy copy of ``image`` under ``condition`` (``pixel_size`` in A, used by Poisson only)."""
    if condition.kind == "poisson":
        return poisson_noise(image, condition.level, pixel_size, rng)
    return gaussian_noise(image, condition.level, rng)


def noise_std(image: np.ndarray, condition: NoiseCondition, pixel_size: float = 1.0) -> np.ndarray:
    """Per-pixel standard deviation of the noise of ``condition`` on the clean scale."""
    if condition.kind == "poisson":
        scale = condition.level * pixel_size**2
        return np.sqrt(np.clip(image, 0, None) / scale)
    return np.full(np.shape(image), condition.level / 255.0)


def anscombe(y: np.ndarray, gain: float = 1.0, sigma: float = 0.0, mu: float = 0.0) -> np.ndarray:
    """Generalised Anscombe transform of Poisson-Gaussian data ``y = gain * Poisson + N(mu, sigma^2)``.

    Maps the data to approximately unit-variance Gaussian noise (Starck, Murtagh & Bijaoui 1998).
    """
    arg = gain * y + 3.0 / 8.0 * gain**2 + sigma**2 - gain * mu
    return 2.0 / gain * np.sqrt(np.clip(arg, 0, None))


def inverse_anscombe(z: np.ndarray, gain: float = 1.0, sigma: float = 0.0, mu: float = 0.0) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse (Makitalo & Foi 2011, 2013)."""
    z = np.maximum(np.asarray(z, dtype=np.float64), 1e-6)
    exact = (
        0.25 * z**2
        + 0.25 * np.sqrt(1.5) / z
        - 11.0 / 8.0 / z**2
        + 5.0 / 8.0 * np.sqrt(1.5) / z**3
        - 1.0 / 8.0
        - sigma**2 / gain**2
    )
    return np.maximum(exact, 0.0) * gain + mu


def item_pixel_sizes(metadata: "pd.DataFrame", n_items: int) -> np.ndarray:
    """Pixel size (A) of each item of a stack from its metadata table.

    Tables with an ``item`` column may have one row per frame; otherwise one row per item.
    """
    if "pixel_size" not in metadata:
        raise KeyError("metadata has no 'pixel_size' column")
    if "item" in metadata:
        sizes = metadata.groupby("item", sort=True)["pixel_size"].first().to_numpy()
    else:
        sizes = metadata["pixel_size"].to_numpy()
    if len(sizes) != n_items:
        raise ValueError(f"metadata describes {len(sizes)} items, the stack has {n_items}")
    return sizes.astype(np.float64)


def noisy_items(
    clean: Iterable[np.ndarray], pixel_sizes: Sequence[float], condition: NoiseCondition, seed: int
) -> Iterator[np.ndarray]:
    """Noisy copies of the items of a stack under ``condition``, reproducible from ``seed``; each
    drawn when asked for (one generator in item order: the same draws as all at once)."""
    rng = np.random.default_rng(seed)
    return (apply_condition(item, condition, rng, size) for item, size in zip(clean, pixel_sizes))
