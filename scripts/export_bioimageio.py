"""Rule export_bioimageio: a trained TEM image network as a BioImage Model Zoo package (extra .[bioimageio])."""

from pathlib import Path

from temdenoise.export import export_bioimageio
from temdenoise.runtime import job

with job(snakemake, seed=snakemake.params.seed) as run:
    export_bioimageio(Path(snakemake.input.model).parent, snakemake.output[0], snakemake.input.validation, seed=run.seed)
