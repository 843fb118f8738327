"""Rule piecewise_images: one split of a synthetic piecewise-constant dataset."""

from temdenoise.adapt.piecewise import piecewise_split
from temdenoise.io import save_stack, save_table
from temdenoise.runtime import job

SPLIT_OFFSET = {"train": 0, "validation": 1, "test": 2}

with job(snakemake) as run:
    settings = {"size": 64, "rectangles": 6, "train": 64, "validation": 4, "test": 4, **snakemake.params.settings}
    split = snakemake.wildcards.split
    images, metadata = piecewise_split(
        settings[split], settings["size"], settings["rectangles"], seed=run.seed * 3 + SPLIT_OFFSET[split]
    )
    save_stack(snakemake.output.stack, images)
    save_table(snakemake.output.metadata, metadata)
