"""The claims table: every claim read from the tagged rows of a run's tables, none typed by hand."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from conftest import REPO
from temdenoise.claims import BIAS_FREE, CLAIMS, CNN_CLASSICAL, FRAMES, FOV, claim_rows, claims_markdown, outcome
from temdenoise.report.pairs import compare_pairs


def _tidy(gains: dict[str, float], units: int = 6, seed: int = 0) -> pd.DataFrame:
    """Scores of methods on ``units`` structures of two defoci each, ``gains`` above a base (noise 0.05 dB)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(20, 30, units * 2)
    return pd.DataFrame([
        {"noise": "poisson-20", "method": method, "image": i, "unit": f"s{i // 2}", "unit_kind": "structure",
         "psnr": base[i] + gain + rng.normal(0, 0.05)}
        for method, gain in gains.items() for i in range(units * 2)])


def test_claims_are_read_from_the_tagged_rows_with_their_table(tmp_path):
    # the DnCNN beats the Wiener filter by 1 dB on every structure: reproduced; the UDVD frames
    # claim holds for 3 > 1 but 5 frames are below 3: opposite
    tem = compare_pairs(_tidy({"dncnn": 1.0, "wiener": 0.0, "wavelet": -1.0}), {}, [("dncnn", "wiener")],
                        by=["noise"], item=["image"], claims={("dncnn", "wiener"): CNN_CLASSICAL})
    tem.to_csv(tmp_path / "tem_table_pairs.csv", index=False)
    frames = [("udvd3", "udvd1"), ("udvd5", "udvd3")]
    udvd = compare_pairs(_tidy({"udvd1": 0.0, "udvd3": 1.0, "udvd5": 0.5}), {}, frames, by=["noise"], item=["image"],
                         claims=dict.fromkeys(frames, FRAMES))
    udvd.to_csv(tmp_path / "udvd_table_pairs.csv", index=False)
    rows = claim_rows([tmp_path / "tem_table_pairs.csv", tmp_path / "udvd_table_pairs.csv"])
    assert set(rows["claim"]) == {CNN_CLASSICAL, FRAMES}
    assert rows.loc[rows["claim"] == CNN_CLASSICAL, "table"].tolist() == ["tem_table_pairs.csv"]
    assert outcome(rows[rows["claim"] == CNN_CLASSICAL]) == "reproduced"
    assert outcome(rows[rows["claim"] == FRAMES]).startswith("opposite in poisson-20")
    assert outcome(rows[rows["claim"] == BIAS_FREE]) == "not measured"
    markdown = claims_markdown(rows, "config/config.yaml (seed 0)")
    summary = markdown.split("\n\n")[1]
    assert all(CLAIMS[key].statement in summary for key in CLAIMS) and "not measured" in summary
    assert re.search(r"\| \+(0\.9\d|1\.0\d) to \+(0\.9\d|1\.0\d) dB, 1 row over 6 structures +\|", summary)
    assert re.search(r"\| tem_table_pairs.csv \| poisson-20 \| dncnn − wiener \| \+(0\.9\d|1\.0\d) dB \[", markdown)
    assert "6 structures" in markdown


def test_a_claim_over_training_seeds_needs_every_seed(tmp_path):
    # the FoV gain holds with seeds 0 and 1, not with seed 2
    parts = []
    for seed, gain in ((0, 1.0), (1, 0.9), (2, -0.2)):
        pairs = compare_pairs(_tidy({"unet": gain, "dncnn": 0.0}, seed=seed), {}, [("unet", "dncnn")], by=["noise"],
                              item=["image"])
        parts.append(pairs.assign(training_seed=seed, dataset="tem", claim=FOV)
                     .rename(columns={"a": "model", "b": "reference"}))
    pd.concat(parts).to_csv(tmp_path / "fov_gain.csv", index=False)
    rows = claim_rows([tmp_path / "fov_gain.csv"])
    assert len(rows) == 1 and rows["seeds"].iloc[0] == 3 and rows["verdict"].iloc[0] == "not resolved"
    assert "over 3 seeds (min, max)" in rows["interval"].iloc[0]


def test_readme_types_no_interval_outside_the_blocks_copied_from_result_files():
    """Every paired difference README states comes from a result file (a docs_fill block)."""
    text = (REPO / "README.md").read_text()
    outside = re.sub(r"<!-- fill: \S+ -->\n.*?<!-- /fill -->", "", text, flags=re.DOTALL)
    typed = re.findall(r"[+-]\d+\.\d+ ?(?:dB)? ?\[[+-]\d", outside)
    assert not typed, f"README states intervals typed by hand: {typed}"
    assert "<!-- fill: results/tables/claims_summary.md -->" in text


def test_readme_and_docs_results_show_the_same_claims_table():
    """README's claims table is the summary at the top of docs/results.md's claims block, line for line."""
    def filled(path, source):
        text = (REPO / path).read_text()
        return re.search(rf"<!-- fill: results/tables/{source} -->\n(.*?)<!-- /fill -->", text, re.S)[1]

    def table(block):
        return [line for line in block.split("\n\n")[1].splitlines() if line.startswith("|")]

    readme, results = filled("README.md", "claims_summary.md"), filled("docs/results.md", "claims.md")
    assert table(readme) and table(readme) == table(results)
