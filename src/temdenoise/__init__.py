"""temdenoise: a reproducible benchmark of deep denoising for transmission electron microscopy.

The library behind the Snakemake workflow: abTEM simulation of supported nanoparticles, noise
models, classical and deep denoisers, the training engine, test-time adaptation and analyses.
"""

__version__ = "0.1.0"
