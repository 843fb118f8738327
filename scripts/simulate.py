"""Rule simulate: one shard of structures of a simulated TEM dataset (stack + metadata)."""

from temdenoise.runtime import job

with job(snakemake) as run:
    # abTEM imports numba: import it only after job() has set NUMBA_NUM_THREADS.
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
