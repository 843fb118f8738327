"""Rule data_stats: the data card of one split of a simulated TEM dataset (image statistics against
the TEM paper's released images; temdenoise.simulate.data_stats)."""

import logging

import pandas as pd

from temdenoise.io import load_stack, save_table, save_text
from temdenoise.runtime import job
from temdenoise.simulate import data_stats

with job(snakemake):
    metadata = pd.read_csv(snakemake.input.metadata)
    per_image = data_stats.split_stats(load_stack(snakemake.input.stack), metadata)
    Cs = float(metadata.Cs.iloc[0])
    table = data_stats.summary(per_image, Cs)
    card = data_stats.data_card(snakemake.wildcards.dataset, snakemake.params.split, per_image, table, Cs,
                                float(metadata.pixel_size.iloc[0]))
    warning = data_stats.lattice_warning(table)
    if warning:
        logging.getLogger("temdenoise").warning("%s: %s", snakemake.wildcards.dataset, warning)
    save_table(snakemake.output.csv, per_image)
    save_text(snakemake.output.markdown, card)
