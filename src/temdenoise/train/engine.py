"""The generic, resumable training loop (see :mod:`temdenoise.train` for the API).

Resumability is exact on CPU, in float32 and under bfloat16 autocast (``precision``,
:mod:`temdenoise.precision`): the checkpoint holds everything that influences the next step
(weights and BatchNorm statistics, Adam moments, scheduler, float16 gradient scaler, the batch sampler's
NumPy generator and torch's RNG), and the validation function draws no random numbers, so a run
killed after any epoch and restarted ends with the same weights as an uninterrupted run.

Batches are built in this process (``loader_workers = 0``: one generator draws every batch in
turn) or in ``loader_workers`` DataLoader worker processes (:class:`SeededBatches`): then batch
``i`` of an epoch is drawn with its own generator seeded by ``(epoch seed, i)``, the epoch seed
being one draw of the trainer's generator at the start of the epoch. Batches are therefore the
same for any number of workers and after a resume (the checkpoint holds the generator).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from temdenoise.io import atomic_path, save_table
from temdenoise.precision import PRECISIONS, autocast, resolve_precision
from temdenoise.runtime import resolve_device

log = logging.getLogger("temdenoise")

SCHEDULES = ("constant", "multistep", "plateau")


class BatchSampler(Protocol):
    """Draws one training batch (a tuple of CPU tensors) using only ``rng``."""

    def __call__(self, rng: np.random.Generator) -> Sequence[torch.Tensor]: ...


class SeededBatches(torch.utils.data.Dataset):
    """Batches of ``sample_batch`` keyed by ``(epoch seed, step)``: each drawn with its own NumPy
    generator seeded by that key, so it does not depend on which worker process draws it."""

    def __init__(self, sample_batch: BatchSampler) -> None:
        self.sample_batch = sample_batch

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        return tuple(self.sample_batch(np.random.default_rng(list(key))))


class EpochSteps(torch.utils.data.Sampler):
    """The keys ``(epoch_seed, 0 .. steps - 1)`` of one epoch; ``epoch_seed`` is set in the main
    process before each epoch (persistent workers keep their copy of the dataset, not of this)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.epoch_seed = 0

    def __iter__(self):
        return iter([(self.epoch_seed, step) for step in range(self.steps)])

    def __len__(self) -> int:
        return self.steps


LossFn = Callable[[nn.Module, Sequence[torch.Tensor]], torch.Tensor]
"""``loss_fn(model, batch) -> scalar``; ``batch`` is the sampler's tuple moved to the device."""


