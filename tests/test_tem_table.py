"""The TEM table: parameters and FoV beside PSNR/SSIM, best model first per condition."""

from __future__ import annotations

import json

import pandas as pd

from temdenoise.report.tem_table import classical_info, write_tem_table


def test_tem_table_joins_metrics_with_parameters_and_fov(tmp_path):
    rows = []
    for noise, offset in (("poisson-50", 0.0), ("poisson-5", -5.0)):
        for method, psnr in (("wiener", 20.0), ("unet", 25.0), ("wavelet", 18.0)):
            for image in range(3):
                rows.append(("tem", noise, method, image, psnr + offset + image, 0.5))
    paths = []
    for (noise, method), part in pd.DataFrame(
        rows, columns=["dataset", "noise", "method", "image", "psnr", "ssim"]
    ).groupby(["noise", "method"]):
        path = tmp_path / f"{noise}-{method}.csv"
        part.to_csv(path, index=False)
        paths.append(str(path))
    (tmp_path / "info.json").write_text(json.dumps({"parameters": 1234, "fov": 52}))
    entries = {"wiener": {"family": "wiener", "params": {"kernel_size": 7}}, "wavelet": {"family": "wavelet"},
               "unet": {"family": "unet"}}
    table = write_tem_table(paths, {"unet": str(tmp_path / "info.json")}, entries,
                            str(tmp_path / "t.csv"), str(tmp_path / "t.md"), str(tmp_path / "t.tex"))
    # Highest dose first, then best PSNR first within a condition.
    assert table["noise"].tolist()[:3] == ["poisson-50"] * 3
    assert table["model"].tolist()[:3] == ["unet", "wiener", "wavelet"]
    first = table.iloc[0]
    assert (first["parameters"], first["fov"], first["psnr_mean"], first["psnr_std"]) == (1234, 52, 26.0, 1.0)
    assert table.set_index(["noise", "model"]).loc[("poisson-5", "wiener"), "parameters"] == 49
    markdown = (tmp_path / "t.md").read_text()
    assert "52x52" in markdown and "26.00 ± 1.00" in markdown and "data_range" in markdown
    assert "\\begin{table}" in (tmp_path / "t.tex").read_text()
    assert classical_info({"family": "wavelet"}) == {"parameters": 0, "fov": None}
