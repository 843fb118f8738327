"""Rule claims: the study's claims beside the table rows of this run that test them."""

from pathlib import Path

from temdenoise.claims import claim_rows, claims_markdown, claims_summary
from temdenoise.io import save_table, save_text
from temdenoise.runtime import job

with job(snakemake):
    rows = claim_rows([Path(path) for path in snakemake.input])
    save_table(snakemake.output.csv, rows)
    save_text(snakemake.output.markdown, claims_markdown(rows, snakemake.params.run))
    save_text(snakemake.output.summary, claims_summary(rows, snakemake.params.run))
