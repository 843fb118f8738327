"""Rule gaintuning_curve: estimates along the adaptation steps, gains only vs all parameters."""

from temdenoise.adapt.experiments import curve_job
from temdenoise.runtime import job

with job(snakemake) as run:
    section = snakemake.params.section
    curve_job(
        section=section,
        entry=section["cases"][section["curve"]["case"]],
        selection_path=next(iter(snakemake.input.selection), None),
        model=(snakemake.input.model, snakemake.params.entries["model"]),
        noisy_path=snakemake.input.noisy[0],
        noise=section["curve"]["noise"],
        metadata_path=snakemake.input.metadata,
        steps_path=snakemake.output.steps,
        estimates_path=snakemake.output.estimates,
        device=run.device,
        seed=run.seed,
    )
