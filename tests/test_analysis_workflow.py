"""End to end: the robustness analyses (generalisation, net bias, equivalent filters) on a tiny config."""

from __future__ import annotations

import pandas as pd
import pytest

TINY_NET = {"depth": 3, "channels": 8}
NOISE = ["gaussian-15", "gaussian-90"]


def tiny_config() -> dict:
    return {
        "seed": 3,
        "datasets": {
            "natural": {
                "domain": "natural",
                "source": "skimage",
                "noise": {"gaussian": [25]},
                "train_noise": {"kind": "gaussian", "range": [0, 55]},
            }
        },
        "methods": {
            "dncnn": {"family": "dncnn", "params": {**TINY_NET, "bias_free": False}, "training": "tiny"},
            "bf_dncnn": {
                "family": "dncnn",
                "params": {**TINY_NET, "bias_free": True},
                "training": "tiny",
                "train_noise": {"kind": "gaussian", "range": [0, 30]},  # the method's own range wins
            },
        },
        "training": {
            "tiny": {"epochs": 1, "steps_per_epoch": 4, "batch_size": 4, "patch_size": 24, "validation_images": 1,
                     "progress": False}
        },
        "benchmark": {},
        "experiments": {
            "generalization": {"datasets": {"natural": {"models": ["dncnn", "bf_dncnn"], "noise": NOISE}}},
            "net_bias": {"patch": 10, "images": 1, "datasets": {"natural": {"models": ["dncnn", "bf_dncnn"], "noise": NOISE}}},
            "equivalent_filters": {
                "datasets": {"natural": {"models": ["bf_dncnn"], "noise": NOISE, "crop": 24, "window": 9}}
            },
        },
    }


@pytest.mark.slow
def test_analyses_run_end_to_end(tmp_path, workflow_runner) -> None:
    targets = [
        "results/tables/generalization_natural.md",
        "results/plots/net_bias_natural.png",
        "results/plots/equivalent_filters_natural_bf_dncnn.png",
    ]
    workflow_runner(tiny_config(), *targets)
    table = pd.read_csv(tmp_path / "results/tables/generalization_natural.csv")
    assert list(table["model"]) == ["noisy", "dncnn", "bf_dncnn"]
    assert set(table["score"]) == {"psnr"}  # natural images: one PSNR convention
    assert [c for c in table.columns if c not in ("score", "model", "trained on")] == ["15", "90"]
    noisy_psnr = table.set_index("model").loc["noisy", ["15", "90"]].astype(float)
    assert noisy_psnr.is_monotonic_decreasing
    assert list(table["trained on"]) == ["-", "gaussian [0, 55]", "gaussian [0, 30]"]
    for name in ("tables/generalization_natural.md", "tables/generalization_natural.tex",
                 "plots/generalization_natural.png", "plots/net_bias_natural.png",
                 "plots/effective_dim_natural.png", "plots/equivalent_filters_natural_bf_dncnn.png"):
        assert (tmp_path / "results" / name).stat().st_size > 0, name
    stats = pd.read_csv(tmp_path / "results/tables/net_bias_natural.csv")
    assert len(stats) == 2 * len(NOISE)
    relative = stats["net_bias_norm"] / stats["output_norm"]
    assert (relative[stats["method"] == "bf_dncnn"] < 1e-5).all()
    assert (relative[stats["method"] == "dncnn"] > 1e-4).all()
