"""Rule provenance: results/provenance.json, the provenance of this run (temdenoise.provenance)."""

import json

from temdenoise.io import save_text
from temdenoise.provenance import record
from temdenoise.runtime import job

with job(snakemake) as run:
    save_text(snakemake.output[0], json.dumps(record(run.config), indent=2) + "\n")
