"""Rule udvd_motion: equivalent filters of a multi-frame UDVD vs the true simulated drift."""

from temdenoise.analysis.udvd import run_motion_study
from temdenoise.runtime import job

with job(snakemake) as run:
    run_motion_study(
        snakemake.params.entry,
        snakemake.input.weights,
        snakemake.input.noisy,
        snakemake.input.metadata,
        snakemake.params.section,
        run.device,
        snakemake.output.csv,
        snakemake.output.markdown,
        snakemake.output.png,
    )
