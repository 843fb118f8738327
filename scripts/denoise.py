"""Rule denoise: apply one method to the noisy test split of one condition."""

from temdenoise import registry
from temdenoise.benchmark import denoise_split
from temdenoise.runtime import job

with job(snakemake) as run:
    entry = snakemake.params.entry
    denoise_split(
        entry,
        snakemake.input.artifact or None,  # none for a classical family that fits nothing
        snakemake.input.noisy,
        snakemake.input.metadata,
        snakemake.wildcards.noise,
        # a classical method runs in numpy: asking torch for the device would cost its import (~3 s)
        run.device if registry.method_kind(entry) == "network" else "cpu",
        snakemake.output[0],
    )
