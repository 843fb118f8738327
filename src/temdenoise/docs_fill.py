"""Copy result files into the documentation, so that no figure in docs/ is typed by hand.

A Markdown page marks each copied block with the file it comes from::

    <!-- fill: results/tables/data_stats_tem_regime.md -->
    (replaced by the file's text)
    <!-- /fill -->

``python -m temdenoise.docs_fill docs/SIMULATION.md [--root RUN_DIR]`` replaces every block by the
current text of its file (paths relative to ``--root``, the run's directory; default the working
directory; ``--only PATH ...`` replaces only the blocks of those files, so a page whose blocks come
from different runs is filled one run at a time); a file that is not Markdown (a benchmark's printed output) goes inside a ``text`` code
fence. A missing file is an error naming it, and the page is rewritten atomically.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Collection

from temdenoise.io import save_text

BLOCK = re.compile(r"(<!-- fill: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- /fill -->)", re.DOTALL)


def fill(page: str, root: Path, only: Collection[str] | None = None) -> str:
    """``page`` with every fill block (those naming a path of ``only``, when given) holding the text
    of its file under ``root``."""
    def replace(match: re.Match) -> str:
        if only is not None and match["path"] not in only:
            return match[0]
        source = root / match["path"]
        if not source.is_file():
            raise FileNotFoundError(f"fill block names {match['path']}, not found under {root}")
        text = source.read_text().rstrip()
        if source.suffix != ".md":   # printed output, not Markdown: shown as it was printed
            text = f"```text\n{text}\n```"
        return f"{match[1]}{text}\n{match[4]}"

    return BLOCK.sub(replace, page)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--root", type=Path, default=Path("."), help="directory the blocks' paths are relative to")
    parser.add_argument("--only", nargs="+", metavar="PATH", help="fill only the blocks naming these paths")
    args = parser.parse_args(argv)
    for page in args.pages:
        save_text(page, fill(page.read_text(), args.root, args.only))


if __name__ == "__main__":
    main()
