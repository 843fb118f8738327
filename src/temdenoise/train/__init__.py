"""The training engine shared by every learned method (supervised CNNs, UDVD, GainTuning).

API (stable; UDVD and GainTuning build on it)
---------------------------------------------

:class:`~temdenoise.train.engine.Trainer` runs a generic optimisation loop::

    from temdenoise.train import Trainer, TrainSettings, supervised_mse

    trainer = Trainer(
        model,                      # any nn.Module
        sample_batch,               # BatchSampler: (rng: np.random.Generator) -> tuple[Tensor, ...]
        settings=TrainSettings(epochs=5, steps_per_epoch=100, lr=1e-3, schedule="plateau"),
        loss_fn=supervised_mse,     # LossFn: (model, batch_on_device) -> scalar Tensor
        validate=validate,          # (model) -> float, higher is better (val PSNR); None = skip
        out_dir="results/models/tem/unet",   # None = nothing on disk (e.g. GainTuning)
        device="auto",
        seed=0,
        parameters=None,            # iterable of tensors to optimise; None = model.parameters()
    )
    result = trainer.fit()          # TrainResult(best_score, best_epoch, history, stopped_early)

* **Batches.** ``sample_batch(rng)`` returns a tuple of CPU tensors (for supervised denoising
  ``(noisy, clean)``, each ``(B, C, H, W)``); the engine moves them to the device and passes the
  tuple to ``loss_fn(model, batch)``. All randomness of the sampler must come from ``rng``: the
  engine owns that generator, seeds it from ``seed`` and checkpoints its state, which is what makes
  a resumed run identical to an uninterrupted one.
* **Losses.** :func:`~temdenoise.train.engine.supervised_mse` is ``mse(model(batch[0]), batch[1])``.
  A self-supervised method (UDVD) passes its own ``loss_fn`` whose target is the noisy input.
* **Validation.** ``validate(model)`` is called once per epoch with the model in eval mode under
  ``torch.no_grad``; :func:`~temdenoise.train.validation.psnr_validation` builds the standard one
  (fixed noisy copies of validation images, mean PSNR of :mod:`temdenoise.metrics`). The best
  score's weights are kept (in memory and in ``last.pt``), the plateau scheduler and early stopping follow it.
* **Schedule.** ``TrainSettings.schedule``: ``constant``, ``multistep`` (``milestones`` in epochs,
  ``gamma``) or ``plateau`` (``ReduceLROnPlateau`` on the validation score, ``plateau_factor``,
  ``plateau_patience``). ``early_stopping`` = epochs without improvement before stopping (0 = off).
* **Files** (when ``out_dir`` is given): ``last.pt`` written atomically after every epoch (model,
  optimizer, scheduler, AMP scaler, sampler RNG, torch RNG, history, best score and weights);
  ``metrics.csv`` (epoch, loss, val_psnr, lr, seconds). ``fit()`` resumes from
  ``last.pt`` when present, so a killed job restarted by Snakemake continues where it stopped
  (only if the checkpoint's fingerprint, settings + seed + the caller's ``fingerprint`` dict, matches).
  :func:`Trainer.export` writes the final weights (best if validated, else last) to a path.
* **Callbacks.** ``callbacks=[fn]``, each ``fn(epoch: int, record: dict)`` after the epoch's
  checkpoint is written (logging, tests that simulate a kill).
* **Device / precision.** ``device="auto"`` is CUDA when present; ``TrainSettings.precision``
  (``fp32`` | ``bf16`` | ``auto``, :mod:`temdenoise.precision`) sets the arithmetic of the training
  steps; :attr:`TrainResult.precision` is the one used.

Data (:mod:`temdenoise.train.data`): :class:`NoiseRange` (``{kind: poisson|gaussian, range: [lo,
hi]}``; a level is drawn per sample, Gaussian sigma uniform, Poisson dose *log-uniform* because
PSNR varies with log dose), :func:`dihedral` (the 8 symmetries of the square) and
:class:`PatchSampler` (random patches of clean images, a random dihedral transform, noise drawn on
the fly with :mod:`temdenoise.noise`, so TEM networks see normalised intensity).

One call for the workflow: :func:`temdenoise.train.supervised.train_supervised`.
"""

from temdenoise.train.data import NoiseRange, PatchSampler, dihedral
from temdenoise.train.engine import LossFn, Trainer, TrainResult, TrainSettings, supervised_mse
from temdenoise.train.validation import psnr_validation

__all__ = [
    "LossFn",
    "NoiseRange",
    "PatchSampler",
    "TrainResult",
    "TrainSettings",
    "Trainer",
    "dihedral",
    "psnr_validation",
    "supervised_mse",
]
