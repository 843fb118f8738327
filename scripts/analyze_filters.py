"""Rule equivalent_filters: adaptive filters of one network at chosen pixels, low to high noise."""

from temdenoise.analysis.filters import write_filter_figure
from temdenoise.runtime import job

with job(snakemake) as run:
    write_filter_figure(
        snakemake.params.entry,
        snakemake.input.weights,
        snakemake.input.clean,
        snakemake.input.metadata,
        snakemake.params.settings,
        f"{snakemake.wildcards.model} on {snakemake.wildcards.dataset}: equivalent filters (rows of A_y)",
        snakemake.params.seed,
        run.device,
        snakemake.output.png,
        snakemake.output.svg,
    )
