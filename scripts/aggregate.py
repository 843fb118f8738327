"""Rule aggregate: the tidy PSNR table, its Markdown / LaTeX summaries and the paired differences."""

from temdenoise.benchmark import collect_metrics, write_tables
from temdenoise.runtime import job

with job(snakemake):
    out = snakemake.output
    write_tables(collect_metrics(snakemake.input), out.csv, out.summary, out.markdown, out.latex, out.pairs)
