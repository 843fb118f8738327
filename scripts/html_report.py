"""Rule html_report: one self-contained HTML page of every table and figure."""

from temdenoise.html_report import write_html_report
from temdenoise.runtime import job

with job(snakemake):
    write_html_report(snakemake.input.tables, snakemake.input.figures, snakemake.output[0], snakemake.params.title)
