"""Rule gaintuning_tables: summary tables of the GainTuning cases, one per case kind."""

from temdenoise.adapt.experiments import summary_job
from temdenoise.runtime import job

with job(snakemake):
    stems = {path.rsplit("_", 1)[1][: -len(".csv")]: path[: -len(".csv")] for path in snakemake.output if path.endswith(".csv")}
    summary_job(list(snakemake.input), snakemake.params.kinds, stems)
