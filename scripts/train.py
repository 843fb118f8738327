"""Rules train and train_udvd: train one network on one dataset (resumes from last.pt)."""

from pathlib import Path

from temdenoise.runtime import job
from temdenoise.train import train_method

with job(snakemake, seed=snakemake.params.seed) as run:
    train_method(
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
    )
