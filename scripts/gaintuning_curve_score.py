"""Rule gaintuning_curve_score: PSNR against GainTuning steps, scored on the clean test image."""

from temdenoise.adapt.experiments import score_curve_job
from temdenoise.runtime import job

with job(snakemake) as run:
    curve = snakemake.params.section["curve"]
    test = snakemake.params.section["cases"][curve["case"]]["test"]
    score_curve_job(
        steps_path=snakemake.input.steps,
        estimates_path=snakemake.input.estimates,
        clean_path=snakemake.input.clean,
        domain=run.config["datasets"][test]["domain"],
        tem_psnr=snakemake.params.tem_psnr,
        reference_counts=snakemake.params.reference_counts,
        noise=curve["noise"],
        title=f"{curve['case']}, {curve['noise']}",
        table_stem=snakemake.output[0][: -len(".csv")],
        figure_path=snakemake.output.figure,
    )
