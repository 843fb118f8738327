"""Method families from outside the package: the config's ``plugins:`` and the entry-point group.

A classical family (a Gaussian blur whose width is fitted by least squares) is written into a
temporary module, declared by either route, and found by the registry like a built-in family; the
config route also runs through a small workflow into the PSNR summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from temdenoise import families, registry

BLUR_MODULE = '''
"""A Gaussian blur whose width is the training pairs' least-squares choice among a few."""
import numpy as np
from scipy import ndimage

from temdenoise.registry import register

SIGMAS = (0.5, 1.0, 1.5, 2.0)


@register("blur")
class GaussianBlur:
    kind = "classical"

    def fit(self, noisy, clean):
        errors = [
            sum(float(np.mean((ndimage.gaussian_filter(y, s) - x) ** 2)) for y, x in zip(noisy, clean))
            for s in SIGMAS
        ]
        return {"sigma": np.array(SIGMAS[int(np.argmin(errors))])}

    def denoise(self, image, state, condition, pixel_size):
        return ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), float(state["sigma"]))
'''


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    """A folder on sys.path holding the blur family's module (``blur_family``); the registry, the
    declarations and the module cache are restored afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "blur_family.py").write_text(BLUR_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    registry.families()  # the built-in families register into the registry that is restored
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    families.entry_point_families.cache_clear()
    yield folder
    families.declare_config_families({})
    families.entry_point_families.cache_clear()
    for module in ("blur_family", "blur_declarations"):
        sys.modules.pop(module, None)


def blur_works(registered: type) -> None:
    """The blur family, found through the registry, fits and denoises like a classical family."""
    rng = np.random.default_rng(0)
    clean = [np.full((16, 16), 0.5, dtype=np.float32)]
    noisy = [c + rng.normal(0, 0.1, c.shape).astype(np.float32) for c in clean]
    method = registry.build({"family": "blur"})
    state = method.fit(noisy, clean)
    assert registered.kind == "classical" and float(state["sigma"]) == 2.0  # flat image: widest blur
    assert np.mean((method.denoise(noisy[0], state, None, 1.0) - clean[0]) ** 2) < np.mean((noisy[0] - clean[0]) ** 2)



def test_a_config_plugin_is_declared_and_registered(plugin_folder):
    families.declare_config_families({"blur": {"kind": "classical", "module": "blur_family"}})
    assert registry.method_kind({"family": "blur"}) == "classical"
    blur_works(registry.family("blur"))


def test_an_entry_point_declares_a_family(plugin_folder):
    # An installed distribution as pip leaves it: a dist-info folder with entry_points.txt.
    (plugin_folder / "blur_declarations.py").write_text('BLUR = {"kind": "classical", "module": "blur_family"}\n')
    dist_info = plugin_folder / "blur_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: blur-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[temdenoise.methods]\nblur = blur_declarations:BLUR\n")
    families.entry_point_families.cache_clear()
    assert families.declared_families()["blur"] == families.FamilyInfo("classical", "blur_family")
    blur_works(registry.family("blur"))
    # the same declaration in the config as well is accepted; a different one is refused
    families.declare_config_families({"blur": {"kind": "classical", "module": "blur_family"}})
    assert families.family_info("blur").module == "blur_family"
    families.declare_config_families({"blur": {"kind": "network", "module": "blur_family"}})
    with pytest.raises(ValueError, match="'blur' from config plugins is already declared"):
        families.declared_families()


def test_a_plugin_cannot_redeclare_a_builtin_family_or_omit_its_kind():
    try:
        families.declare_config_families({"wiener": {"kind": "network", "module": "elsewhere"}})
        with pytest.raises(ValueError, match="'wiener' from config plugins"):
            families.declared_families()
        with pytest.raises(TypeError, match="plugins.blur: a family declaration needs kind and module"):
            families.declare_config_families({"blur": {"module": "blur_family"}})
    finally:
        families.declare_config_families({})


@pytest.mark.slow
def test_a_plugin_family_runs_through_the_workflow(plugin_folder, workflow_runner, tmp_path):
    config = yaml.safe_load((REPO / "tests/configs/natural_only.yaml").read_text())
    config["datasets"]["natural"]["noise"] = {"gaussian": [25]}
    config["plugins"] = {"blur": {"kind": "classical", "module": "blur_family"}}
    config["methods"] = {"blur": {"family": "blur"}}
    config["benchmark"] = {"natural": ["blur"]}
    # jobs import the plugin from PYTHONPATH, as a user's own module would be found
    path = ":".join(filter(None, [str(plugin_folder), str(REPO / "src")]))
    workflow_runner(config, "results/tables/psnr_summary.csv", "--cores", "1", env={"PYTHONPATH": path})
    summary = pd.read_csv(tmp_path / "results/tables/psnr_summary.csv").set_index("method")
    assert set(summary.index) == {"noisy", "blur"}
    assert summary.loc["blur", "psnr_mean"] > summary.loc["noisy", "psnr_mean"]
    assert Path(tmp_path / "results/models/natural/blur/fit-gaussian-25.npz").is_file()
