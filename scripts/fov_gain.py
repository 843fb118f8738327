"""Rule fov_gain: the FoV gain (UNet - DnCNN, paired 95% interval) against the FoV in angstroms."""

from temdenoise.analysis.fov_gain import write_fov_gain
from temdenoise.runtime import job

with job(snakemake):
    write_fov_gain(
        snakemake.input.metrics,
        {tuple(key): path for key, path in zip(snakemake.params.info_keys, snakemake.input.info)},
        dict(zip(snakemake.params.datasets, snakemake.input.metadata)),
        snakemake.params.entries,
        dict(snakemake.output.items()),
        snakemake.params.main_seed,
    )
