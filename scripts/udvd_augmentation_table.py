"""Rule udvd_augmentation_table: score the single-video UDVD runs against the clean test videos."""

from temdenoise.analysis.udvd import write_augmentation_table
from temdenoise.runtime import job

with job(snakemake):
    write_augmentation_table(
        snakemake.input.runs,
        snakemake.input.estimates,
        snakemake.input.clean,
        snakemake.input.noisy,
        snakemake.params.section,
        snakemake.params.domain,
        snakemake.params.tem_psnr,
        snakemake.params.reference_counts,
        snakemake.output.csv,
        snakemake.output.markdown,
    )
