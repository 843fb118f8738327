"""Rule gaintuning_curve: PSNR vs adaptation steps, gains only vs all parameters."""

from temdenoise.adapt.experiments import curve_job
from temdenoise.runtime import job

with job(snakemake) as run:
    section = snakemake.params.section
    entry = section["cases"][section["curve"]["case"]]
    curve_job(
        section=section,
        entry=entry,
        model=(snakemake.input.model, snakemake.params.entries["model"]),
        noisy_path=snakemake.input.noisy[0],
        noise=section["curve"]["noise"],
        clean_path=snakemake.input.clean,
        metadata_path=snakemake.input.metadata,
        domain=run.config["datasets"][entry["test"]]["domain"],
        table_stem=snakemake.output[0][: -len(".csv")],
        figure_path=snakemake.output.figure,
        device=run.device,
        seed=run.seed,
    )
