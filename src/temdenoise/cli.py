"""The ``temdenoise`` command: ``denoise`` a user's recordings with a trained model, ``score``
models on them without ground truth (:mod:`temdenoise.realdata`), ``export`` a trained model as a
BioImage Model Zoo package (:mod:`temdenoise.export`).

A failing file is reported on one line and the others are processed; the command then exits
with status 1 and a summary. Outputs are written atomically: nothing partial is left.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="files (DM3/DM4, EMD, SER/EMI, MRC, TIFF) or folders of them")
    parser.add_argument("--pixel-size", type=float, help="pixel size in A (default: the file's calibration)")
    parser.add_argument("--dose", type=float, help="dose in e/A^2 per image or frame (default: metadata, else "
                        "estimated from the mean counts)")
    parser.add_argument("--counts-per-unit", type=float, help="electrons per stored value, zero level 0 (default: the "
                        "detector gain and zero level estimated from an integer recording; needed for a STEM image)")
    parser.add_argument("--signal", metavar="TITLE", help="the signal to read in a file of several (default: its TEM "
                        "image, else its STEM image, the largest)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--tile", type=int, default=512, help="tile side for supervised nets (0: whole image)")
    parser.add_argument("--resample", action=argparse.BooleanOptionalAction, default=True,
                        help="resample to the model's pixel size when it differs by >10%% (else refuse)")
    parser.add_argument("--max-resample", type=float, default=4.0, metavar="ZOOM",
                        help="refuse a resampling by more than this factor, either way (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the thinning (score) and of GainTuning (denoise)")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="temdenoise", description=__doc__.split("\n\n")[0])
    commands = main.add_subparsers(dest="command", required=True)
    denoise = commands.add_parser("denoise", help="denoise recordings with a trained model")
    _common(denoise)
    denoise.add_argument("--model", required=True, help="a trained model folder, results/models/<dataset>/<model>")
    denoise.add_argument("--out", required=True, help="output folder: <name>.denoised.tif + .json at each input's path "
                         "relative to the inputs' common folder")
    denoise.add_argument("--gaintune", metavar="SELECTION_JSON",
                         help="adapt the gains on each file with the setting (loss, lr, steps) that the workflow's "
                         "validation chose: results/adapt/<case>/selection.json")
    denoise.add_argument("--gaintune-crop", type=int, default=256, help="side of the central crop GainTuning adapts on")
    score = commands.add_parser("score", help="rank models on recordings by the thinning PSNR estimate")
    _common(score)
    score.add_argument("--models", nargs="+", required=True, help="trained model folders")
    score.add_argument("--out", required=True, help="output prefix: <out>.csv, <out>.md, <out>.scores.csv")
    score.add_argument("--fraction", type=float, default=0.5, help="binomial thinning fraction (input dose = f x D)")
    export = commands.add_parser("export", help="write a trained model as a BioImage Model Zoo package (Fiji / "
                                 "deepImageJ, ilastik, napari, careamics); needs the extra .[bioimageio]")
    export.add_argument("model", help="a trained model folder, results/models/<dataset>/<model>")
    export.add_argument("--bioimageio", required=True, metavar="OUT_ZIP", help="the package to write (.zip)")
    export.add_argument("--validation", help="clean validation stack of the test image (default: "
                        "results/data/<dataset>/validation.npz beside the model's results/models)")
    export.add_argument("--author", action="append", help="an author of the package (repeatable; default: "
                        "temdenoise contributors)")
    return main


def export(args: argparse.Namespace) -> int:
    """``temdenoise export``: the package's path on stdout; exit status 2 with one line on an error."""
    try:
        from temdenoise.export import export_bioimageio

        path = export_bioimageio(args.model, args.bioimageio, args.validation, args.author)
    except ModuleNotFoundError as error:
        if error.name != "bioimageio":
            raise
        print(f"temdenoise export: {error}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as error:
        print(f"temdenoise export: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "export":
        return export(args)
    from temdenoise import realdata
    from temdenoise.runtime import resolve_device

    gaintune = getattr(args, "gaintune", None)
    settings = realdata.ApplySettings(
        device=resolve_device(args.device), tile=args.tile or None, resample=args.resample, max_resample=args.max_resample,
        gaintune=json.loads(Path(gaintune).read_text())["chosen"] if gaintune else None,
        gaintune_source=str(Path(gaintune).resolve()) if gaintune else "",
        gaintune_crop=getattr(args, "gaintune_crop", 256), seed=args.seed,
    )
    stated = realdata.Stated(args.pixel_size, args.dose, args.counts_per_unit, args.signal)
    try:
        if args.command == "denoise":
            failures = realdata.denoise_files(args.inputs, args.model, args.out, settings, stated)
        else:
            items, failures = realdata.thin_files(args.inputs, args.fraction, args.seed, stated)
            if items:
                scores = realdata.score_items(items, args.models, settings)
                table = realdata.write_ranking(scores, args.out, f"Ranking on {len(items)} file(s)", args.fraction)
                print(table.to_string(index=False))
    except (FileNotFoundError, ValueError) as error:
        print(f"temdenoise {args.command}: {error}", file=sys.stderr)
        return 2
    if failures:
        print(f"temdenoise {args.command}: {len(failures)} file(s) failed:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0
