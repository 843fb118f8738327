"""Training batches: random patches of clean images, dihedral augmentation (optionally a random
rotation and rescaling, the TEM paper's recipe), noise drawn on the fly.

Every sample gets its own noise level from a :class:`NoiseRange` and its own noise realisation,
drawn with :mod:`temdenoise.noise` so that the network sees exactly the test-time convention
(Poisson: counts / (dose x pixel area), an estimate of the normalised intensity; Gaussian:
``x + sigma/255 n``). All randomness comes from the ``numpy.random.Generator`` passed in, which the
training engine owns and checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from scipy.ndimage import map_coordinates

from temdenoise.noise import NoiseCondition, apply_condition


@dataclass(frozen=True)
class NoiseRange:
    """Training noise: ``kind`` ``poisson`` (dose range, e/A^2) or ``gaussian`` (sigma range, 0..255 scale).

    Gaussian sigma is drawn uniformly in ``[low, high]`` (the bias-free paper's recipe). Poisson
    dose is drawn log-uniformly, so that each factor of dose (and PSNR, which is linear in log
    dose) gets the same share of training.
    """

    kind: str
    low: float
    high: float

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "NoiseRange":
        """From a ``train_noise`` config section ``{kind: poisson|gaussian, range: [low, high]}``."""
        try:
            low, high = (float(v) for v in section["range"])
            kind = str(section["kind"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"train_noise must be {{kind: poisson|gaussian, range: [low, high]}}, got {section!r}") from error
        if kind not in ("poisson", "gaussian"):
            raise ValueError(f"train_noise.kind must be 'poisson' or 'gaussian', got {kind!r}")
        if not 0 <= low <= high or (kind == "poisson" and low <= 0):
            raise ValueError(f"train_noise.range must satisfy 0 < low <= high (poisson) or 0 <= low <= high, got {section['range']}")
        return cls(kind, low, high)

    def draw(self, rng: np.random.Generator) -> float:
        """One noise level."""
        if self.kind == "poisson":
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def spread(self, count: int) -> list[float]:
        """Centres of ``count`` equal bins of the range (log bins for Poisson), for validation."""
        centres = (np.arange(count) + 0.5) / count
        if self.kind == "poisson":
            return [float(v) for v in np.exp(np.log(self.low) + centres * np.log(self.high / self.low))]
        return [float(v) for v in self.low + centres * (self.high - self.low)]

    def add(self, image: np.ndarray, level: float, rng: np.random.Generator, pixel_size: float = 1.0) -> np.ndarray:
        """A noisy copy of ``image`` at ``level``; a Gaussian level of 0 returns the clean image."""
        if level <= 0:
            return np.asarray(image, dtype=np.float32).copy()
        return apply_condition(image, NoiseCondition(self.kind, level), rng, pixel_size)


def dihedral(array: np.ndarray, index: int) -> np.ndarray:
    """The ``index``-th (0..7) of the 8 symmetries of the square, on the last two axes."""
    if not 0 <= index < 8:
        raise ValueError(f"dihedral index must be in 0..7, got {index}")
    rotated = np.rot90(array, k=index % 4, axes=(-2, -1))
    return rotated[..., ::-1] if index >= 4 else rotated


def warped_patch(
    image: np.ndarray, patch_size: int, angle_deg: float, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """A ``patch_size`` square of ``image`` rotated by ``angle_deg`` and magnified by ``scale``
    (< 1 shrinks: each patch pixel covers ``1 / scale`` image pixels), at a random position.

    Bilinear interpolation; the centre is drawn so that the rotated footprint lies inside the image
    when it fits (else the image is mirrored at its border).
    """
    theta = np.deg2rad(angle_deg)
    cos, sin = np.cos(theta), np.sin(theta)
    half = (patch_size - 1) / 2
    reach = half / scale * (abs(cos) + abs(sin))
    centre = [rng.uniform(reach, side - 1 - reach) if side - 1 > 2 * reach else (side - 1) / 2 for side in image.shape]
    offsets = np.mgrid[0:patch_size, 0:patch_size].reshape(2, -1) - half
    coords = np.array([[cos, -sin], [sin, cos]]) @ offsets / scale + np.array(centre)[:, None]
    return map_coordinates(image, coords, order=1, mode="mirror").reshape(patch_size, patch_size).astype(np.float32)


class PatchSampler:
    """A ``BatchSampler`` for supervised training: ``sampler(rng) -> (noisy, clean)``, each ``(B, 1, P, P)``.

    Patches are cut at random positions of randomly chosen clean images (each image needs sides
    >= ``patch_size``), transformed by a random dihedral symmetry if ``augment``, and corrupted at
    a level drawn per patch. ``pixel_sizes`` (A, one per image, Poisson only) default to 1.

    ``rotation_deg`` and ``rescale`` add the TEM paper's augmentation (Mohan et al. 2022: rotation
    uniform in +-45 deg, rescale uniform in 0.75-0.82; :func:`warped_patch`). A rescaled patch has
    pixels ``1 / scale`` times larger, so its Poisson noise is drawn at that pixel size: the dose
    per A^2 stays the drawn one.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        noise: NoiseRange,
        patch_size: int,
        batch_size: int,
        pixel_sizes: Sequence[float] | None = None,
        augment: bool = True,
        rotation_deg: float = 0.0,
        rescale: Sequence[float] = (),
    ) -> None:
        self.images = [np.asarray(image, dtype=np.float32) for image in images]
        if not self.images:
            raise ValueError("no training images")
        small = [i for i, image in enumerate(self.images) if min(image.shape[-2:]) < patch_size]
        if small:
            raise ValueError(f"training images {small[:5]} are smaller than the patch size {patch_size}")
        self.pixel_sizes = [1.0] * len(self.images) if pixel_sizes is None else [float(p) for p in pixel_sizes]
        if len(self.pixel_sizes) != len(self.images):
            raise ValueError(f"{len(self.pixel_sizes)} pixel sizes for {len(self.images)} images")
        self.noise = noise
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.augment = augment
        if rescale and not (len(rescale) == 2 and 0 < rescale[0] <= rescale[1]):
            raise ValueError(f"rescale must be [low, high] with 0 < low <= high, got {list(rescale)}")
        self.rotation_deg = float(rotation_deg)
        self.rescale = tuple(float(v) for v in rescale)

    def patch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One (noisy, clean) pair of ``(P, P)`` patches."""
        index = int(rng.integers(len(self.images)))
        image = self.images[index]
        if image.ndim == 3:  # a video: one random frame
            image = image[int(rng.integers(image.shape[0]))]
        scale = 1.0
        if self.rotation_deg or self.rescale:
            scale = float(rng.uniform(*self.rescale)) if self.rescale else 1.0
            angle = float(rng.uniform(-self.rotation_deg, self.rotation_deg))
            clean = warped_patch(image, self.patch_size, angle, scale, rng)
        else:
            top = int(rng.integers(image.shape[0] - self.patch_size + 1))
            left = int(rng.integers(image.shape[1] - self.patch_size + 1))
            clean = image[top : top + self.patch_size, left : left + self.patch_size]
        if self.augment:
            clean = dihedral(clean, int(rng.integers(8)))
        clean = np.ascontiguousarray(clean)
        noisy = self.noise.add(clean, self.noise.draw(rng), rng, self.pixel_sizes[index] / scale)
        return noisy, clean

    def __call__(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.patch(rng) for _ in range(self.batch_size)]
        noisy = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
        clean = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None]
        return noisy, clean
