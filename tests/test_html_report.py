"""The HTML renderings of the headline tables and the short results page (temdenoise.html_report).

``headline_tables_of`` reads a page's structure with the standard library's HTML parser; it is also
applied to a tiny run's page (tests/test_workflow.py). docs/ARCHITECTURE.md ("Reports") gives the
headless-Chromium check of the rendered page.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from temdenoise import provenance
from temdenoise.html_report import markdown_to_html, write_html_report, write_table_page
from temdenoise.io import save_text


class _Structure(HTMLParser):
    """Headline sections (by id) with the header and body cells of their tables, and every link."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self._section: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "headline" in attrs.get("class", ""):
            self._section = attrs["id"]
            self.sections[self._section] = []
        elif tag == "tr" and self._section is not None:
            self.sections[self._section].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self.links.append(attrs["href"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            if self._section is not None:
                self.sections[self._section][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "section":
            self._section = None


def headline_tables_of(page: str) -> tuple[dict[str, list[list[str]]], list[str]]:
    """The table rows of every headline section of ``page`` (by section id), and its links."""
    parser = _Structure()
    parser.feed(page)
    return parser.sections, parser.links


SUMMARY = pd.DataFrame({"gaussian-25": ["29.10 ± 0.50", "20.20 ± 0.10"]}, index=pd.Index(["wiener", "noisy"], name="method"))
MARKDOWN = f"# PSNR (dB), mean ± std\n\nConvention: range 1.\n\n## natural\n\n{SUMMARY.to_markdown()}\n"


def test_markdown_tables_become_html_tables():
    page = markdown_to_html(MARKDOWN + "\nProvenance: temdenoise 0.1.0.\n", heading_offset=1)
    assert "<h2>PSNR (dB), mean ± std</h2>" in page and "<h3>natural</h3>" in page
    assert "<p>Convention: range 1.</p>" in page and "<p class='provenance'>Provenance: temdenoise 0.1.0.</p>" in page
    assert page.count("<tr>") == 3 and "<th style='text-align:left'>method</th>" in page
    assert "<td style='text-align:left'>29.10 ± 0.50</td>" in page
    assert markdown_to_html("a <b> & c") == "<p>a &lt;b&gt; &amp; c</p>"


def test_the_page_opens_with_the_headline_tables_and_links_the_rest(tmp_path):
    results = tmp_path / "results"
    with provenance.recording({"seed": 1}) as entry:  # the tables' footers, as in a run
        save_text(results / "tables/psnr_summary.md", MARKDOWN)
        save_text(results / "tables/tem_table.md", "# TEM table\n\n| model | PSNR |\n|:--|--:|\n| unet | 30.1 |\n")
    save_text(results / "provenance.json", json.dumps(entry))
    headline = [str(results / "tables/psnr_summary.md"), str(results / "tables/tem_table.md")]
    figure, table = results / "plots/psnr_vs_noise.png", results / "tables/psnr.csv"
    write_html_report(headline, [str(table)], [str(figure)], str(results / "provenance.json"),
                      str(results / "report.html"), "results")
    page = (results / "report.html").read_text()
    sections, links = headline_tables_of(page)
    assert list(sections) == ["psnr_summary", "tem_table"]
    assert sections["psnr_summary"] == [["method", "gaussian-25"], ["wiener", "29.10 ± 0.50"], ["noisy", "20.20 ± 0.10"]]
    assert sections["tem_table"] == [["model", "PSNR"], ["unet", "30.1"]]
    assert page.index("<section") < page.index("plots/psnr_vs_noise.png")  # the tables come first
    assert {"plots/psnr_vs_noise.png", "tables/psnr.csv", "provenance.json", "tables/tem_table.md"} <= set(links)
    assert "tables/tem_table.csv" not in links  # only files that exist are linked
    assert page.count("class='provenance'") == 2  # each table's footer line
    write_table_page(headline[1], str(tmp_path / "tem_table.html"))
    single = (tmp_path / "tem_table.html").read_text()
    assert "<title>TEM table</title>" in single and "<td style='text-align:right'>30.1</td>" in single
