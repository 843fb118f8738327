"""Result tables of the study's experiments (beyond the main PSNR table of :mod:`temdenoise.benchmark`)."""
