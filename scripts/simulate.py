"""Rule simulate: one shard of structures of a simulated TEM dataset (stack + metadata)."""

from temdenoise.runtime import job

with job(snakemake) as run:
    # abTEM imports numba and dask: import it only after job() has limited their threads
    # (NUMBA_NUM_THREADS, DASK_NUM_WORKERS are read at import).
    from temdenoise.simulate.dataset import write_shard

    write_shard(
        snakemake.params.settings,
        snakemake.wildcards.dataset,
        snakemake.wildcards.split,
        int(snakemake.wildcards.shard),
        run.seed,
        snakemake.output.stack,
        snakemake.output.metadata,
    )
