"""Rule jacobian_statistics: net bias, residual, noise norms and effective dimensionality of one network."""

from temdenoise.analysis.net_bias import write_jacobian_statistics
from temdenoise.runtime import job

with job(snakemake) as run:
    write_jacobian_statistics(
        snakemake.params.entry,
        snakemake.input.weights,
        snakemake.input.clean,
        snakemake.input.metadata,
        snakemake.params.noise,
        snakemake.params.settings,
        snakemake.wildcards.model,
        snakemake.params.seed,
        run.device,
        snakemake.output[0],
    )
