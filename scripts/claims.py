"""Rule claims: the study's claims beside the table rows of this run that test them."""

from pathlib import Path

from temdenoise.claims import write_claims
from temdenoise.runtime import job

with job(snakemake):
    write_claims([Path(path) for path in snakemake.input], snakemake.output.csv, snakemake.output.markdown,
                 snakemake.output.summary, snakemake.params.run)
