"""Rule prepare_images: one split of a scikit-image or folder image dataset."""

from temdenoise.io import save_stack, save_table
from temdenoise.natural import natural_split
from temdenoise.runtime import job

with job(snakemake):
    images, metadata = natural_split(snakemake.params.entry, snakemake.wildcards.split)
    save_stack(snakemake.output.stack, images)
    save_table(snakemake.output.metadata, metadata)
