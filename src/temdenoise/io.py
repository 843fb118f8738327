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
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import tifffile

from temdenoise import provenance

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


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


def save_stack(path: str | os.PathLike, arrays: Sequence[np.ndarray]) -> None:
    """Save a (possibly ragged) sequence of float32 arrays as one ``.npz`` stack."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **{f"{i:04d}": np.asarray(a, dtype=np.float32) for i, a in enumerate(arrays)})


def load_stack(path: str | os.PathLike) -> list[np.ndarray]:
    """Load a stack written by :func:`save_stack`, in order."""
    with np.load(path) as data:
        return [data[key] for key in sorted(data.files)]


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


def export_tiff(path: str | os.PathLike, arrays: Sequence[np.ndarray]) -> None:
    """Export a stack of equally shaped arrays as one float32 TIFF (for Fiji / napari)."""
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.stack([np.asarray(a, dtype=np.float32) for a in arrays]))


def read_image_folder(folder: str | os.PathLike, limit: int | None = None) -> list[np.ndarray]:
    """Read every image of ``folder`` (sorted by name) as grayscale float32 in [0, 1].

    Raises FileNotFoundError naming the folder when it does not exist or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
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
