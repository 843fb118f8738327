"""Rule gaintuning_select: choose a case's GainTuning loss / lr / steps on validation images."""

from temdenoise.adapt.experiments import select_job
from temdenoise.runtime import job

with job(snakemake) as run:
    entry = snakemake.params.entry
    select_job(
        case=snakemake.wildcards.case,
        section=snakemake.params.section,
        entry=entry,
        pretrained=(snakemake.input.model, snakemake.params.entries["model"]),
        noisy_paths=dict(zip(entry["noise"], snakemake.input.noisy)),
        clean_path=snakemake.input.clean,
        metadata_path=snakemake.input.metadata,
        domain=run.config["datasets"][entry["test"]]["domain"],
        json_path=snakemake.output.selection,
        table_path=snakemake.output.grid,
        device=run.device,
        seed=run.seed,
        log=run.log,
    )
