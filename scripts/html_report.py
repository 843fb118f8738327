"""Rule html_report: a short page that opens with the headline tables and links the rest."""

from temdenoise.html_report import write_html_report
from temdenoise.runtime import job

with job(snakemake):
    write_html_report(snakemake.input.headline, snakemake.input.tables, snakemake.input.figures,
                      snakemake.input.provenance, snakemake.output[0], snakemake.params.title)