def supervised_mse(model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean squared error between ``model(noisy)`` and ``clean`` for a batch ``(noisy, clean)``."""
    noisy, clean = batch[0], batch[1]
    return torch.nn.functional.mse_loss(model(noisy), clean)


@dataclass
class TrainSettings:
    """A training recipe (a ``training:`` config section). ``batch_size``, ``patch_size``,
    ``rotation_deg`` and ``rescale`` are read by the batch sampler (the last two by the supervised
    one only), ``validation_images`` by the validation set-up; the rest by the loop."""

    epochs: int = 10
    steps_per_epoch: int = 100
    batch_size: int = 16
    patch_size: int = 64
    lr: float = 1e-3
    schedule: str = "plateau"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.5
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    early_stopping: int = 0
    validation_images: int = 8
    precision: str = "fp32"
    channels_last: bool = False
    progress: bool = True
    rotation_deg: float = 0.0
    rescale: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"training.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.epochs < 1 or self.steps_per_epoch < 1:
            raise ValueError("training.epochs and training.steps_per_epoch must be >= 1")
        if self.precision not in PRECISIONS:
            raise ValueError(f"training.precision must be one of {PRECISIONS}, got {self.precision!r}")

    @classmethod
    def from_config(cls, recipe: dict[str, Any]) -> "TrainSettings":
        """From a ``training:`` recipe; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(recipe) - known)
        if unknown:
            raise ValueError(f"unknown training recipe keys {unknown}; known: {sorted(known)}")
        return cls(**recipe)


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`; ``history`` has one record per epoch (the metrics CSV rows)."""

    best_score: float
    best_epoch: int
    history: list[dict[str, float]]
    stopped_early: bool
    precision: str = "fp32"   # the arithmetic used (temdenoise.precision.resolve_precision)


class Trainer:
    """Adam + lr schedule + validation + best-weights + early stopping + resumable checkpoints."""

    def __init__(
        self,
        model: nn.Module,
        sample_batch: BatchSampler,
        settings: TrainSettings,
        loss_fn: LossFn = supervised_mse,
        validate: Callable[[nn.Module], float] | None = None,
        out_dir: str | os.PathLike | None = None,
        device: str = "auto",
        seed: int = 0,
        parameters: Iterable[torch.Tensor] | None = None,
        callbacks: Sequence[Callable[[int, dict[str, float]], None]] = (),
        fingerprint: dict[str, Any] | None = None,
        loader_workers: int = 0,
    ) -> None:
        if loader_workers < 0:
            raise ValueError(f"loader_workers must be >= 0, got {loader_workers}")
        self.device = resolve_device(device)
        # channels-last tensors: oneDNN's fast convolution layout on CPU (benchmarks/bench_train.py --precision)
        self.memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.sample_batch = sample_batch
        self.settings = settings
        self.loss_fn = loss_fn
        self.validate = validate
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks = list(callbacks)
        # What the run is (settings, seed and the caller's description such as the method entry and
        # noise range): a checkpoint of a different run is not resumed.
        # Batches in workers are drawn otherwise than in-process (module docstring): a checkpoint of
        # the other kind is not resumed. The in-process fingerprint is unchanged, so existing runs resume.
        batches = {"batches": "seeded per step"} if loader_workers else {}
        self.fingerprint = json.dumps({"settings": asdict(settings), "seed": seed, **batches, **(fingerprint or {})},
                                      sort_keys=True)
        self.loader_workers = loader_workers
        self._steps: EpochSteps | None = None
        self._loader: torch.utils.data.DataLoader | None = None
        trainable = [p for p in (model.parameters() if parameters is None else parameters) if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=settings.lr)
        self.scheduler = self._make_scheduler()
        self.precision = resolve_precision(settings.precision, self.device)
        # float16 (auto on a GPU without bfloat16) needs a gradient scaler; bfloat16 and float32 do not
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best_score = -float("inf")
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0
        self.finished = False
        self.stopped_early = False

    def _make_scheduler(self) -> Any:
        s = self.settings
        if s.schedule == "multistep":
            return torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=list(s.milestones), gamma=s.gamma)
        if s.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="max", factor=s.plateau_factor, patience=s.plateau_patience
            )
        return None

    # -- checkpoints -------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / "last.pt" if self.out_dir is not None else None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly."""
        state = {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "scaler": self.scaler.state_dict(),
            "sampler_rng": json.dumps(self.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state if self.best_state is not None else {},
            "bad_epochs": self.bad_epochs,
            "finished": self.finished,
            "stopped_early": self.stopped_early,
            "fingerprint": self.fingerprint,
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.rng.bit_generator.state = json.loads(state["sampler_rng"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.history = list(state["history"])
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.best_state = state["best_state"] or None
        self.bad_epochs = int(state["bad_epochs"])
        self.finished = bool(state["finished"])
        self.stopped_early = bool(state["stopped_early"])

    def save_checkpoint(self) -> None:
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(self.state_dict(), tmp)

    def resume(self) -> bool:
        """Load ``last.pt`` if it exists and belongs to this run; True when training resumed from it."""
        path = self.checkpoint_path
        if path is None or not path.exists():
            return False
        # Loaded on the CPU whatever the device: torch's RNG state must stay a CPU ByteTensor (loaded
        # onto CUDA, set_rng_state raises and the job could never resume); load_state_dict copies the
        # weights and the optimizer moves its state onto the parameters' device.
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("ignoring %s: it was written by a run with other settings", path)
            return False
        self.load_state_dict(state)
        log.info("resumed from %s after epoch %d", path, self.epoch)
        return True

    def export(self, path: str | os.PathLike) -> None:
        """Write the final weights (best validated epoch if validated, else the last) atomically."""
        state = self.best_state if self.best_state is not None else self.model.state_dict()
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    # -- the loop ----------------------------------------------------------------------------

    def _epoch_batches(self) -> Iterable[Sequence[torch.Tensor]]:
        """The CPU batches of the next epoch, in order (module docstring)."""
        steps = self.settings.steps_per_epoch
        if not self.loader_workers:
            return (self.sample_batch(self.rng) for _ in range(steps))
        if self._loader is None:
            self._steps = EpochSteps(steps)
            self._loader = torch.utils.data.DataLoader(
                SeededBatches(self.sample_batch), batch_size=None, sampler=self._steps,
                num_workers=self.loader_workers, persistent_workers=True,
                pin_memory=self.device.startswith("cuda"),
            )
        self._steps.epoch_seed = int(self.rng.integers(2**63))
        return self._loader

    def _train_epoch(self) -> float:
        self.model.train()
        losses = []
        batches = tqdm(
            self._epoch_batches(),
            total=self.settings.steps_per_epoch,
            desc=f"epoch {self.epoch + 1}/{self.settings.epochs}",
            disable=not self.settings.progress,
            leave=False,
        )
        for cpu_batch in batches:
            batch = [t.to(self.device, non_blocking=True,
                          memory_format=self.memory_format if t.dim() == 4 else torch.preserve_format)
                     for t in cpu_batch]
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.precision, self.device):
                loss = self.loss_fn(self.model, batch).float()
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            losses.append(loss.detach())
        # One device synchronisation per epoch, not per step.
        return float(torch.stack(losses).float().mean())

    def _score(self, loss: float) -> float:
        if self.validate is None:
            return -loss
        self.model.eval()
        with torch.no_grad():
            return float(self.validate(self.model))

    def _save_metrics(self) -> None:
        save_table(self.out_dir / "metrics.csv", pd.DataFrame(self.history))

    def fit(self) -> TrainResult:
        """Train until ``settings.epochs`` or early stopping, resuming from ``last.pt`` if present."""
        self.resume()
        while not self.finished:
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            loss = self._train_epoch()
            score = self._score(loss)
            self.epoch += 1
            if self.scheduler is not None:
                self.scheduler.step(score) if self.settings.schedule == "plateau" else self.scheduler.step()
            if score > self.best_score:
                self.best_score, self.best_epoch, self.bad_epochs = score, self.epoch, 0
                self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            else:
                self.bad_epochs += 1
            record = {
                "epoch": self.epoch,
                "loss": loss,
                "val_psnr": score if self.validate is not None else float("nan"),
                "lr": lr,
                "seconds": time.perf_counter() - started,
            }
            self.history.append(record)
            log.info("epoch %d: loss %.6g val_psnr %.3f lr %.3g (%.1f s)", *record.values())
            self.stopped_early = 0 < self.settings.early_stopping <= self.bad_epochs
            self.finished = self.stopped_early or self.epoch >= self.settings.epochs
            if self.out_dir is not None:
                self._save_metrics()
                self.save_checkpoint()
            for callback in self.callbacks:
                callback(self.epoch, record)
        self._loader = None  # ends the worker processes
        if self.out_dir is not None:
            # a job restarted after its last epoch resumes a finished run: the workflow removed
            # the job's outputs before restarting it, so the metrics are written again
            self._save_metrics()
        return TrainResult(self.best_score, self.best_epoch, list(self.history), self.stopped_early, self.precision)


def plot_history(history: Sequence[dict[str, float]], path: str | os.PathLike, title: str = "") -> None:
    """Training curve: loss (log scale) and validation PSNR against epoch, saved atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.DataFrame(list(history))
    figure, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(table["epoch"], table["loss"], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log")
    ax_psnr.plot(table["epoch"], table["val_psnr"], marker="o", color="tab:green")
    ax_psnr.set(xlabel="epoch", ylabel="validation PSNR (dB)")
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(figure)
