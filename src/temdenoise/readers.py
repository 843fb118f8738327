"""Read a user's micrograph, stack or movie, its calibration and what it is, from a microscope file.

One function, :func:`read_recording`, for every format the field uses, through the field's
libraries (nothing is hand-parsed):

* DM3/DM4 (Gatan), EMD (Velox and NCEM), SER/EMI (FEI TIA), TIFF (ImageJ, DigitalMicrograph,
  FEI, Zeiss, TVIPS, Olympus, JEOL): `rosettasciio`, whose metadata mapping (the one HyperSpy
  applies) gives the acquisition mode; what its TIFF reader skips (an ImageJ unit other than
  micron, OME-TIFF's ``PhysicalSizeX``) from `tifffile`;
* MRC/MRCS: `mrcfile` (the CCP-EM reference reader; pixel size in angstroms as stored, and FEI's
  extended header, which names a STEM detector).

A file may hold several signals (a Velox EMD: images, spectra and elemental maps). Each is
classified (:data:`KINDS`) from its signal type, the units of its axes and the detector or
acquisition mode its metadata names; a file with no real-space image is refused with the reason
(a spectrum, a spectrum image, a diffraction pattern, an elemental map). Of several images, a TEM
image is preferred to a STEM one, then the largest; ``signal`` chooses one by title.

It returns float32 ``(H, W)`` or ``(T, H, W)`` data, read lazily: a dask array whose frames are read
from the file when computed (:func:`lazy_frames`; a movie is never loaded whole: rosettasciio's
``lazy=True`` for DM and EMD, a memory map for MRC, the TIFF's pages through `tifffile`; only a
TIA series is read in one piece, rosettasciio's SER reader having no partial read), the pixel size in angstroms (None when the
file does not say), the kind of image (``tem`` or ``stem``) and its detector, whether the values
are integers, the interval between frames, and the dose / exposure entries of the metadata. A
file that cannot be read raises :class:`RecordingError` with one line naming the file and the reason.
"""

from __future__ import annotations

import importlib
import os
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, Mapping

import dask
import dask.array as da
import numpy as np

# Length units -> angstroms (the spellings found in DM, EMD, TIA, ImageJ and OME metadata).
ANGSTROMS_PER_UNIT = {
    "a": 1.0, "å": 1.0, "\u212b": 1.0, "angstrom": 1.0, "angstroms": 1.0,
    "nm": 10.0, "nanometer": 10.0, "nanometre": 10.0,
    "pm": 0.01, "um": 1e4, "µm": 1e4, "\u03bcm": 1e4, "micron": 1e4, "micrometer": 1e4, "m": 1e10,
}
SECONDS_PER_UNIT = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6,
                    "ns": 1e-9}
ENERGY_UNITS = {"ev", "kev", "mev"}
RSCIIO_READERS = {".dm3": "digitalmicrograph", ".dm4": "digitalmicrograph", ".emd": "emd", ".ser": "tia",
                  ".emi": "tia", ".tif": "tiff", ".tiff": "tiff"}
MRC_SUFFIXES = (".mrc", ".mrcs", ".st")
SUFFIXES = (*RSCIIO_READERS, *MRC_SUFFIXES)
# Packages whose versions a sidecar records (the readers and the libraries they call).
READER_PACKAGES = ("rosettasciio", "mrcfile", "tifffile", "h5py", "sparse", "imagecodecs")
# Metadata keys whose values describe the dose or exposure (searched case-insensitively, any depth).
DOSE_KEYS = ("dose", "dose_rate", "exposure", "exposure_time", "integration_time", "beam_current")
# Signal types of rosettasciio / HyperSpy that hold spectra (the prefix is enough: EDS_TEM, EDS_SEM).
SPECTRAL_TYPES = ("EELS", "EDS", "CL", "LUMI", "XRF", "PL")
# Detector titles of scanning (STEM) detectors, as DM, Velox and TIA name them.
STEM_DETECTORS = re.compile(r"^(HAADF|MAADF|LAADF|ADF|ABF|BF|DF|DF-?[SI]|BF-?S|DF\d|IDPC|DPC|SE|BSE)([-_ ]?\d*)$", re.I)

LAZY_CHUNK_SIZE = "16MiB"
"""Largest chunk a reader's own chunking ("auto") may give while reading lazily: with one frame
the most read at a time, it bounds the memory a frame read takes, whatever the file's size."""

