"""Rule udvd_augmentation: UDVD trained on single noisy videos, with/without augmentation and early stopping."""

from temdenoise.analysis.udvd import run_augmentation_study
from temdenoise.runtime import job

with job(snakemake, seed=snakemake.params.seed) as run:
    run_augmentation_study(
        snakemake.params.entry,
        snakemake.params.recipe,
        snakemake.input.clean,
        snakemake.input.noisy,
        snakemake.params.section,
        snakemake.params.domain,
        run.device,
        run.seed,
        snakemake.output.csv,
        snakemake.output.markdown,
    )
