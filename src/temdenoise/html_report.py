"""A self-contained HTML page of every table and figure of a run (images embedded as base64).

``snakemake --report`` gives Snakemake's own interactive report; this page is the lighter one a
user can mail or put on a web page: tables as HTML, figures inline, one file.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Sequence

import pandas as pd

from temdenoise.io import save_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0 1.5em; }
"""


def _title(path: Path) -> str:
    return path.stem.replace("_", " ")


def write_html_report(tables: Sequence[str], figures: Sequence[str], out: str, title: str) -> None:
    """Write ``out``: every CSV table (as HTML) and every PNG figure (inline) under a heading each."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts.append("<h2>Tables</h2>")
    for path in map(Path, sorted(tables)):
        table = pd.read_csv(path)
        parts.append(f"<h3>{html.escape(_title(path))}</h3><p><code>{html.escape(str(path))}</code></p>")
        parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
    parts.append("<h2>Figures</h2>")
    for path in map(Path, sorted(figures)):
        encoded = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<h3>{html.escape(_title(path))}</h3><img alt='{html.escape(path.name)}' "
                     f"src='data:image/png;base64,{encoded}'>")
    parts.append("</body></html>")
    save_text(out, "\n".join(parts))
