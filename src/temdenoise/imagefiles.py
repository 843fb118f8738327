"""The image files of a folder and their sizes, read from the file headers.

Standard library only: the workflow sizes the jobs of a ``source: folder`` dataset from these
headers while it plans, where no image package may be installed (tests/test_lint.py).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# JPEG start-of-frame markers (baseline, progressive, lossless...): their segment holds the size.
# C4 (Huffman tables), C8 (reserved) and CC (arithmetic coding) share the range but are not frames.
_JPEG_FRAMES = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_TIFF_WIDTH, _TIFF_LENGTH = 256, 257


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (suffixes :data:`IMAGE_SUFFIXES`), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def image_shape(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of a PNG, JPEG, TIFF or BMP file, from its header."""
    with open(path, "rb") as handle:
        head = handle.read(26)
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            width, height = struct.unpack(">II", head[16:24])
            return height, width
        if head.startswith(b"BM"):
            width, height = struct.unpack("<ii", head[18:26])
            return abs(height), width  # a negative height: rows stored top-down
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_shape(handle, "<" if head[:2] == b"II" else ">")
        if head.startswith(b"\xff\xd8"):
            return _jpeg_shape(handle)
    raise ValueError(f"{path}: not a PNG, JPEG, TIFF or BMP file")


def _jpeg_shape(handle) -> tuple[int, int]:
    """Height and width from the first start-of-frame segment of a JPEG file."""
    handle.seek(2)
    while True:
        marker = handle.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            raise ValueError(f"{handle.name}: no JPEG frame header")
        (length,) = struct.unpack(">H", handle.read(2))
        if marker[1] in _JPEG_FRAMES:
            height, width = struct.unpack(">xHH", handle.read(5))
            return height, width
        handle.seek(length - 2, os.SEEK_CUR)


def _tiff_shape(handle, order: str) -> tuple[int, int]:
    """Height and width of the first image (IFD) of a TIFF file."""
    handle.seek(4)
    (offset,) = struct.unpack(order + "I", handle.read(4))
    handle.seek(offset)
    (count,) = struct.unpack(order + "H", handle.read(2))
    sizes = {}
    for _ in range(count):
        tag, kind, _, value = struct.unpack(order + "HHI4s", handle.read(12))
        if tag in (_TIFF_WIDTH, _TIFF_LENGTH):  # SHORT (3) or LONG (4), stored in the value field
            sizes[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[: 2 if kind == 3 else 4])[0]
    return sizes[_TIFF_LENGTH], sizes[_TIFF_WIDTH]
