"""Rule fit_classical: fit a classical method on the training pairs of one noise condition."""

from temdenoise.benchmark import fit_classical
from temdenoise.runtime import job

with job(snakemake):
    fit_classical(snakemake.params.entry, snakemake.input.noisy, snakemake.input.clean, snakemake.output[0])
