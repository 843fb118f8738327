"""HTML renderings of the run's headline tables, and a short page that opens with them.

The tables are written as Markdown (pandas ``to_markdown``: headings, paragraphs, pipe tables, the
provenance footer line); :func:`markdown_to_html` renders exactly that subset, so no Markdown
library is needed. ``snakemake --report`` shows each headline table as one HTML page
(:func:`write_table_page`, rule ``table_html``); ``results/report.html``
(:func:`write_html_report`) is the page a user opens first: every headline table, then links to
the figures, the CSV tables and the provenance record.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Sequence

from temdenoise.io import save_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ccc; padding: 0.2em 0.6em; }
th { border-bottom: 2px solid #888; }
section.headline { margin-bottom: 2.5em; }
p.provenance { color: #777; font-size: 0.75em; }
"""
ALIGN = {(True, False): "left", (False, True): "right", (True, True): "center"}


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _table(rows: list[str]) -> str:
    """A pipe table (header, alignment row, body rows) as an HTML table."""
    header, rule, body = _cells(rows[0]), _cells(rows[1]), [_cells(row) for row in rows[2:]]
    aligns = [ALIGN.get((cell.startswith(":"), cell.endswith(":")), "left") for cell in rule]

    def row_html(cells: list[str], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag} style='text-align:{a}'>{html.escape(c)}</{tag}>"
                                for c, a in zip(cells, aligns)) + "</tr>"

    return ("<table><thead>" + row_html(header, "th") + "</thead><tbody>"
            + "".join(row_html(cells, "td") for cells in body) + "</tbody></table>")


def markdown_to_html(text: str, heading_offset: int = 0) -> str:
    """HTML of the Markdown the workflow writes: ``#`` headings (deepened by ``heading_offset``),
    pipe tables, and paragraphs (the provenance footer gets class ``provenance``)."""
    parts: list[str] = []
    # blocks are separated by blank lines; a pipe table is a block whose lines all start with "|"
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.strip().splitlines()
        heading = re.fullmatch(r"(#{1,6})\s+(.*)", lines[0])
        if heading:
            level = min(6, len(heading.group(1)) + heading_offset)
            parts.append(f"<h{level}>{html.escape(heading.group(2))}</h{level}>")
            lines = lines[1:]
        if not lines:
            continue
        if all(line.lstrip().startswith("|") for line in lines) and len(lines) >= 2:
            parts.append(_table(lines))
        else:
            paragraph = " ".join(line.strip() for line in lines)
            css = " class='provenance'" if paragraph.startswith("Provenance: ") else ""
            parts.append(f"<p{css}>{html.escape(paragraph)}</p>")
    return "\n".join(parts)


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def write_table_page(markdown: str, out: str) -> None:
    """``out``: one Markdown table as a standalone HTML page (for ``snakemake --report``)."""
    text = Path(markdown).read_text()
    title = next((line.lstrip("# ") for line in text.splitlines() if line.startswith("#")), Path(markdown).stem)
    save_text(out, _page(title, markdown_to_html(text)))


def _links(paths: Sequence[str], folder: Path) -> str:
    """A list of links to ``paths``, relative to the page's ``folder``."""
    items = "".join(f"<li><a href='{html.escape(os.path.relpath(p, folder))}'>{html.escape(Path(p).name)}</a></li>"
                    for p in paths)
    return f"<ul>{items}</ul>"


def write_html_report(
    headline: Sequence[str], tables: Sequence[str], figures: Sequence[str], provenance: str, out: str, title: str
) -> None:
    """Write ``out``: the ``headline`` Markdown tables (in the given order) rendered, then links to
    the ``figures``, the CSV ``tables`` and the ``provenance`` record."""
    folder = Path(out).parent
    sections = [f"<h1>{html.escape(title)}</h1>",
                "<p>Headline tables first; the figures, every CSV table (each with its provenance "
                "sidecar) and the run's provenance are linked below.</p>"]
    for path in map(Path, headline):
        # the table's files as written beside it (Markdown, CSV, LaTeX)
        files = [path.with_suffix(suffix) for suffix in (".md", ".csv", ".tex") if path.with_suffix(suffix).exists()]
        links = " · ".join(f"<a href='{html.escape(os.path.relpath(f, folder))}'>{html.escape(f.name)}</a>" for f in files)
        sections.append(f"<section class='headline' id='{html.escape(path.stem)}'>"
                        f"{markdown_to_html(path.read_text(), heading_offset=1)}<p>{links}</p></section>")
    sections += ["<h2>Figures</h2>", _links(sorted(figures), folder),
                 "<h2>Tables (CSV)</h2>", _links(sorted(tables), folder),
                 "<h2>Provenance</h2>", _links([provenance], folder)]
    save_text(out, _page(title, "\n".join(sections)))
