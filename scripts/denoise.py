"""Rule denoise: apply one method to the noisy test split of one condition."""

from temdenoise.benchmark import denoise_split
from temdenoise.runtime import job

with job(snakemake) as run:
    denoise_split(
        snakemake.params.entry,
        snakemake.input.artifact or None,  # none for a classical family that fits nothing
        snakemake.input.noisy,
        snakemake.input.metadata,
        snakemake.wildcards.noise,
        run.device,
        snakemake.output[0],
    )
