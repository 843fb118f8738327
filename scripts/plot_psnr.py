"""Rule plot_psnr: PSNR against noise level."""

import pandas as pd

from temdenoise.plots import psnr_vs_noise
from temdenoise.runtime import job

with job(snakemake):
    psnr_vs_noise(pd.read_csv(snakemake.input[0]), snakemake.output.png, snakemake.output.svg)
