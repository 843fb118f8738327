"""Rule gaintuning_net_bias: net bias of a network with biases before and after GainTuning."""

from temdenoise.adapt.experiments import net_bias_job
from temdenoise.runtime import job

with job(snakemake) as run:
    section = snakemake.params.section
    entry = section["cases"][section["net_bias"]["case"]]
    net_bias_job(
        section=section,
        entry=entry,
        selection_path=next(iter(snakemake.input.selection), None),
        model=(snakemake.input.model, snakemake.params.entries["model"]),
        noisy_paths=dict(zip(entry["noise"], snakemake.input.noisy)),
        metadata_path=snakemake.input.metadata,
        table_stem=snakemake.output[0][: -len(".csv")],
        figure_path=snakemake.output.figure,
        device=run.device,
        seed=run.seed,
    )
