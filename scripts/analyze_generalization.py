"""Rule generalization: PSNR table and plot of networks vs noise level, training ranges shaded, and
the paired bias-free vs biased differences."""

from temdenoise.analysis.generalization import run_generalization
from temdenoise.runtime import job

with job(snakemake):
    run_generalization(
        list(snakemake.input),
        snakemake.params.models,
        snakemake.params.train_noise,
        snakemake.wildcards.dataset,
        dict(snakemake.output.items()),
        snakemake.params.entries,
    )
