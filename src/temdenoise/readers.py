"""Read a user's micrograph, stack or movie and its calibration from a microscope file.

One function, :func:`read_recording`, for every format the field uses, through the field's
libraries (nothing is hand-parsed):

* DM3/DM4 (Gatan), EMD (Velox and NCEM), SER/EMI (FEI TIA): `rosettasciio`;
* MRC/MRCS: `mrcfile` (the CCP-EM reference reader; pixel size in angstroms as stored);
* TIFF: `tifffile` (ImageJ calibration: resolution + ``unit``; OME-TIFF: ``PhysicalSizeX``).

It returns float32 ``(H, W)`` or ``(T, H, W)`` data, the pixel size in angstroms (None when the
file does not say), the unit the file used, whether the values are integer counts, and the
dose / exposure information the file's metadata holds. A file that cannot be read raises
:class:`RecordingError` with one line naming the file and the reason.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

# Length units -> angstroms (the spellings found in DM, EMD, TIA, ImageJ and OME metadata).
ANGSTROMS_PER_UNIT = {
    "a": 1.0, "å": 1.0, "\u212b": 1.0, "angstrom": 1.0, "angstroms": 1.0,
    "nm": 10.0, "nanometer": 10.0, "nanometre": 10.0,
    "pm": 0.01, "um": 1e4, "µm": 1e4, "\u03bcm": 1e4, "micron": 1e4, "micrometer": 1e4, "m": 1e10,
}
RSCIIO_READERS = {".dm3": "digitalmicrograph", ".dm4": "digitalmicrograph", ".emd": "emd", ".ser": "tia",
                  ".emi": "tia"}
MRC_SUFFIXES = (".mrc", ".mrcs", ".st")
TIFF_SUFFIXES = (".tif", ".tiff")
SUFFIXES = (*RSCIIO_READERS, *MRC_SUFFIXES, *TIFF_SUFFIXES)
# Metadata keys whose values describe the dose or exposure (searched case-insensitively, any depth).
DOSE_KEYS = ("dose", "dose_rate", "exposure", "exposure_time", "integration_time", "beam_current")


class RecordingError(ValueError):
    """A file that cannot be read as a recording; ``str()`` is one line naming the file and why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason.splitlines()[0] if reason else "unknown error"
        super().__init__(f"{self.path}: {self.reason}")


@dataclass
class Recording:
    """A micrograph ``(H, W)`` or a stack / movie ``(T, H, W)`` with what its file says about it."""

    path: Path
    data: np.ndarray
    pixel_size: float | None  # angstroms; None when the file has no length calibration
    unit: str | None  # the length unit as the file wrote it
    integer: bool  # the stored values are integers (taken as counts)
    exposure: dict[str, Any] = field(default_factory=dict)  # dose / exposure entries found in metadata
    reader: str = ""

    @property
    def is_movie(self) -> bool:
        return self.data.ndim == 3


def to_angstroms(scale: float, unit: str | None) -> float | None:
    """A length ``scale`` in ``unit`` converted to angstroms; None for an unknown or missing unit."""
    if unit is None or not np.isfinite(scale) or scale <= 0:
        return None
    factor = ANGSTROMS_PER_UNIT.get(str(unit).strip().lower())
    return None if factor is None else float(scale) * factor


def find_exposure(metadata: Any, prefix: str = "") -> dict[str, Any]:
    """Every numeric entry of a nested metadata mapping whose key names a dose or an exposure."""
    found: dict[str, Any] = {}
    if isinstance(metadata, Mapping):
        for key, value in metadata.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                found.update(find_exposure(value, name))
            elif str(key).lower() in DOSE_KEYS and isinstance(value, (int, float, np.number)):
                found[name] = float(value)
    return found


def _image_data(data: np.ndarray, path: Path) -> np.ndarray:
    """Squeezed ``(H, W)`` or ``(T, H, W)`` data; other shapes, empty or non-finite data are errors."""
    data = np.squeeze(np.asarray(data))
    if data.size == 0:
        raise RecordingError(path, "the file holds no data")
    if data.dtype.kind not in "uif":
        raise RecordingError(path, f"unsupported data type {data.dtype} (expected real numbers)")
    if data.ndim not in (2, 3) or min(data.shape[-2:]) < 2:
        raise RecordingError(path, f"expected an image (H, W) or a stack (T, H, W), got shape {data.shape}")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise RecordingError(path, "the data hold NaN or infinite values")
    return data


