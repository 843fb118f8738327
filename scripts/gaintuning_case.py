"""Rule gaintuning_case: GainTuning on the noisy test items of one case; estimates of every compared model."""

from temdenoise.adapt.experiments import case_job
from temdenoise.runtime import job

with job(snakemake) as run:
    entry = snakemake.params.entry
    entries = snakemake.params.entries
    case_job(
        case=snakemake.wildcards.case,
        section=snakemake.params.section,
        entry=entry,
        selection_path=next(iter(snakemake.input.selection), None),
        pretrained=(snakemake.input.model, entries["model"]),
        compared={
            m: (path, entries["compared"][m]) for m, path in zip(entry.get("compare", []), snakemake.input.compared)
        },
        noisy_paths=dict(zip(entry["noise"], snakemake.input.noisy)),
        metadata_path=snakemake.input.metadata,
        adaptation_path=snakemake.output.adaptation,
        estimates_path=snakemake.output.estimates,
        gains_path=snakemake.output.gains,
        device=run.device,
        seed=run.seed,
        log=run.log,
    )
