"""The data card's image statistics (temdenoise.simulate.data_stats, issue 34): the same numbers as
the reference tool shared/tools/image_stats.py, and the warning on a lattice that was blurred away."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from conftest import REPO
from temdenoise.simulate import data_stats

IMAGE_STATS_TOOL = REPO.parent / "shared" / "tools" / "image_stats.py"
PIXEL = 0.0625


def lattice_image(blur_px: float = 0.0, size: int = 128, seed: int = 0) -> np.ndarray:
    """A clean-looking image: bright Pt {111}-like fringes (2.27 A) over a faint shading, vacuum 1."""
    rows, cols = np.mgrid[:size, :size] * PIXEL
    fringes = 0.1 * np.cos(2 * np.pi * (rows * np.cos(0.3) + cols * np.sin(0.3)) / 2.27)
    shading = gaussian_filter(np.random.default_rng(seed).standard_normal((size, size)), 20)
    image = 1.0 + fringes + 0.03 * shading / shading.std()
    return gaussian_filter(image, blur_px, mode="wrap") if blur_px else image


@pytest.mark.skipif(not IMAGE_STATS_TOOL.exists(), reason="shared/tools/image_stats.py not beside the repository")
def test_statistics_equal_the_reference_tool():
    spec = importlib.util.spec_from_file_location("image_stats", IMAGE_STATS_TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    for image in (lattice_image(), lattice_image(6.0, seed=1)):
        ours = data_stats.image_stats(image, PIXEL, 0.45, np.random.default_rng(0))
        theirs = tool.image_stats(image, PIXEL, 0.45, np.random.default_rng(0))
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


def card_of(images: list[np.ndarray]) -> tuple[pd.DataFrame, str]:
    metadata = pd.DataFrame({"defocus": [-60.0 + 10 * i for i in range(len(images))],
                             "contrast_class": ["white"] * len(images), "pixel_size": PIXEL})
    per_image = data_stats.split_stats(images, metadata)
    table = data_stats.summary(per_image, Cs=-1.3e5)
    return table, data_stats.data_card("tem", "test", per_image, table, -1.3e5, PIXEL)


def test_lattice_band_and_warning():
    """Sharp fringes put their variance in the 0.40-0.60 1/A band and get no warning; a 0.94-A blur
    (15 px, the old calibration) removes them and the card warns, naming the blur."""
    sharp, card = card_of([lattice_image(), lattice_image(seed=1)])
    assert float(sharp.loc[sharp.subset == "all", data_stats.LATTICE_BAND].iloc[0]) > 0.3
    assert "WARNING" not in card and "authors" in card
    blurred, card = card_of([lattice_image(15.0), lattice_image(15.0, seed=1)])
    assert float(blurred.loc[blurred.subset == "all", data_stats.LATTICE_BAND].iloc[0]) < data_stats.LATTICE_WARNING_SHARE
    assert "WARNING" in card and "image_spread" in card


def test_defocus_matched_subset_is_near_6_nm_overfocus():
    """The matched subset holds the images within 20 A of 6 nm overfocus, at either sign of Cs."""
    metadata = pd.DataFrame({"defocus": [-150.0, -70.0, -50.0, 60.0], "contrast_class": ["white"] * 4,
                             "pixel_size": PIXEL})
    per_image = data_stats.split_stats([lattice_image(seed=i) for i in range(4)], metadata)
    for Cs, expected in ((-1.3e5, 2), (1.3e5, 2)):
        table = data_stats.summary(per_image, Cs)
        assert int(table.loc[table.subset.str.startswith("defocus"), "images"].iloc[0]) == expected


def test_docs_fill_copies_result_files(tmp_path):
    """A fill block takes its file's current text; a block naming a missing file is an error."""
    from temdenoise.docs_fill import fill

    (tmp_path / "table.md").write_text("| a |\n|---|\n| 1 |\n")
    page = "text\n<!-- fill: table.md -->\nold figure\n<!-- /fill -->\nmore\n"
    assert fill(page, tmp_path) == "text\n<!-- fill: table.md -->\n| a |\n|---|\n| 1 |\n<!-- /fill -->\nmore\n"
    (tmp_path / "printed.txt").write_text("a | b\n1 | 2\n")
    assert fill(page.replace("table.md", "printed.txt"), tmp_path) == \
        "text\n<!-- fill: printed.txt -->\n```text\na | b\n1 | 2\n```\n<!-- /fill -->\nmore\n"
    with pytest.raises(FileNotFoundError, match="missing.md"):
        fill(page.replace("table.md", "missing.md"), tmp_path)


def test_docs_fill_only_replaces_the_named_blocks(tmp_path):
    """``only``: the blocks of other files (another run's) stay as they are, even when missing here."""
    from temdenoise.docs_fill import fill

    (tmp_path / "new.md").write_text("new figure\n")
    page = "<!-- fill: other.md -->\nkept\n<!-- /fill -->\n<!-- fill: new.md -->\nold\n<!-- /fill -->\n"
    assert fill(page, tmp_path, only=["new.md"]) == \
        "<!-- fill: other.md -->\nkept\n<!-- /fill -->\n<!-- fill: new.md -->\nnew figure\n<!-- /fill -->\n"
