"""Rule udvd_motion: UDVD's implicit motion estimate vs the true motion, zero motion and optical flow."""

from temdenoise.analysis.udvd import run_motion_study
from temdenoise.runtime import job

with job(snakemake) as run:
    run_motion_study(
        snakemake.params.entry,
        {name: str(path) for name, path in snakemake.input.items()},
        {name: str(path) for name, path in snakemake.output.items()},
        snakemake.params.section,
        run.device,
    )
