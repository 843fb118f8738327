"""Array, table and image I/O with atomic writes.

Every file is written to a temporary name in the destination folder and renamed into place, so an
interrupted job never leaves a half-written output that Snakemake would take as finished.

Inside a workflow job (:func:`temdenoise.provenance.recording`), tables and records carry their
provenance: :func:`save_table` writes a JSON sidecar beside each CSV, :func:`save_text` ends each
Markdown (``.md``) and LaTeX (``.tex``) file with a footer line, :func:`save_json` adds a
``provenance`` key.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence, overload

import numpy as np
import pandas as pd
import tifffile

from temdenoise import provenance
from temdenoise.imagefiles import IMAGE_SUFFIXES, image_files


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file private (0600); outputs get the usual mode under the user's umask.
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def save_stack(path: str | os.PathLike, arrays: Iterable[np.ndarray]) -> None:
    """Save a (possibly ragged) sequence of float32 arrays as one ``.npz`` stack (``numpy.savez``'s
    format, members ``0000``, ``0001``...), writing each array as ``arrays`` yields it: given a
    generator, a job holds one item at a time, not the split (docs/cluster.md)."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for index, array in enumerate(arrays):
            # force_zip64 as numpy.savez does: a member may exceed 2 GiB (numpy gh-10776)
            with archive.open(f"{index:04d}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array, dtype=np.float32), allow_pickle=False)


class StackReader(Sequence[np.ndarray]):
    """The items of a stack written by :func:`save_stack`, each read from disk when it is indexed:
    iterating holds one item at a time (use as a context manager, which closes the file)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._archive = np.load(path)
        # by number: member 10000 comes after 9999 (as text it would sort before 1001)
        self._names = sorted(self._archive.files, key=int)

    def __len__(self) -> int:
        return len(self._names)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [self._archive[name] for name in self._names[index]]
        return self._archive[self._names[index]]

    def close(self) -> None:
        self._archive.close()

    def __enter__(self) -> "StackReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_stack(path: str | os.PathLike) -> list[np.ndarray]:
    """Load a stack written by :func:`save_stack`, in order, every item in memory
    (:class:`StackReader` reads them one at a time)."""
    with StackReader(path) as stack:
        return list(stack)


def save_table(path: str | os.PathLike, table: pd.DataFrame) -> None:
    """Write a CSV table atomically (in a job, after its provenance sidecar)."""
    entry = provenance.current()
    if entry is not None:
        _write_text(provenance.sidecar_path(path), json.dumps(entry, indent=2) + "\n")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


# Comment syntax of the provenance footer line per table format.
FOOTER_PREFIX = {".md": "", ".tex": "% "}


def save_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically; in a job, a Markdown or LaTeX file ends with a provenance line."""
    entry = provenance.current()
    prefix = FOOTER_PREFIX.get(Path(path).suffix)
    if entry is not None and prefix is not None:
        text = f"{text.rstrip()}\n\n{prefix}{provenance.footer_line(entry)}\n"
    _write_text(path, text)


def save_json(path: str | os.PathLike, record: dict) -> None:
    """Write a JSON record atomically; in a job, with its provenance under ``provenance``."""
    entry = provenance.current()
    _write_text(path, json.dumps(record if entry is None else {**record, "provenance": entry}, indent=2))


def _write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def export_tiff(path: str | os.PathLike, arrays: Iterable[np.ndarray]) -> None:
    """Export equally shaped arrays as one float32 TIFF stack (for Fiji / napari), each page
    written as ``arrays`` yields it (one series, read back as ``(N, H, W)``)."""
    shape = None
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp) as tiff:
        for array in arrays:
            shape = shape or np.shape(array)
            if np.shape(array) != shape:
                raise ValueError(f"{path}: a TIFF stack holds equally shaped arrays, {np.shape(array)} after {shape}")
            tiff.write(np.asarray(array, dtype=np.float32), contiguous=True)


def read_image_folder(folder: str | os.PathLike, limit: int | None = None) -> list[np.ndarray]:
    """Read every image of ``folder`` (sorted by name) as grayscale float32 in [0, 1].

    Raises FileNotFoundError naming the folder when it does not exist or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = image_files(folder)
    if not files:
        raise FileNotFoundError(f"no image ({', '.join(IMAGE_SUFFIXES)}) in folder: {folder}")
    # imported here: skimage.io costs every job that only reads and writes arrays about 1 s
    from skimage import io as skio
    from skimage.util import img_as_float32

    images = []
    for file in files[:limit]:
        image = skio.imread(file, as_gray=True)
        images.append(img_as_float32(image))
    return images
