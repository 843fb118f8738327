"""Test-time adaptation of pre-trained denoisers (GainTuning, Mohan et al., NeurIPS 2021)."""
