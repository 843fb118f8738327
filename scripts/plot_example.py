"""Rule plot_example: clean / noisy / every method on one test image, with a zoomed inset."""

from temdenoise.io import StackReader
from temdenoise.plots import example_panel
from temdenoise.runtime import job

with job(snakemake):
    index = snakemake.params.index
    stacks = [("clean", snakemake.input.clean), ("noisy", snakemake.input.noisy)]
    stacks += list(zip(snakemake.params.methods, snakemake.input.denoised))
    images = []
    for title, path in stacks:
        with StackReader(path) as stack:  # the one item shown, not the split
            item = stack[index]
        images.append((title, item[len(item) // 2] if item.ndim == 3 else item))
    example_panel(images, snakemake.output.png, snakemake.output.svg, snakemake.params.inset_fraction)
