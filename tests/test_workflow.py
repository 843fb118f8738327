"""End to end: the tiny config (abTEM images and natural images) produces every table and figure, both
reports lead with the headline tables, and every table carries its provenance."""

import base64
import json
import re

import pandas as pd
import pytest
import torch

from conftest import REPO
from temdenoise.metrics import psnr_header
from test_html_report import headline_tables_of
from test_provenance import check_results_carry_provenance

pytestmark = pytest.mark.slow


def test_tiny_config_produces_tables_and_plots(workflow_runner, tmp_path):
    workflow_runner(REPO / "tests/configs/tiny.yaml")
    tables, plots = tmp_path / "results/tables", tmp_path / "results/plots"
    tidy = pd.read_csv(tables / "psnr.csv")
    assert set(tidy["dataset"]) == {"tem", "natural"}
    assert set(tidy["noise"]) == {"poisson-50", "poisson-400", "gaussian-25"}
    # one row per test image x method x condition, the noisy input always among the methods
    counts = tidy.groupby(["dataset", "noise", "method"]).size()
    assert counts.groupby(level=["dataset", "noise"]).nunique().eq(1).all()
    assert {"noisy", "wiener", "wavelet", "dncnn"} <= set(tidy.loc[tidy["dataset"] == "tem", "method"])
    # the per-dataset override (methods.dncnn.datasets.tem) reached training; denoising loaded
    # its weights (6 channels), so it built the same merged entry
    info = json.loads((tmp_path / "results/models/tem/dncnn/info.json").read_text())
    assert info["params"] == {"depth": 3, "channels": 6, "residual": False}
    assert len(pd.read_csv(tmp_path / "results/models/tem/dncnn/metrics.csv")) == 2  # recipe tiny_tem
    # training_seeds: the FoV gain's networks trained again with seed 3, their own weights, compared per seed
    models = tmp_path / "results/models/tem"
    for net in ("dncnn", "unet"):
        main, replicate = (torch.load(models / name / "model.pt", weights_only=True) for name in (net, f"{net}~seed3"))
        assert main.keys() == replicate.keys() and any(not torch.equal(main[k], replicate[k]) for k in main)
    gains = pd.read_csv(tmp_path / "results/tables/fov_gain.csv")
    assert sorted(gains["training_seed"].unique()) == [2, 3] and (gains["claim"] == "fov").all()
    claims = (tmp_path / "results/tables/claims.md").read_text()
    assert "fov_gain.csv" in claims and "over 2 seeds (min, max)" in claims
    summary = pd.read_csv(tables / "psnr_summary.csv").set_index(["dataset", "noise", "method"])["psnr_mean"]
    for (dataset, noise), group in summary.groupby(level=["dataset", "noise"]):
        noisy = group[(dataset, noise, "noisy")]
        for method in ("wiener", "wavelet"):
            assert group[(dataset, noise, method)] > noisy, (dataset, noise, method)
    markdown = (tables / "psnr_summary.md").read_text()
    assert "data_range" in markdown and "| wiener" in markdown
    # both TEM PSNR conventions (metrics.tem_psnr default), as columns and named in the headers
    tem_rows = tidy["dataset"] == "tem"
    assert tidy.loc[tem_rows, ["psnr_range", "psnr_seed_counts"]].notna().all().all()
    assert (tidy.loc[tem_rows, "psnr"] == tidy.loc[tem_rows, "psnr_range"]).all()
    assert tidy.loc[~tem_rows, ["psnr_range", "psnr_seed_counts"]].isna().all().all()  # natural: psnr only
    header = psnr_header(["range", "seed_counts"])
    assert header in markdown and "column psnr_seed_counts" in markdown
    tem_table = pd.read_csv(tables / "tem_table.csv")
    assert tem_table[["psnr_range_mean", "psnr_seed_counts_mean"]].notna().all().all()
    tem_markdown = (tables / "tem_table.md").read_text()
    assert header in tem_markdown and "PSNR range (dB)" in tem_markdown and "PSNR seed_counts (dB)" in tem_markdown
    assert "\\toprule" in (tables / "psnr_summary.tex").read_text()
    for name in ("psnr_vs_noise.png", "psnr_vs_noise.svg", "example_tem_poisson-50.png", "example_natural_gaussian-25.svg"):
        assert (plots / name).stat().st_size > 0, name
    # results/report.html opens with the headline tables and links the figures
    sections, links = headline_tables_of((tmp_path / "results/report.html").read_text())
    assert list(sections) == ["claims", "psnr_summary", "tem_table", "fov_gain", "data_stats_tem"]  # the claims first
    assert any(row[0] == "wiener" for row in sections["psnr_summary"])
    assert any(row[0].startswith("authors") for row in sections["data_stats_tem"])  # the data card, last
    assert any("dncnn" in cell for row in sections["tem_table"] for cell in row)
    assert "plots/psnr_vs_noise.png" in links
    # every rule wrote its log
    assert any((tmp_path / "results/logs").rglob("*.log"))
    check_results_carry_provenance(tmp_path / "results")
    # Snakemake's own report shows both headline tables as HTML tables under their caption
    workflow_runner(REPO / "tests/configs/tiny.yaml", "--report", str(tmp_path / "snakemake_report.html"))
    report = (tmp_path / "snakemake_report.html").read_text()
    assert '"1 Headline tables"' in report
    for table in ("psnr_summary", "tem_table", "data_stats_tem"):
        embedded = re.search(rf'"results/report/{table}\.html": \{{.*?"data_uri": "data:[^,]*;base64,([^"]+)"', report)
        assert embedded, table
        assert "<table>" in base64.b64decode(embedded.group(1)).decode(), table
