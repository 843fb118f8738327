"""Rule export_tiff: a split of a simulated dataset as a float32 TIFF stack (Fiji / napari)."""

from temdenoise.runtime import job

with job(snakemake):
    # abTEM imports numba and dask: import it only after job() has limited their threads
    # (NUMBA_NUM_THREADS, DASK_NUM_WORKERS are read at import).
    from temdenoise.simulate.dataset import export_split_tiff

    export_split_tiff(snakemake.input[0], snakemake.output[0])
