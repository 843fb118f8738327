"""Rules evaluate / evaluate_video: per-image (and for videos per-frame) PSNR and SSIM of one estimate."""

from temdenoise.benchmark import evaluate_split
from temdenoise.runtime import job

with job(snakemake):
    evaluate_split(
        snakemake.input.clean,
        snakemake.input.estimate,
        snakemake.input.metadata,
        snakemake.wildcards.dataset,
        snakemake.params.domain,
        snakemake.params.tem_psnr,
        snakemake.params.reference_counts,
        snakemake.wildcards.noise,
        snakemake.wildcards.model,
        snakemake.output.scores,
        snakemake.output.get("frames"),
    )
