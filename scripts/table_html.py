"""Rule table_html: one headline table (Markdown) as an HTML page for `snakemake --report`."""

from temdenoise.html_report import write_table_page
from temdenoise.runtime import job

with job(snakemake):
    write_table_page(snakemake.input[0], snakemake.output[0])
