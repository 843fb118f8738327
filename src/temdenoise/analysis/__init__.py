"""Analyses of trained denoisers: Jacobian (adaptive filters, net bias, subspace) and robustness
to noise levels outside the training range (:mod:`~temdenoise.analysis.jacobian`,
:mod:`~temdenoise.analysis.generalization`)."""
