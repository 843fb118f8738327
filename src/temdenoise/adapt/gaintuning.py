"""GainTuning: test-time adaptation of a pre-trained denoiser, one gain per channel.

Implements Mohan, Vincent, Manzorro, Crozier, Fernandez-Granda & Simoncelli, "Adaptive denoising via
GainTuning", NeurIPS 2021. Every convolution of any ``nn.Module`` gets one multiplicative gain per
output channel, applied to its output by a forward hook and initialised to 1, so the wrapped model
is exactly the pre-trained one until the gains move. All pre-trained weights are frozen and only the
gains (about 0.1% of the parameters) are optimised on the single test image (or video) with a
self-supervised loss (:mod:`temdenoise.adapt.losses`). Mode ``all`` instead adapts every parameter,
the comparison of the paper: it overfits the noise of the image, gains only do not.

Normalisation layers stay in evaluation mode during adaptation (batch statistics of one image would
change the function being adapted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
import torch
from torch import nn

from temdenoise.adapt.losses import Loss
from temdenoise.train import Trainer, TrainSettings

MODES = ("gains", "all")


def _apply_gain(gain: nn.Parameter, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return output * gain.view(1, -1, *([1] * (output.ndim - 2)))


class GainTuning(nn.Module):
    """``model`` with a gain per output channel after every convolution (``mode="gains"``).

    With ``mode="all"`` no gain is inserted and every parameter of ``model`` is adapted instead.
    The wrapped model is modified in place (hooks, ``requires_grad``); call :meth:`remove` to
    detach the gains again.
    """

    def __init__(self, model: nn.Module, mode: str = "gains") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown GainTuning mode {mode!r}; expected one of {', '.join(MODES)}")
        self.model = model
        self.mode = mode
        self.gains = nn.ParameterDict()
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        for parameter in model.parameters():
            parameter.requires_grad_(mode == "all")
        if mode == "gains":
            for name, module in model.named_modules():
                if isinstance(module, nn.modules.conv._ConvNd):
                    weight = module.weight
                    gain = nn.Parameter(torch.ones(module.out_channels, dtype=weight.dtype, device=weight.device))
                    self.gains[name.replace(".", "/")] = gain  # ParameterDict keys may not contain "."
                    self._hooks.append(module.register_forward_hook(partial(_apply_gain, gain)))
            if not self.gains:
                raise ValueError(f"{type(model).__name__} has no convolution to attach gains to")

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        return self.model(noisy)

    def train(self, mode: bool = True) -> "GainTuning":
        """Keep the wrapped model in eval mode: adaptation must not switch normalisation layers to
        the batch statistics of the single test input."""
        super().train(mode)
        self.model.eval()
        return self

    def adapted_parameters(self) -> list[nn.Parameter]:
        """The parameters adaptation optimises (the gains, or every model parameter)."""
        return list(self.gains.values()) if self.mode == "gains" else list(self.model.parameters())

    def count(self) -> dict[str, int | float]:
        """Number of adapted parameters, of pre-trained parameters, and their ratio."""
        adapted = sum(p.numel() for p in self.adapted_parameters())
        pretrained = sum(p.numel() for p in self.model.parameters())
        return {"adapted_params": adapted, "model_params": pretrained, "adapted_fraction": adapted / pretrained}

    def gain_vector(self) -> np.ndarray:
        """All gains concatenated in layer order (the per-image record of an adaptation)."""
        return torch.cat([g.detach().flatten() for g in self.gains.values()]).cpu().numpy().astype(np.float32)

    def set_gain_vector(self, vector: np.ndarray) -> None:
        """Load gains saved by :meth:`gain_vector` (same model, same layer order)."""
        total = sum(g.numel() for g in self.gains.values())
        if len(vector) != total:
            raise ValueError(f"gain vector has {len(vector)} entries, the model has {total} gains")
        start = 0
        with torch.no_grad():
            for gain in self.gains.values():
                gain.copy_(torch.as_tensor(vector[start : start + gain.numel()]))
                start += gain.numel()

    def remove(self) -> None:
        """Detach the gain hooks (the model is its pre-trained self again)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()


@dataclass
class Adaptation:
    """Outcome of :func:`adapt`: the adapted estimate, the mean loss per monitoring period, and
    ``(step, value)`` pairs of the monitor."""

    estimate: torch.Tensor
    losses: list[float]
    monitored: list[tuple[int, float]] = field(default_factory=list)


def adapt(
    tuned: GainTuning,
    noisy: torch.Tensor,
    loss: Loss,
    *,
    steps: int,
    lr: float,
    monitor: Callable[[torch.Tensor], float] | None = None,
    monitor_every: int = 0,
    device: str = "cpu",
    seed: int = 0,
) -> Adaptation:
    """Optimise the adapted parameters of ``tuned`` on the single input ``noisy`` for ``steps`` steps.

    The loop is the training engine's (:class:`temdenoise.train.Trainer`: Adam, constant learning
    rate, nothing written to disk) with a "batch" that is always the test input. ``monitor`` (e.g.
    PSNR against the clean image, for analyses only) is evaluated on the estimate before adaptation
    and every ``monitor_every`` steps (which must divide ``steps``); it never steers the adaptation.
    """
    period = monitor_every or steps
    if steps and steps % period:
        raise ValueError(f"monitor_every ({monitor_every}) must divide the number of steps ({steps})")
    monitored: list[tuple[int, float]] = []
    tuned.to(device).eval()
    noisy = noisy.to(device)
    if monitor is not None:
        with torch.no_grad():
            monitored.append((0, float(monitor(tuned(noisy)))))
    losses: list[float] = []
    if steps:
        settings = TrainSettings(epochs=steps // period, steps_per_epoch=period, lr=lr, schedule="constant", progress=False)
        trainer = Trainer(
            tuned,
            lambda rng: (noisy,),
            settings,
            loss_fn=lambda model, batch: loss(model, batch[0]),
            validate=(lambda model: float(monitor(model(noisy)))) if monitor is not None else None,
            device=device,
            seed=seed,
            parameters=tuned.adapted_parameters(),
        )
        history = trainer.fit().history
        losses = [record["loss"] for record in history]
        if monitor is not None:
            monitored += [(int(record["epoch"]) * period, float(record["val_psnr"])) for record in history]
    tuned.eval()
    with torch.no_grad():
        estimate = tuned(noisy)
    return Adaptation(estimate=estimate, losses=losses, monitored=monitored)
