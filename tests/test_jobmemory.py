"""Memory from the data (issue 37 item 2): split sizes computed from the config and image headers
equal the arrays the jobs build, and a job's measured peak stays within what it asks for.
(tests/test_paper_config.py checks every paper.yaml job's mem_mb against its data.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from temdenoise.imagefiles import image_shape
from temdenoise.io import save_stack
from temdenoise.jobmemory import FOOTPRINTS, SplitSize, folder_split, job_mem_mb, simulated_split, skimage_split
from temdenoise.natural import natural_split
from temdenoise.simulate.settings import SimulationSettings


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp"])
def test_image_shape_reads_the_header(tmp_path, suffix):
    from skimage import io as skio

    path = tmp_path / f"image{suffix}"
    skio.imsave(path, np.random.default_rng(0).integers(0, 256, (37, 53), dtype=np.uint8), check_contrast=False)
    assert image_shape(path) == (37, 53) == skio.imread(path).shape[:2]


def test_skimage_and_folder_sizes_are_those_of_the_prepared_arrays(tmp_path):
    from skimage import io as skio

    rng = np.random.default_rng(1)
    for name, shape in {"a.png": (40, 30), "b.jpg": (64, 48), "c.png": (20, 90), "d.tif": (33, 33)}.items():
        skio.imsave(tmp_path / name, rng.integers(0, 256, shape, dtype=np.uint8), check_contrast=False)
    folder = {"source": "folder", "train_folder": tmp_path, "test_folder": tmp_path, "validation_count": 1}
    for entry, size in ((folder, lambda split: folder_split(folder, split)), ({"source": "skimage"}, skimage_split)):
        for split in ("train", "validation", "test"):
            images, _ = natural_split(entry, split)
            item_bytes = [image.size * 4 for image in images]
            assert size(split) == SplitSize(len(images), max(item_bytes), sum(item_bytes)), (entry["source"], split)


def test_simulated_splits_of_the_paper_are_the_issues_figures():
    """Issue 37: paper.yaml's training splits weigh 14.1 GiB (tem: 14,400 images of 512 px) and
    27.8 GiB (tem_regime: 14,400 of 720 px); a video is its frames."""
    datasets = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["datasets"]
    settings = {name: SimulationSettings.from_config(datasets[name]["simulation"]) for name in ("tem", "tem_regime")}
    assert round(simulated_split(settings["tem"], "train").total / 2**30, 1) == 14.1
    assert round(simulated_split(settings["tem_regime"], "train").total / 2**30, 1) == 27.8
    assert simulated_split(settings["tem_regime"], "test") == SplitSize(900, 720 * 720 * 4, 900 * 720 * 720 * 4)
    video = SimulationSettings.from_config(datasets["tem_video"]["simulation"])
    assert simulated_split(video, "train") == SplitSize(16, 40 * 512 * 512 * 4, 16 * 40 * 512 * 512 * 4)


PEAK_SCRIPT = """
import sys
from temdenoise.benchmark import fit_classical, write_noisy_split
folder = sys.argv[2]
if sys.argv[1] == "add_noise":
    write_noisy_split(f"{folder}/clean.npz", f"{folder}/clean.csv", "poisson-20", 0, f"{folder}/out.npz")
else:
    fit_classical({"family": "wiener", "params": {"kernel_size": 11}}, f"{folder}/noisy.npz", f"{folder}/clean.npz",
                  f"{folder}/out.npz")
# the high-water mark of this process's memory (VmHWM: of this program, not of the one it replaced)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
@pytest.mark.parametrize("rule", ["add_noise", "fit_classical"])
def test_a_streamed_job_peaks_within_what_it_asks_for(rule, tmp_path):
    """One process runs the rule's body on 3 items of 1536 px (9.4 MB each, 28 MB in all) and
    reports its peak resident memory, which the footprint (one item held) bounds."""
    side, rng = 1536, np.random.default_rng(2)
    save_stack(tmp_path / "clean.npz", (1 + 0.1 * rng.standard_normal((side, side)) for _ in range(3)))
    save_stack(tmp_path / "noisy.npz", (1 + 0.3 * rng.standard_normal((side, side)) for _ in range(3)))
    pd.DataFrame({"item": range(3), "pixel_size": 0.25}).to_csv(tmp_path / "clean.csv", index=False)
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(PEAK_SCRIPT), rule, str(tmp_path)],
                         capture_output=True, text=True, check=True)
    peak_mb = int(run.stdout.split()[-1]) * 1024 / 1e6
    asked = job_mem_mb(rule, side * side * 4)
    print(f"{rule}: peak {peak_mb:.0f} MB, asks {asked} MB")
    assert peak_mb < asked
    assert peak_mb > FOOTPRINTS[rule].per_byte * side * side * 4 / 1e6  # the item's working copies were held
