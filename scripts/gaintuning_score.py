"""Rule gaintuning_score: per-image PSNR/SSIM of a case's estimates against the clean test images."""

from temdenoise.adapt.experiments import score_case_job
from temdenoise.runtime import job

with job(snakemake):
    score_case_job(
        adaptation_path=snakemake.input.adaptation,
        estimates_path=snakemake.input.estimates,
        clean_path=snakemake.input.clean,
        metadata_path=snakemake.input.metadata,
        domain=snakemake.params.domain,
        tem_psnr=snakemake.params.tem_psnr,
        reference_counts=snakemake.params.reference_counts,
        table_path=snakemake.output.table,
        figure_path=snakemake.output.figure,
    )