def _read_rsciio(path: Path) -> Recording:
    import importlib

    reader = importlib.import_module(f"rsciio.{RSCIIO_READERS[path.suffix.lower()]}").file_reader
    signals = [s for s in reader(str(path), lazy=False) if np.asarray(s["data"]).ndim >= 2]
    if not signals:
        raise RecordingError(path, "no image signal in the file")
    # Velox EMD files may hold several signals (e.g. HAADF and spectra): the first 2-D one is the image.
    signal = signals[0]
    raw = np.asarray(signal["data"])
    signal_axes = [axis for axis in signal["axes"] if axis.get("size", 0) > 1][-2:]
    scale, unit = (signal_axes[-1].get("scale", 1.0), signal_axes[-1].get("units")) if signal_axes else (1.0, None)
    exposure = {**find_exposure(signal.get("metadata", {})), **find_exposure(signal.get("original_metadata", {}))}
    return Recording(path, _image_data(raw, path), to_angstroms(scale, unit), unit, raw.dtype.kind in "ui",
                     exposure, f"rosettasciio.{RSCIIO_READERS[path.suffix.lower()]}")


def _read_mrc(path: Path) -> Recording:
    import mrcfile

    with mrcfile.open(path, permissive=False) as mrc:
        raw = np.array(mrc.data)
        size = float(mrc.voxel_size.x)
    pixel_size = size if size > 0 else None  # MRC stores angstroms; 0 means not calibrated
    return Recording(path, _image_data(raw, path), pixel_size, "angstrom" if pixel_size else None,
                     raw.dtype.kind in "ui", {}, "mrcfile")


def _ome_calibration(description: str) -> tuple[float | None, str | None]:
    pixels = next((e for e in ElementTree.fromstring(description).iter() if e.tag.endswith("Pixels")), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None, None
    return float(pixels.attrib["PhysicalSizeX"]), pixels.attrib.get("PhysicalSizeXUnit", "µm")


def _read_tiff(path: Path) -> Recording:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        raw = tif.asarray()
        page = tif.pages[0]
        scale, unit = None, None
        if tif.is_ome and tif.ome_metadata:
            scale, unit = _ome_calibration(tif.ome_metadata)
        elif "XResolution" in page.tags:
            numerator, denominator = page.tags["XResolution"].value
            imagej_unit = (tif.imagej_metadata or {}).get("unit")
            if numerator and imagej_unit:  # ImageJ: pixels per unit
                scale, unit = denominator / numerator, imagej_unit.encode().decode("unicode_escape")
    pixel_size = None if scale is None else to_angstroms(scale, unit)
    return Recording(path, _image_data(raw, path), pixel_size, unit, raw.dtype.kind in "ui", {}, "tifffile")


READERS: dict[tuple[str, ...], Callable[[Path], Recording]] = {
    tuple(RSCIIO_READERS): _read_rsciio,
    MRC_SUFFIXES: _read_mrc,
    TIFF_SUFFIXES: _read_tiff,
}


def read_recording(path: str | os.PathLike) -> Recording:
    """Read one micrograph, stack or movie with its calibration (see the module doc).

    Raises :class:`RecordingError` (one line: the file and the reason) for a missing, empty,
    truncated, corrupt or unsupported file.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(path, "no such file")
    if path.stat().st_size == 0:
        raise RecordingError(path, "the file is empty")
    reader = next((read for suffixes, read in READERS.items() if path.suffix.lower() in suffixes), None)
    if reader is None:
        raise RecordingError(path, f"unsupported format {path.suffix!r} (supported: {', '.join(SUFFIXES)})")
    try:
        recording = reader(path)
    except RecordingError:
        raise
    except Exception as error:  # any library's failure on a bad file becomes one line naming the file
        reason = re.sub(r"\s+", " ", str(error)).strip() or type(error).__name__
        raise RecordingError(path, f"cannot read as {path.suffix.lstrip('.').upper()}: {reason}") from error
    recording.data = recording.data.astype(np.float32)
    return recording
