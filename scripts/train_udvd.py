"""Rule train_udvd: train one UDVD on the stored noisy recordings of a video dataset (resumes from last.pt)."""

from pathlib import Path

from temdenoise.runtime import job
from temdenoise.train.self_supervised import train_udvd

with job(snakemake, seed=snakemake.params.seed) as run:
    train_udvd(
        snakemake.params.entry,
        snakemake.params.recipe,
        snakemake.params.conditions,
        list(snakemake.input.train),
        list(snakemake.input.validation),
        str(Path(snakemake.output.model).parent),
        train_metadata=snakemake.input.train_metadata,
        validation_metadata=snakemake.input.validation_metadata,
        device=run.device,
        seed=run.seed,
        loader_workers=int(snakemake.resources.get("loader_workers", 0)),
    )