KINDS = {
    "tem": "a real-space image from a camera (or with nothing in the file saying otherwise)",
    "stem": "a STEM image: a scanning detector's signal",
    "diffraction": "a diffraction pattern (reciprocal-space axes), not a real-space image",
    "spectrum": "a spectrum, not an image",
    "spectrum image": "a spectrum image (a spectrum at every probe position), not an image",
    "map": "an elemental map of a spectrum image (EDS / EELS), not an image of electron counts",
    "other": "not an image (H, W) or a movie (T, H, W)",
}
"""What a signal can be; readers return ``tem`` and ``stem`` images, the others are refused."""
IMAGE_KINDS = ("tem", "stem")
# Metadata paths (HyperSpy's names) that the rosettasciio mapping fills and the classification reads.
MAPPED_KEYS = ("Acquisition_instrument.TEM.acquisition_mode", "Acquisition_instrument.TEM.Detector.Camera.Name")


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
    data: da.Array  # float32, lazy: each frame / chunk read from the file when computed
    pixel_size: float | None  # angstroms, along x; None when the file has no length calibration
    unit: str | None  # the length unit as the file wrote it
    integer: bool  # the stored values are integers
    exposure: dict[str, Any] = field(default_factory=dict)  # dose / exposure entries found in metadata
    reader: str = ""
    kind: str = "tem"  # a key of KINDS: tem or stem
    title: str = ""  # the signal's title in the file
    detector: str = ""  # the detector the metadata names ("" when none)
    pixel_size_y: float | None = None  # angstroms, along y
    frame_interval: float | None = None  # seconds between frames of a movie, when the file says
    signals: list[str] = field(default_factory=list)  # "title (kind)" of every signal in the file

    @property
    def is_movie(self) -> bool:
        return self.data.ndim == 3


def reader_versions() -> dict[str, str]:
    """Installed versions of the reader packages (:data:`READER_PACKAGES`), for provenance."""
    versions = {}
    for name in READER_PACKAGES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def to_angstroms(scale: float, unit: str | None) -> float | None:
    """A length ``scale`` in ``unit`` converted to angstroms; None for an unknown or missing unit."""
    if unit is None or not np.isfinite(scale) or scale <= 0:
        return None
    factor = ANGSTROMS_PER_UNIT.get(str(unit).strip().lower())
    return None if factor is None else float(scale) * factor


def is_reciprocal(unit: str | None) -> bool:
    """A reciprocal length unit (``1/nm``, ``nm^-1``, ``1 / A``): the axis of a diffraction pattern."""
    text = str(unit or "").replace(" ", "").lower()
    return text.startswith("1/") or text.endswith(("^-1", "⁻¹"))


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


def _item(tree: Any, dotted: str) -> Any:
    """The value at a dotted path of a nested mapping, None when absent."""
    for key in dotted.split("."):
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _wanted(target: str) -> bool:
    """A metadata path this module reads: the acquisition mode, the camera, a dose or exposure."""
    return target in MAPPED_KEYS or target.rsplit(".", 1)[-1].lower() in DOSE_KEYS


def mapped_metadata(signal: Mapping[str, Any]) -> dict[str, Any]:
    """A rosettasciio signal's metadata (flat dotted keys) completed, for the paths this module
    reads, by its ``mapping`` (original metadata path -> metadata path and conversion): the step
    HyperSpy performs on loading (some conversions expect HyperSpy's own tree, so only these run)."""
    flat = {}

    def walk(tree: Any, prefix: str) -> None:
        for key, value in tree.items():
            walk(value, f"{prefix}{key}.") if isinstance(value, Mapping) else flat.__setitem__(f"{prefix}{key}", value)

    walk(signal.get("metadata") or {}, "")
    for source, (target, convert) in (signal.get("mapping") or {}).items():
        value = _item(signal.get("original_metadata") or {}, source)
        if value is not None and _wanted(target):
            flat[target] = convert(value) if convert else value
    return flat


def _velox_detector_type(signal: Mapping[str, Any]) -> tuple[str, str]:
    """(detector, type) of a Velox EMD signal: its ``BinaryResult.Detector`` and that detector's
    ``DetectorType`` (ImagingDetector, ScanningDetector, AnalyticalDetector) in ``Detectors``."""
    original = signal.get("original_metadata") or {}
    detector = str(_item(original, "BinaryResult.Detector") or "")
    for entry in (_item(original, "Detectors") or {}).values():
        name = str(entry.get("DetectorName", "")) if isinstance(entry, Mapping) else ""
        if detector and name.startswith(detector):  # Velox names the EDS maps' detector "UltraX" for UltraX1..6
            return detector, str(entry.get("DetectorType", ""))
    return detector, ""


