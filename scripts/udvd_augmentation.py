"""Rule udvd_augmentation: UDVD trained on single noisy videos (augmentation x early stopping);
writes the denoised videos and the runs. Reads the noisy test videos only."""

from temdenoise.analysis.udvd import run_augmentation_study
from temdenoise.runtime import job

with job(snakemake, seed=snakemake.params.seed) as run:
    run_augmentation_study(
        snakemake.params.entry,
        snakemake.params.recipe,
        snakemake.input.noisy,
        snakemake.params.section,
        run.device,
        run.seed,
        snakemake.output.runs,
        snakemake.output.estimates,
    )
