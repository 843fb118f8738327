"""Rule train_real: train a UDVD on the thinned halves of a dataset's recordings only (resumes from last.pt)."""

from pathlib import Path

from temdenoise.runtime import job
from temdenoise.train.self_supervised import train_udvd

with job(snakemake, seed=snakemake.params.seed) as run:
    # the thinned recordings are both the training and the (blind-spot) validation data: no other data exist
    train_udvd(
        snakemake.params.entry,
        snakemake.params.recipe,
        [snakemake.params.condition],
        [snakemake.input.recordings],
        [snakemake.input.recordings],
        str(Path(snakemake.output.model).parent),
        train_metadata=snakemake.input.metadata,
        validation_metadata=snakemake.input.metadata,
        device=run.device,
        seed=run.seed,
    )
