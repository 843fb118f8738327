"""Rule plot_dataset: montage of clean images (or a video strip) of a simulated dataset."""

from temdenoise.runtime import job
from temdenoise.simulate.plots import plot_dataset

with job(snakemake):
    plot_dataset(snakemake.input.stack, snakemake.input.metadata, snakemake.output.png, snakemake.output.svg)
