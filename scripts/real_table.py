"""Rule real_table: rank networks on a dataset's thinned recordings by the thinning PSNR estimate."""

from pathlib import Path

from temdenoise.realdata import rank_dataset
from temdenoise.runtime import job

with job(snakemake) as run:
    rank_dataset(
        str(Path(snakemake.input["items.csv"]).parent),
        [Path(model).parent for model in snakemake.input.models],
        snakemake.output.table.removesuffix(".csv"),
        snakemake.wildcards.dataset,
        run.device,
    )
