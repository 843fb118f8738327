"""Rule gaintuning_case: GainTuning on the test images of one case, against the compared models."""

from temdenoise.adapt.experiments import case_job
from temdenoise.runtime import job

with job(snakemake) as run:
    entry = snakemake.params.entry
    entries = snakemake.params.entries
    case_job(
        case=snakemake.wildcards.case,
        section=snakemake.params.section,
        entry=entry,
        pretrained=(snakemake.input.model, entries["model"]),
        compared={
            m: (path, entries["compared"][m]) for m, path in zip(entry.get("compare", []), snakemake.input.compared)
        },
        noisy_paths=dict(zip(entry["noise"], snakemake.input.noisy)),
        clean_path=snakemake.input.clean,
        metadata_path=snakemake.input.metadata,
        domain=run.config["datasets"][entry["test"]]["domain"],
        table_path=snakemake.output.table,
        gains_path=snakemake.output.gains,
        figure_path=snakemake.output.figure,
        device=run.device,
        seed=run.seed,
        log=run.log,
    )
