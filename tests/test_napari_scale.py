"""``temdenoise denoise``'s TIFF opens in napari at its pixel size and frame interval, with the
``napari-tiff`` reader plugin (napari's built-in TIFF reader ignores the calibration: scale 1 px).

Skipped unless napari and napari-tiff are installed (neither is a dependency of the package); tried
with napari 0.9.2 and napari-tiff 0.1.6, headless (no Qt needed: ``ViewerModel``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("napari_tiff")

from napari.components import ViewerModel  # noqa: E402
from napari.plugins import _initialize_plugins  # noqa: E402

from temdenoise.realdata import write_calibrated_tiff  # noqa: E402

PIXEL_SIZE = 0.25  # A


@pytest.mark.parametrize("frames", [0, 3])
def test_output_opens_in_napari_at_its_pixel_size(tmp_path, frames: int):
    _initialize_plugins()  # napari's builtins and installed plugins (the viewer does this at start)
    shape = (frames, 40, 50) if frames else (40, 50)
    path = tmp_path / "scan.dm3.denoised.tif"
    write_calibrated_tiff(path, np.ones(shape, np.float32), PIXEL_SIZE, frame_interval=0.1)
    layer = ViewerModel().open(str(path), plugin="napari-tiff")[0]
    assert layer.data.shape == shape
    assert np.allclose(layer.scale[-2:], PIXEL_SIZE / 10)
    assert [str(unit) for unit in layer.units[-2:]] == ["nanometer"] * 2
    if frames:
        assert layer.scale[0] == pytest.approx(0.1) and str(layer.units[0]) == "second"
