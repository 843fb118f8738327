"""Rule udvd_table: PSNR mean +- std of UDVD 1/3/5 frames vs supervised CNNs vs classical methods,
with paired differences over the test videos (and over training seeds)."""

from temdenoise.analysis.udvd import write_udvd_table
from temdenoise.runtime import job

with job(snakemake):
    write_udvd_table(snakemake.input.metrics, snakemake.input.frames, snakemake.params.entries,
                     snakemake.output.csv, snakemake.output.summary, snakemake.output.markdown,
                     snakemake.output.latex, snakemake.output.pairs, snakemake.params.main_seed)
