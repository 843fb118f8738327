"""Rule tem_table: the Electron Microscopy table (parameters, measured FoV, PSNR, SSIM, paired Δ)."""

from temdenoise.report.tem_table import write_tem_table
from temdenoise.runtime import job

with job(snakemake):
    write_tem_table(
        snakemake.input.metrics,
        dict(zip(snakemake.params.networks, snakemake.input.info)),
        snakemake.params.entries,
        snakemake.input.metadata,
        snakemake.output.csv,
        snakemake.output.markdown,
        snakemake.output.latex,
        snakemake.output.pairs,
        snakemake.params.pairs,
    )