def classify(signal: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, detector) of a rosettasciio signal; kind is a key of :data:`KINDS`."""
    axes = [axis for axis in signal["axes"] if int(axis.get("size", 1)) > 1]
    units = [str(axis.get("units") or "").strip() for axis in axes]
    meta = mapped_metadata(signal)
    signal_type = str(meta.get("Signal.signal_type") or "").upper()
    if signal_type.startswith(SPECTRAL_TYPES) or any(unit.lower() in ENERGY_UNITS for unit in units):
        spatial = sum(to_angstroms(1.0, unit) is not None for unit in units)
        return ("spectrum image" if spatial >= 2 else "spectrum"), ""
    if len(axes) not in (2, 3):
        return "other", ""
    if signal_type.startswith("DIFFRACTION") or any(is_reciprocal(unit) for unit in units[-2:]):
        return "diffraction", ""
    title = str(meta.get("General.title") or "")
    detector, detector_type = _velox_detector_type(signal)
    if detector_type == "AnalyticalDetector":
        return "map", detector
    mode = str(meta.get("Acquisition_instrument.TEM.acquisition_mode") or "").upper()
    illumination = str(_item(signal.get("original_metadata") or {}, "Optics.IlluminationMode") or "")
    if detector_type == "ScanningDetector" or mode == "STEM" or illumination == "Probe" or STEM_DETECTORS.match(title):
        return "stem", detector or (title if STEM_DETECTORS.match(title) else "scanning detector")
    camera = meta.get("Acquisition_instrument.TEM.Detector.Camera.Name")
    return "tem", str(camera or detector or "")


def _image_data(data: Any, path: Path) -> da.Array:
    """Squeezed ``(H, W)`` or ``(T, H, W)`` data as a lazy dask array; other shapes, empty or
    non-finite data are errors. The first and last frames are read (a truncated file fails here,
    not while denoising); float data are checked for NaN chunk by chunk."""
    data = data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=-1)
    data = da.squeeze(data)
    if data.size == 0:
        raise RecordingError(path, "the file holds no data")
    if data.dtype.kind not in "uif":
        raise RecordingError(path, f"unsupported data type {data.dtype} (expected real numbers)")
    if data.ndim not in (2, 3) or min(data.shape[-2:]) < 2:
        raise RecordingError(path, f"expected an image (H, W) or a stack (T, H, W), got shape {data.shape}")
    for index in ([0, -1] if data.ndim == 3 else [...]):
        np.asarray(data[index])
    if data.dtype.kind == "f" and not bool(da.isfinite(data).all().compute()):
        raise RecordingError(path, "the data hold NaN or infinite values")
    return data


class _Slices:
    """What :func:`dask.array.from_array` needs of a file's data (shape, dtype, slicing), each
    slice read by ``read(key)`` when asked (a plain object: dask copies no ndarray it is given)."""

    def __init__(self, read: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.read, self.shape, self.dtype, self.ndim = read, tuple(shape), np.dtype(dtype), len(shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.read(key))


def lazy_frames(read: Any, shape: tuple[int, ...], dtype: np.dtype) -> da.Array:
    """A dask array of ``shape`` whose chunks are single frames (of a ``(..., H, W)`` stack; a 2-D
    image is one chunk), each read by ``read(key)`` (a tuple of slices) only when computed."""
    chunks = tuple(1 for _ in shape[:-2]) + tuple(shape[-2:])
    return da.from_array(_Slices(read, shape, dtype), chunks=chunks, name=False, asarray=True, lock=False)


def _tiff_frames(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> da.Array | None:
    """A TIFF's first series read page by page (rosettasciio's lazy TIFF is one chunk: the whole
    file decoded for any frame); None when the series is not the ``shape`` rosettasciio read."""
    import threading

    import tifffile

    tif = tifffile.TiffFile(path)
    series = tif.series[0]
    stored = tuple(series.shape)
    if tuple(d for d in stored if d > 1) != tuple(d for d in shape if d > 1) or series.dtype != dtype \
            or len(series.pages) != int(np.prod(stored[:-2], dtype=int)):
        tif.close()
        return None
    lock = threading.Lock()
    planes = (int(np.prod(stored[:-2], dtype=int)), *stored[-2:])

    def read(key: Any) -> np.ndarray:
        first, *rest = key if isinstance(key, tuple) else (key,)
        single = isinstance(first, (int, np.integer))
        pages = [range(planes[0])[first]] if single else list(range(planes[0])[first])
        with lock:
            data = tif.asarray(key=pages, series=0) if pages else np.empty((0, *planes[1:]), series.dtype)
        data = data.reshape(len(pages), *planes[1:])
        return data[0][tuple(rest)] if single else data[(slice(None), *rest)]

    return lazy_frames(read, planes, series.dtype).reshape(stored)


def _describe(title: str, kind: str, shape: tuple[int, ...]) -> str:
    return f"{title or 'untitled'} ({kind}, {' x '.join(map(str, shape))})"


def _choose(path: Path, described: list[str], titles: list[str], kinds: list[str], sizes: list[int],
            wanted: str | None) -> int:
    """Index of the signal to read: the one titled ``wanted``, else the best real-space image."""
    if wanted is not None:
        matches = [i for i, title in enumerate(titles) if title.lower() == wanted.lower()]
        if not matches:
            raise RecordingError(path, f"no signal titled {wanted!r} (signals: {'; '.join(described)})")
        index = matches[0]
    else:
        images = [i for i, kind in enumerate(kinds) if kind in IMAGE_KINDS]
        if not images:
            others = f" (signals: {'; '.join(described)})" if len(kinds) > 1 else ""
            raise RecordingError(path, f"refused: {described[0]} is {KINDS[kinds[0]]}{others}")
        index = max(images, key=lambda i: (kinds[i] == "tem", sizes[i]))
    if kinds[index] not in IMAGE_KINDS:
        raise RecordingError(path, f"refused: signal {described[index]} is {KINDS[kinds[index]]}")
    return index


def _read_rsciio(path: Path, wanted: str | None) -> Recording:
    module = RSCIIO_READERS[path.suffix.lower()]
    reader = importlib.import_module(f"rsciio.{module}").file_reader
    with dask.config.set({"array.chunk-size": LAZY_CHUNK_SIZE}):
        signals = reader(str(path), lazy=True)
    metas = [mapped_metadata(signal) for signal in signals]
    classes = [classify(signal) for signal in signals]
    titles = [str(meta.get("General.title") or "") for meta in metas]
    described = [_describe(title, kind, np.shape(s["data"])) for title, (kind, _), s in zip(titles, classes, signals)]
    index = _choose(path, described, titles, [kind for kind, _ in classes], [int(np.prod(np.shape(s["data"]))) for s in signals],
                    wanted)
    signal, meta, (kind, detector) = signals[index], metas[index], classes[index]
    raw = _frame_chunked(path, module, signal["data"], reader, index)
    axes = [axis for axis in signal["axes"] if int(axis.get("size", 1)) > 1]
    (y_axis, x_axis), frames = axes[-2:], axes[:-2]
    unit = x_axis.get("units")
    pixel_size = to_angstroms(x_axis.get("scale", 1.0), unit)
    pixel_size_y = to_angstroms(y_axis.get("scale", 1.0), y_axis.get("units"))
    if path.suffix.lower() in (".tif", ".tiff") and pixel_size is None:
        pixel_size, unit = _tifffile_pixel_size(path)
        pixel_size_y = pixel_size
    interval = None
    if frames:
        seconds = SECONDS_PER_UNIT.get(str(frames[0].get("units") or "").strip().lower())
        interval = None if seconds is None else float(frames[0]["scale"]) * seconds
    exposure = {**find_exposure(signal.get("metadata", {})), **find_exposure(signal.get("original_metadata", {})),
                **{key: float(value) for key, value in meta.items()
                   if key.rsplit(".", 1)[-1].lower() in DOSE_KEYS and _is_number(value)}}
    return Recording(path, _image_data(raw, path), pixel_size, unit, raw.dtype.kind in "ui", exposure,
                     f"rosettasciio.{module}", kind, titles[index], detector, pixel_size_y, interval, described)


def _frame_chunked(path: Path, module: str, data: Any, reader: Any, index: int) -> Any:
    """The chosen signal's data, lazy, with chunks of at most one frame where the reader allows:
    DM read again with one frame per chunk (``chunks``), a TIFF page by page; EMD as its HDF5
    chunks (or ``LAZY_CHUNK_SIZE``); a TIA series (one delayed piece) read once, whole."""
    if not isinstance(data, da.Array):
        return data
    frames = [size for size in data.shape[:-2] if size > 1]
    if module == "digitalmicrograph" and frames and max(data.chunks[0]) > 1:
        return reader(str(path), lazy=True, chunks={axis: 1 for axis in range(data.ndim - 2)})[index]["data"]
    if module == "tiff":
        pages = _tiff_frames(path, data.shape, data.dtype)
        return data.compute() if pages is None else pages
    if module == "tia":
        return data.compute()  # one delayed piece: read once rather than once per frame
    return data


def _is_number(value: Any) -> bool:
    try:
        return np.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _tifffile_pixel_size(path: Path) -> tuple[float | None, str | None]:
    """A TIFF's pixel size (A) and unit from what rosettasciio's TIFF reader skips: ImageJ's
    ``unit`` other than micron (it reads only that one) and OME's ``PhysicalSizeX``."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        if tif.is_ome and tif.ome_metadata:
            pixels = next((e for e in ElementTree.fromstring(tif.ome_metadata).iter() if e.tag.endswith("Pixels")), None)
            if pixels is None or "PhysicalSizeX" not in pixels.attrib:
                return None, None
            unit = pixels.attrib.get("PhysicalSizeXUnit", "µm")
            return to_angstroms(float(pixels.attrib["PhysicalSizeX"]), unit), unit
        unit = (tif.imagej_metadata or {}).get("unit")
        if "XResolution" not in page.tags or not unit:
            return None, None
        numerator, denominator = page.tags["XResolution"].value  # ImageJ: pixels per unit
        unit = unit.encode().decode("unicode_escape")
        return (to_angstroms(denominator / numerator, unit), unit) if numerator else (None, None)


