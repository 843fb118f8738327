"""Rule real_thin: split a dataset's recordings by binomial thinning (thinned halves, held-out halves)."""

from pathlib import Path

from temdenoise.realdata import thin_dataset
from temdenoise.runtime import job

with job(snakemake, seed=snakemake.params.seed) as run:
    thin_dataset(
        snakemake.input.recordings,
        snakemake.params.files,
        str(Path(snakemake.output[0]).parent),
        snakemake.wildcards.dataset,
        run.seed,
    )
