"""Rule add_noise: the stored noisy copy of a clean split."""

from temdenoise.benchmark import write_noisy_split
from temdenoise.runtime import job

with job(snakemake):
    write_noisy_split(
        snakemake.input.clean,
        snakemake.input.metadata,
        snakemake.wildcards.noise,
        snakemake.params.seed,
        snakemake.output[0],
    )
