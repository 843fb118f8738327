"""BioImage Model Zoo export (``temdenoise export``): a network trained here becomes a package that
bioimage.io's own validation and model test pass, and its architecture file needs torch alone."""

from __future__ import annotations

import ast
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from bioimageio.core import test_model as bioimageio_test_model
from scipy import ndimage

from conftest import REPO, run_workflow
from temdenoise import cli, export
from temdenoise.io import load_stack, save_stack
from temdenoise.models import build_model
from temdenoise.train.supervised import train_supervised

PIXEL_SIZE = 0.5  # A
UNET = {"family": "unet", "params": {"scales": 2, "base_channels": 8, "offset": 1.0}}
BF_DNCNN = {"family": "dncnn", "params": {"depth": 3, "channels": 4, "bias_free": True, "offset": 1.0}}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A UNet trained for two steps in the workflow's layout: results/models/tiny/unet beside
    results/data/tiny/{train,validation}.npz (stand-in images of dark blobs on vacuum = 1)."""
    root = tmp_path_factory.mktemp("run")
    data = root / "results/data/tiny"
    rng = np.random.default_rng(0)
    images = [(1 - 1.2 * ndimage.gaussian_filter(rng.random((40, 48)), 2)).astype(np.float32) for _ in range(3)]
    for split in ("train", "validation"):
        save_stack(data / f"{split}.npz", images)
        (data / f"{split}.csv").write_text("item,pixel_size\n" + "".join(f"{i},{PIXEL_SIZE}\n" for i in range(3)))
    recipe = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 16, "validation_images": 1,
              "progress": False}
    out = root / "results/models/tiny/unet"
    train_supervised(UNET, recipe, {"kind": "poisson", "range": [50, 800]}, "tem", str(data / "train.npz"),
                     str(data / "validation.npz"), str(out), str(data / "train.csv"), str(data / "validation.csv"),
                     device="cpu")
    return out


def test_exported_package_passes_the_bioimageio_model_test(model_dir, tmp_path):
    package = tmp_path / "unet.zip"
    assert cli.main(["export", str(model_dir), "--bioimageio", str(package)]) == 0
    summary = bioimageio_test_model(package)  # validation, then inference of each weight format
    assert summary.status == "passed", summary.format()
    tested = " ".join(detail.name for detail in summary.details)
    assert "(pytorch_state_dict)" in tested and "(torchscript)" in tested
    with zipfile.ZipFile(package) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        test_input = np.load(archive.open("test_input.npy"))[0, 0]
        assert {"info.json", "metrics.csv", "architecture.py"} <= set(archive.namelist())
    assert {(axis["scale"], axis["unit"]) for axis in rdf["inputs"][0]["axes"] if axis["type"] == "space"} == {
        (PIXEL_SIZE, "angstrom")}
    assert {export.SEED[1], "10.1007/978-3-319-24574-4_28"} <= {entry["doi"] for entry in rdf["cite"]}
    # the test input is Poisson counts at the stated dose on the centre crop of the first validation image
    dose = rdf["config"]["temdenoise"]["test_input_dose_e_per_A2"]
    assert 50 < dose < 800
    counts = test_input * dose * PIXEL_SIZE**2
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)
    clean = load_stack(model_dir.parents[2] / "data/tiny/validation.npz")[0][:, 4:44]
    assert test_input.shape == clean.shape == (40, 40)
    assert abs(counts.sum() / (clean.sum() * dose * PIXEL_SIZE**2) - 1) < 0.01


@pytest.mark.parametrize("entry", [UNET, BF_DNCNN], ids=["unet", "bf_dncnn"])
def test_architecture_source_needs_torch_only(entry):
    """The exported architecture file imports nothing of temdenoise and rebuilds the very network:
    the package's state dict loads into it strictly and gives the same output."""
    network = build_model(entry).eval()
    source = export.architecture_source(type(network))
    imported = [node.module if isinstance(node, ast.ImportFrom) else alias.name
                for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names]
    assert set(imported) <= {"__future__", "torch"}, imported
    namespace: dict = {}
    exec(compile(source, "architecture.py", "exec"), namespace)
    rebuilt = namespace[type(network).__name__](**entry["params"]).eval()
    rebuilt.load_state_dict(network.state_dict(), strict=True)
    image = torch.rand(1, 1, 24, 32) + 0.5
    torch.testing.assert_close(rebuilt(image), network(image))


def test_export_reports_a_folder_that_is_no_model_on_one_line(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path), "--bioimageio", str(tmp_path / "out.zip")]) == 2
    assert "not a trained model folder" in capsys.readouterr().err
    assert not (tmp_path / "out.zip").exists()


def test_export_without_the_extra_names_it(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export, "extra_installed", lambda extra: False)
    assert cli.main(["export", str(model_dir), "--bioimageio", str(tmp_path / "out.zip")]) == 2
    assert 'pip install -e ".[bioimageio]"' in capsys.readouterr().err


def test_workflow_exports_tem_image_networks_on_demand(tmp_path):
    """results/export/<dataset>/<model>.zip is a target of its own (never of the default run), for the
    supervised image networks of simulated TEM image datasets only."""
    config = REPO / "tests/configs/tiny.yaml"
    planned = run_workflow(tmp_path, config, "-n", "results/export/tem/dncnn.zip").stdout
    assert re.search(r"^export_bioimageio\s+1$", planned, flags=re.M) and re.search(r"^train\s+1$", planned, flags=re.M)
    assert "export_bioimageio" not in run_workflow(tmp_path, config, "-n").stdout
    refused = run_workflow(tmp_path, config, "-n", "results/export/natural/dncnn.zip", check=False)
    assert refused.returncode != 0 and "MissingRuleException" in refused.stdout + refused.stderr
