"""Rule train: train one network supervised on one dataset (resumes from last.pt)."""

from pathlib import Path

from temdenoise.runtime import job
from temdenoise.train.supervised import train_supervised

with job(snakemake, seed=snakemake.params.seed) as run:
    train_supervised(
        snakemake.params.entry,
        snakemake.params.recipe,
        snakemake.params.train_noise,
        snakemake.params.domain,
        snakemake.input.train,
        snakemake.input.validation,
        str(Path(snakemake.output.model).parent),
        train_metadata=snakemake.input.train_metadata,
        validation_metadata=snakemake.input.validation_metadata,
        device=run.device,
        seed=run.seed,
        loader_workers=int(snakemake.resources.get("loader_workers", 0)),
    )