def _read_mrc(path: Path) -> Recording:
    import mrcfile

    with mrcfile.mmap(path, mode="r", permissive=False) as mrc:
        shape, dtype = mrc.data.shape, mrc.data.dtype
        offset = mrc.header.nbytes + int(mrc.header.nsymbt)
        size = float(mrc.voxel_size.x)
        size_y = float(mrc.voxel_size.y)
        fei = mrc.indexed_extended_header if mrc.header.exttyp in (b"FEI1", b"FEI2") else None
    detector = ""
    if fei is not None and len(fei):
        names = fei.dtype.names
        detector = fei["STEM Detector name"][0].decode().strip() if "STEM Detector name" in names else ""
        if not detector and "Illumination mode" in names and fei["Illumination mode"][0].decode().strip() == "Probe":
            detector = "scanning detector"
    # a memory map of the data block, read a frame at a time (mrcfile's own closes with the file)
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    raw = lazy_frames(lambda key: np.array(mapped[key]), shape, dtype)
    pixel_size = size if size > 0 else None  # MRC stores angstroms; 0 or negative means not calibrated
    return Recording(path, _image_data(raw, path), pixel_size, "angstrom" if pixel_size else None,
                     raw.dtype.kind in "ui", {}, "mrcfile", "stem" if detector else "tem", "", detector,
                     size_y if size_y > 0 else None)


