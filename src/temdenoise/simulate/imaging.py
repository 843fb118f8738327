"""Plane-wave HRTEM imaging of a specimen with abTEM 1.0.

One multislice run gives the exit wave; every defocus of a series is then one cheap CTF
application on that same exit wave. Thermal vibration damps the contrast either as a
Debye-Waller-smeared potential (each slice's projected potential convolved with the Gaussian
density of the atoms' displacement: one multislice) or as abTEM's frozen phonons (the intensity
averaged over displaced configurations: one multislice each); the finite source size damps it
through the CTF's spatial-coherence envelope (``angular_spread``, quasi-coherent approximation);
the focal spread is an incoherent sum of intensities over defocus (:func:`detector_image`). The
intensity is Fourier-interpolated to the detector pixel size, blurred by the Gaussian image spread
and detector MTF (their variances add), flipped to image convention (row 0 at the top, the support
at the bottom) and cropped around the particle. A normalised plane wave makes the vacuum
intensity 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import abtem
import numpy as np
from scipy import ndimage

from temdenoise.simulate.structures import Specimen

CONTRAST_CLASSES = ("black", "intermediate", "white")


def configure_abtem() -> None:
    """CPU with numpy FFTs: no FFTW planning cost, results independent of the FFT planner."""
    abtem.config.set({"device": "cpu", "fft": "numpy"})


@dataclass(frozen=True)
class Microscope:
    """Imaging conditions (lengths in A, angles in mrad, energy in eV)."""

    energy: float = 300e3
    potential_sampling: float = 0.05
    slice_thickness: float = 2.0
    pixel_size: float = 0.25
    Cs: float = -1.3e5
    focal_spread: float = 40.0
    semiangle_cutoff: float = 30.0
    angular_spread: float = 0.0     # std of the illumination angles (mrad): spatial-coherence envelope
    rms_displacement: float = 0.0   # thermal rms displacement of every atom along each axis (A)
    frozen_phonons: int = 0         # configurations averaged; 0 = a Debye-Waller-smeared potential
    mtf_sigma: float = 0.0          # Gaussian detector blur, in detector pixels
    image_spread: float = 0.0       # Gaussian image spread at the specimen (A): vibration, drift, MTF together

    def __post_init__(self) -> None:
        if not 0 < self.potential_sampling <= 0.06:
            raise ValueError(f"potential_sampling must be in (0, 0.06] A, got {self.potential_sampling}")
        if self.pixel_size < self.potential_sampling:
            raise ValueError(f"pixel_size ({self.pixel_size} A) finer than potential_sampling ({self.potential_sampling} A)")


def fft_friendly_size(n: int) -> int:
    """The smallest 5-smooth integer (2^a 3^b 5^c) >= ``n``.

    FFT time grows with the largest prime factor of the length: a 44-A cell at 0.06 A needs 734 =
    2 x 367 points, whose FFTs cost about twice those of 750 = 2 x 3 x 5^3 (benchmarks/bench_simulate.py).
    """
    size = max(1, int(n))
    while True:
        rest = size
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return size
        size += 1


def potential_gpts(extent: tuple[float, float], sampling: float) -> tuple[int, int]:
    """Grid points of the potential of a cell of lateral ``extent`` (A): sampling at most
    ``sampling``, rounded up to FFT-friendly sizes (:func:`fft_friendly_size`)."""
    return tuple(fft_friendly_size(int(np.ceil(length / sampling))) for length in extent)


def debye_waller_smeared(potential: abtem.Potential, rms_displacement: float) -> abtem.PotentialArray:
    """``potential`` with every slice convolved with an isotropic Gaussian of standard deviation
    ``rms_displacement`` (A) per axis: the thermal average of the potential of atoms vibrating
    independently, i.e. each atom's scattering factor times its Debye-Waller factor
    ``exp(-B s^2)``, ``B = 8 pi^2 u^2``, ``s = k / 2`` (Kirkland, *Advanced Computing in Electron
    Microscopy*, 2nd ed., section 7.4), for one ``u`` shared by all elements."""
    built = potential.build().compute(progress_bar=False)
    array = np.asarray(built.array)
    kx, ky = (np.fft.fftfreq(n, d=d) for n, d in zip(array.shape[-2:], built.sampling))
    envelope = np.exp(-2 * np.pi**2 * rms_displacement**2 * (kx[:, None] ** 2 + ky[None, :] ** 2))
    smeared = np.fft.ifft2(np.fft.fft2(array) * envelope).real.astype(array.dtype)
    return abtem.PotentialArray(smeared, slice_thickness=built.slice_thickness, extent=built.extent)


def exit_wave(specimen: Specimen, microscope: Microscope) -> abtem.Waves:
    """Exit wave of a 300 kV (or ``microscope.energy``) plane wave through ``specimen`` (computed):
    at the cell's exit plane, which is the specimen's exit surface (the cell holds no vacuum slices
    along the beam, :func:`~temdenoise.simulate.structures.assemble_specimen`), so the defocus of
    :func:`detector_image` is measured from that surface. With ``microscope.frozen_phonons`` the
    waves of that many displaced configurations (seeded by ``specimen.phonon_seed``) are stacked on
    a leading ensemble axis; with only ``rms_displacement`` the potential is
    :func:`debye_waller_smeared`."""
    atoms = specimen.atoms
    gpts = potential_gpts(tuple(np.diag(atoms.cell.array)[:2]), microscope.potential_sampling)
    if microscope.frozen_phonons:
        atoms = abtem.FrozenPhonons(atoms, num_configs=microscope.frozen_phonons,
                                    sigmas=microscope.rms_displacement, seed=specimen.phonon_seed)
    potential = abtem.Potential(atoms, gpts=gpts, slice_thickness=microscope.slice_thickness,
                                projection="infinite", parametrization="lobato")
    if microscope.rms_displacement and not microscope.frozen_phonons:
        potential = debye_waller_smeared(potential, microscope.rms_displacement)
    wave = abtem.PlaneWave(energy=microscope.energy, normalize=False)
    return wave.multislice(potential).compute(progress_bar=False)


# Largest step (A) between the defocus samples of the focal-spread quadrature. The CTF phase of
# a 300 kV wave at the 30-mrad aperture edge (1.5 1/A) turns by 0.14 rad per A of defocus; at a 40-A
# focal spread 9 samples 21 A apart differ from 31 samples by 5e-4 rms of the vacuum intensity
# (tests/test_simulate.py::test_focal_spread_quadrature_converges).
FOCAL_SPREAD_STEP = 20.0
# The quadrature spans +-3 standard deviations of the defocus distribution.
FOCAL_SPREAD_LIMIT = 3.0


def defocus_distribution(defocus: float, focal_spread: float) -> float | abtem.distributions.BaseDistribution:
    """``defocus`` (A) as abTEM's Gaussian distribution of partial temporal coherence: 1/e half-width
    ``focal_spread`` (abTEM's convention, standard deviation ``focal_spread / sqrt(2)``), sampled at
    most :data:`FOCAL_SPREAD_STEP` apart over +-:data:`FOCAL_SPREAD_LIMIT` standard deviations;
    ``defocus`` itself when ``focal_spread`` is 0."""
    if focal_spread <= 0:
        return defocus
    sigma = focal_spread / np.sqrt(2)
    samples = int(np.ceil(2 * FOCAL_SPREAD_LIMIT * sigma / FOCAL_SPREAD_STEP)) + 1
    samples += 1 - samples % 2   # odd: the nominal defocus is a sample
    return abtem.distributions.gaussian(standard_deviation=sigma, num_samples=samples, center=float(defocus),
                                        sampling_limit=FOCAL_SPREAD_LIMIT)


def detector_image(wave: abtem.Waves, defocus: float, microscope: Microscope) -> np.ndarray:
    """Intensity after the CTF at ``defocus`` (A, positive = underfocus), at the detector pixel
    size, as a float64 (H, W) array with row 0 at the top (largest y).

    Partial temporal coherence is the incoherent, probability-weighted sum of the *intensities* at
    the defoci of the focal-spread distribution (:func:`defocus_distribution`; the exit wave is
    reused), not abTEM's envelope on the wave, which would also remove the intensity scattered
    outside the envelope (11% of it on a 30-60 A CeO2 support, docs/SIMULATION.md). The intensities
    of a frozen-phonon ensemble are averaged the same way (abTEM's ``reduce_ensemble``)."""
    ctf = abtem.CTF(semiangle_cutoff=microscope.semiangle_cutoff, angular_spread=microscope.angular_spread,
                    energy=microscope.energy, defocus=defocus_distribution(defocus, microscope.focal_spread),
                    Cs=microscope.Cs)
    extent = np.asarray(wave.extent)
    pixels = tuple(int(round(e / microscope.pixel_size)) for e in extent)
    intensity = wave.apply_ctf(ctf).intensity()
    if len(intensity.ensemble_shape):
        intensity = intensity.reduce_ensemble(axis=tuple(range(len(intensity.ensemble_shape))))
    images = intensity.interpolate(gpts=pixels).compute(progress_bar=False)
    image = np.flipud(np.asarray(images.array, dtype=np.float64).T)
    blur_px = np.hypot(microscope.mtf_sigma, microscope.image_spread / microscope.pixel_size)
    if blur_px > 0:
        image = ndimage.gaussian_filter(image, blur_px, mode="wrap")
    return image


def defocus_series(wave: abtem.Waves, defoci: list[float], microscope: Microscope) -> list[np.ndarray]:
    """Images of one exit wave at each of ``defoci`` (the multislice is not repeated)."""
    return [detector_image(wave, float(defocus), microscope) for defocus in defoci]


def to_pixels(xy: np.ndarray, image_height: int, pixel_size: float) -> np.ndarray:
    """(x, y) positions in A -> (row, column) of an image made by :func:`detector_image`.

    Pixel ``i`` of the interpolated grid samples position ``i * pixel_size``; rows are flipped.
    """
    xy = np.atleast_2d(xy)
    return np.stack([image_height - 1 - xy[:, 1] / pixel_size, xy[:, 0] / pixel_size], axis=1)


def crop_window(centre_rc: np.ndarray, shape: tuple[int, int], size: tuple[int, int]) -> tuple[slice, slice]:
    """Slices of a ``size`` window whose centre is closest to ``centre_rc`` and inside ``shape``."""
    slices = []
    for c, total, n in zip(centre_rc, shape, size):
        start = int(np.clip(int(round(c)) - n // 2, 0, total - n))
        slices.append(slice(start, start + n))
    return slices[0], slices[1]


def contrast_score(image: np.ndarray, columns_rc: np.ndarray) -> float:
    """How atom columns stand out: (mean intensity at the columns - mean of the particle region) /
    std of the region; the region is the columns' pixels dilated by 3 px. Negative = dark atoms."""
    inside = (columns_rc[:, 0] >= 0) & (columns_rc[:, 0] <= image.shape[0] - 1) & \
             (columns_rc[:, 1] >= 0) & (columns_rc[:, 1] <= image.shape[1] - 1)
    columns_rc = columns_rc[inside]
    if len(columns_rc) == 0:
        return 0.0
    at_columns = ndimage.map_coordinates(image, columns_rc.T, order=1)
    mask = np.zeros(image.shape, dtype=bool)
    rc = np.round(columns_rc).astype(int)
    mask[rc[:, 0], rc[:, 1]] = True
    region = image[ndimage.binary_dilation(mask, iterations=3)]
    return float((at_columns.mean() - region.mean()) / max(region.std(), 1e-12))


def contrast_class(score: float, threshold: float) -> str:
    """``black`` (dark columns), ``white`` (bright columns) or ``intermediate``."""
    if score < -threshold:
        return "black"
    if score > threshold:
        return "white"
    return "intermediate"
