"""Rule train_noisy_images: train one image network by Noise2Self / Noise2Void / Noise2Noise on stored
noisy recordings (resumes from last.pt)."""

from pathlib import Path

from temdenoise.runtime import job
from temdenoise.train.noisy_images import train_noisy_images

with job(snakemake, seed=snakemake.params.seed) as run:
    train_noisy_images(
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
        train_second_paths=list(snakemake.input.train_second) or None,
        validation_second_paths=list(snakemake.input.validation_second) or None,
    )