def tia_pair(path: Path) -> Path:
    """The ``.emi`` of a TIA ``<name>_<n>.ser`` when it lies beside it (the pair is one recording,
    and only the ``.emi`` holds the acquisition metadata); any other path unchanged."""
    match = re.fullmatch(r"(.+)_\d+", path.stem) if path.suffix.lower() == ".ser" else None
    emi = path.with_name(f"{match.group(1)}.emi") if match else None
    return emi if emi is not None and emi.is_file() else path


def read_recording(path: str | os.PathLike, signal: str | None = None) -> Recording:
    """Read one micrograph, stack or movie with its calibration (see the module doc); ``signal``
    chooses a signal of a multi-signal file by its title (an MRC file holds one).

    Raises :class:`RecordingError` (one line: the file and the reason) for a missing, empty,
    truncated, corrupt or unsupported file, and for a file with no real-space image.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(path, "no such file")
    if path.stat().st_size == 0:
        raise RecordingError(path, "the file is empty")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise RecordingError(path, f"unsupported format {path.suffix!r} (supported: {', '.join(SUFFIXES)})")
    try:
        recording = _read_mrc(path) if suffix in MRC_SUFFIXES else _read_rsciio(path, signal)
    except RecordingError:
        raise
    except Exception as error:  # any library's failure on a bad file becomes one line naming the file
        reason = re.sub(r"\s+", " ", str(error)).strip() or type(error).__name__
        raise RecordingError(path, f"cannot read as {path.suffix.lstrip('.').upper()}: {reason}") from error
    recording.data = recording.data.astype(np.float32)
    return recording
