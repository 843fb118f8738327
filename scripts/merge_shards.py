"""Rule merge_shards: the shards of one split of a simulated dataset, as one stack + metadata."""

from temdenoise.runtime import job

with job(snakemake):
    # abTEM imports numba and dask: import it only after job() has limited their threads
    # (NUMBA_NUM_THREADS, DASK_NUM_WORKERS are read at import).
    from temdenoise.simulate.dataset import merge_shards

    merge_shards(snakemake.input.stacks, snakemake.input.metadata, snakemake.output.stack, snakemake.output.metadata)
