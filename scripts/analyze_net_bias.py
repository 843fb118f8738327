"""Rule net_bias: merged Jacobian statistics, net-bias and effective-dimensionality plots."""

from temdenoise.analysis.net_bias import run_jacobian_plots
from temdenoise.runtime import job

with job(snakemake):
    run_jacobian_plots(
        list(snakemake.input), snakemake.params.train_noise, snakemake.wildcards.dataset, dict(snakemake.output.items())
    )
