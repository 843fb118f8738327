"""Training engine: data sampling, exact resumption, schedules, early stopping, the workflow entry point."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from temdenoise.io import save_stack
from temdenoise.models import load_trained
from temdenoise.models.dncnn import DnCNN
from temdenoise.train import NoiseRange, PatchSampler, Trainer, TrainSettings, dihedral, psnr_validation
from temdenoise.train.data import warped_patch
from temdenoise.train.supervised import OUTPUTS, train_supervised


def lattice(rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A small crystal-like image: a product of cosines on a vacuum-like background (values near 1)."""
    y, x = np.mgrid[:size, :size]
    phase = rng.random(2) * 6
    return (1 - 0.4 * (np.cos(x / 2.1 + phase[0]) * np.cos(y / 2.3 + phase[1])) ** 2).astype(np.float32)


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return [lattice(rng) for _ in range(4)]


def test_dihedral_gives_the_eight_distinct_symmetries():
    square = np.arange(9.0).reshape(3, 3)
    results = {dihedral(square, k).tobytes() for k in range(8)}
    assert len(results) == 8
    with pytest.raises(ValueError):
        dihedral(square, 8)


def test_noise_range_draws_within_bounds_log_uniform_dose():
    rng = np.random.default_rng(0)
    doses = np.array([NoiseRange("poisson", 1, 100).draw(rng) for _ in range(4000)])
    assert doses.min() >= 1 and doses.max() <= 100
    assert 8 < np.median(doses) < 12.5  # log-uniform: median at the geometric mean, 10
    sigmas = np.array([NoiseRange("gaussian", 0, 50).draw(rng) for _ in range(4000)])
    assert 22 < np.median(sigmas) < 28
    with pytest.raises(ValueError, match="train_noise"):
        NoiseRange.from_config({"kind": "poisson", "range": [0, 10]})


def test_patch_sampler_is_unbiased_and_reproducible(images):
    sampler = PatchSampler(images, NoiseRange("poisson", 5, 5), patch_size=16, batch_size=64, pixel_sizes=[0.5] * 4)
    noisy, clean = sampler(np.random.default_rng(3))
    assert noisy.shape == clean.shape == (64, 1, 16, 16)
    # Poisson counts / (dose x pixel area) estimate the intensity without bias; variance I / (D p^2).
    assert abs(float((noisy - clean).mean())) < 0.02
    assert float(((noisy - clean) ** 2).mean() / clean.mean()) == pytest.approx(1 / (5 * 0.25), rel=0.1)
    again, _ = sampler(np.random.default_rng(3))
    assert torch.equal(noisy, again)
    with pytest.raises(ValueError, match="smaller than the patch"):
        PatchSampler(images, NoiseRange("gaussian", 0, 10), patch_size=64, batch_size=2)


def test_warped_patch_rotates_and_rescales_a_ramp_exactly():
    # bilinear interpolation reproduces a linear image exactly: the patch of the ramp I = row is a
    # ramp whose slopes are the rotated, rescaled unit vector (cos / s along rows, -sin / s along columns)
    ramp = np.repeat(np.arange(200, dtype=np.float32)[:, None], 200, axis=1)
    patch = warped_patch(ramp, 32, 30.0, 0.8, np.random.default_rng(0))
    np.testing.assert_allclose(np.diff(patch, axis=0), np.cos(np.pi / 6) / 0.8, atol=1e-3)
    np.testing.assert_allclose(np.diff(patch, axis=1), -np.sin(np.pi / 6) / 0.8, atol=1e-3)
    assert patch.min() >= 0 and patch.max() <= 199  # the footprint lies inside the image


def test_rescaled_patches_get_poisson_noise_at_their_pixel_size():
    flat = [np.ones((96, 96), np.float32)]
    plain = PatchSampler(flat, NoiseRange("poisson", 5, 5), 16, 64, pixel_sizes=[0.5])
    shrunk = PatchSampler(flat, NoiseRange("poisson", 5, 5), 16, 64, pixel_sizes=[0.5], rotation_deg=45, rescale=[0.5, 0.5])
    # variance I / (D p^2): a patch shrunk by 0.5 has pixels of 1 A, four times the counts of 0.5 A
    for sampler, variance in ((plain, 1 / (5 * 0.25)), (shrunk, 1 / (5 * 1.0))):
        noisy, clean = sampler(np.random.default_rng(4))
        torch.testing.assert_close(clean, torch.ones_like(clean))
        assert float(((noisy - clean) ** 2).mean()) == pytest.approx(variance, rel=0.1)
    with pytest.raises(ValueError, match="rescale"):
        PatchSampler(flat, NoiseRange("poisson", 5, 5), 16, 4, rescale=[0.8])


class Killed(Exception):
    pass


def make_trainer(images, out_dir, schedule, callbacks=(), precision="fp32", channels_last=False):
    noise = NoiseRange("gaussian", 5, 50)
    settings = TrainSettings(epochs=4, steps_per_epoch=4, lr=1e-2, schedule=schedule, milestones=[2],
                             plateau_patience=0, progress=False, precision=precision, channels_last=channels_last)
    torch.manual_seed(0)
    return Trainer(
        DnCNN(depth=4, channels=8, bias_free=True),
        PatchSampler(images, noise, patch_size=16, batch_size=4),
        settings,
        validate=psnr_validation(images[:2], noise, "tem", seed=1),
        out_dir=out_dir,
        seed=5,
        callbacks=callbacks,
    )


@pytest.mark.parametrize("schedule, precision, channels_last",
                         [("multistep", "fp32", False), ("plateau", "fp32", False), ("multistep", "bf16", True)])
def test_killed_run_resumes_to_the_same_weights(images, tmp_path, schedule, precision, channels_last):
    uninterrupted = make_trainer(images, tmp_path / "a", schedule, precision=precision, channels_last=channels_last)
    reference = uninterrupted.fit()

    def kill_after_second_epoch(epoch, record):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        make_trainer(images, tmp_path / "b", schedule, [kill_after_second_epoch], precision, channels_last).fit()
    epochs_run = []
    resumed = make_trainer(images, tmp_path / "b", schedule, [lambda epoch, record: epochs_run.append(epoch)],
                           precision, channels_last)
    result = resumed.fit()

    assert epochs_run == [3, 4]  # continued from the checkpoint, did not start again

    assert [r["loss"] for r in result.history] == [r["loss"] for r in reference.history]
    assert [r["lr"] for r in result.history] == [r["lr"] for r in reference.history]
    for key, value in uninterrupted.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    uninterrupted.export(tmp_path / "a.pt")
    resumed.export(tmp_path / "b.pt")
    for key, value in torch.load(tmp_path / "a.pt", weights_only=True).items():
        assert torch.equal(value, torch.load(tmp_path / "b.pt", weights_only=True)[key])
    assert len(pd.read_csv(tmp_path / "b" / "metrics.csv")) == 4
    # A job restarted after its last epoch (Snakemake removed its outputs first) trains no further
    # and writes its metrics again.
    (tmp_path / "b" / "metrics.csv").unlink()
    finished = make_trainer(images, tmp_path / "b", schedule, [lambda epoch, record: epochs_run.append(epoch)],
                            precision, channels_last)
    finished.fit()
    assert epochs_run == [3, 4] and len(pd.read_csv(tmp_path / "b" / "metrics.csv")) == 4
    # A checkpoint of another run (other settings) is not resumed.
    other = make_trainer(images, tmp_path / "b", "constant", precision=precision, channels_last=channels_last)
    assert not other.resume() and other.epoch == 0
    # The schedule acted: the learning rate dropped at some epoch.
    assert result.history[-1]["lr"] < result.history[0]["lr"]


def test_bf16_trains_convolutions_in_bfloat16_and_keeps_float32_state(images, tmp_path):
    """Under precision bf16 the convolutions compute in bfloat16 while the weights, the Adam moments
    and the loss stay float32, and the weights differ from an fp32 run's (the arithmetic did change)."""
    seen = []
    runs = {}
    for precision in ("fp32", "bf16"):
        trainer = make_trainer(images, tmp_path / precision, "constant", precision=precision)
        hook = trainer.model.body[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
        result = trainer.fit()
        hook.remove()
        assert result.precision == precision
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
        assert all(v.dtype == torch.float32 for state in trainer.optimizer.state.values() for v in state.values()
                   if torch.is_tensor(v) and v.is_floating_point())
        runs[precision] = trainer.model.state_dict()
    assert torch.bfloat16 in seen and torch.float32 in seen
    assert any(not torch.equal(runs["fp32"][k], runs["bf16"][k]) for k in runs["fp32"])


def test_channels_last_changes_the_layout_not_the_result(images, tmp_path):
    """channels_last trains the same network: the model's weights are channels-last during training and
    the fp32 weights after 4 epochs equal the contiguous run's to float rounding."""
    runs = {}
    for channels_last in (False, True):
        trainer = make_trainer(images, tmp_path / str(channels_last), "constant", channels_last=channels_last)
        conv = next(m.weight for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
        assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last
        trainer.fit()
        runs[channels_last] = trainer.model.state_dict()
    for key, value in runs[False].items():
        torch.testing.assert_close(runs[True][key], value, rtol=1e-3, atol=1e-4)


def test_auto_precision_follows_the_device(monkeypatch):
    """auto: bf16 on a CPU with AMX or AVX512-BF16, fp32 on one without; a bad value names the choices."""
    from temdenoise import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert precision.resolve_precision("auto", "cpu") == "fp32"
    assert precision.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="fp32"):
        TrainSettings(precision="fp16")


def test_checkpoint_resumes_whatever_device_the_trainer_names(images, tmp_path):
    """A checkpoint loads on the CPU, not on the trainer's device: a trainer that names another
    device (here "cuda:0" on a machine without one, as a job requeued onto another node would)
    resumes it, torch's RNG state stays a CPU ByteTensor, and training continues exactly."""
    def kill_after_second_epoch(epoch, record):
        if epoch == 2:
            raise Killed

    reference = make_trainer(images, tmp_path / "a", "multistep").fit()
    with pytest.raises(Killed):
        make_trainer(images, tmp_path / "b", "multistep", [kill_after_second_epoch]).fit()
    resumed = make_trainer(images, tmp_path / "b", "multistep")
    resumed.device = "cuda:0"   # only resume() reads it here: the weights stay where the model is
    assert resumed.resume() and resumed.epoch == 2
    assert torch.get_rng_state().device.type == "cpu"
    resumed.device = "cpu"
    assert [r["loss"] for r in resumed.fit().history] == [r["loss"] for r in reference.history]


def test_early_stopping_keeps_the_best_epoch(images):
    scores = iter([10.0, 12.0, 11.0, 11.5, 9.0, 13.0])
    settings = TrainSettings(epochs=6, steps_per_epoch=2, early_stopping=2, schedule="constant", progress=False)
    model = DnCNN(depth=3, channels=4)
    snapshots = {}
    trainer = Trainer(
        model,
        PatchSampler(images, NoiseRange("gaussian", 10, 10), 16, 2),
        settings,
        validate=lambda m: next(scores),
        callbacks=[lambda epoch, record: snapshots.__setitem__(epoch, {k: v.clone() for k, v in model.state_dict().items()})],
    )
    result = trainer.fit()
    assert result.stopped_early and len(result.history) == 4 and result.best_epoch == 2
    assert all(torch.equal(trainer.best_state[k], v) for k, v in snapshots[2].items())


def test_train_supervised_writes_a_usable_homogeneous_model(images, tmp_path):
    save_stack(tmp_path / "train.npz", images)
    save_stack(tmp_path / "validation.npz", images[:2])
    pd.DataFrame({"pixel_size": [0.5] * 4}).to_csv(tmp_path / "train.csv", index=False)
    entry = {"family": "dncnn", "params": {"depth": 4, "channels": 8, "bias_free": True}}
    recipe = {"epochs": 3, "steps_per_epoch": 8, "batch_size": 4, "patch_size": 16, "progress": False}
    out = tmp_path / "model"
    result = train_supervised(entry, recipe, {"kind": "poisson", "range": [5, 50]}, "tem",
                              str(tmp_path / "train.npz"), str(tmp_path / "validation.npz"), str(out),
                              train_metadata=str(tmp_path / "train.csv"), seed=0)
    assert all((out / name).exists() for name in OUTPUTS)
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == ["epoch", "loss", "val_psnr", "lr", "seconds"]
    assert metrics["loss"].iloc[-1] < metrics["loss"].iloc[0]
    info = json.loads((out / "info.json").read_text())
    assert info["fov"] == 9 and info["parameters"] > 0 and info["best_val_psnr"] == pytest.approx(result.best_score)
    # what rebuilds and applies the model on real data (temdenoise.realdata.load_model_dir)
    assert info["pixel_size"] == {"median": 0.5, "min": 0.5, "max": 0.5} and info["domain"] == "tem"  # the metadata's
    assert info["train_noise"]["kind"] == "poisson" and info["recipe"]["epochs"] >= 1
    model = load_trained(out / "model.pt", entry).double()
    y = torch.from_numpy(images[0][None, None]).double()
    with torch.no_grad():
        ratio = (model(3.5 * y) - 3.5 * model(y)).norm() / (3.5 * model(y)).norm()
    assert ratio < 1e-5
    with pytest.raises(ValueError, match="unknown training recipe keys"):
        train_supervised(entry, {"epochz": 1}, {"kind": "poisson", "range": [5, 50]}, "tem",
                         str(tmp_path / "train.npz"), str(tmp_path / "validation.npz"), str(out))


def batch_recording_trainer(images, out_dir, workers, seed=5, callbacks=()):
    """A trainer whose loss records every batch it is given (noisy patches, CPU copies)."""
    seen: list[torch.Tensor] = []

    def recording_mse(model, batch):
        seen.append(batch[0].detach().cpu().clone())
        return torch.nn.functional.mse_loss(model(batch[0]), batch[1])

    settings = TrainSettings(epochs=3, steps_per_epoch=3, lr=1e-2, schedule="constant", progress=False)
    torch.manual_seed(0)
    trainer = Trainer(DnCNN(depth=3, channels=4), PatchSampler(images, NoiseRange("gaussian", 5, 50), 16, 4), settings,
                      loss_fn=recording_mse, out_dir=out_dir, seed=seed, callbacks=callbacks, loader_workers=workers)
    return trainer, seen


def test_batches_built_in_workers_are_deterministic_and_resume_exactly(images, tmp_path):
    reference, two_workers = batch_recording_trainer(images, tmp_path / "a", workers=2)
    reference.fit()
    trainer, one_worker = batch_recording_trainer(images, tmp_path / "b", workers=1)
    trainer.fit()
    assert len(two_workers) == 9 and all(torch.equal(a, b) for a, b in zip(two_workers, one_worker))
    assert len({bytes(batch.numpy()) for batch in two_workers}) == 9  # every step draws a new batch
    other_seed, other = batch_recording_trainer(images, tmp_path / "c", workers=2, seed=6)
    other_seed.fit()
    assert not torch.equal(other[0], two_workers[0])
    in_process, serial = batch_recording_trainer(images, tmp_path / "d", workers=0)
    in_process.fit()
    assert not torch.equal(serial[0], two_workers[0])  # 0 workers: today's single-generator stream

    def kill_after_first_epoch(epoch, record):
        if epoch == 1:
            raise Killed

    killed, before = batch_recording_trainer(images, tmp_path / "e", workers=2, callbacks=[kill_after_first_epoch])
    with pytest.raises(Killed):
        killed.fit()
    resumed, after = batch_recording_trainer(images, tmp_path / "e", workers=2)
    resumed.fit()
    assert len(before) == 3 and len(after) == 6
    assert all(torch.equal(a, b) for a, b in zip(before + after, two_workers))
    for key, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    # a checkpoint of in-process batches is not resumed with workers (the batches differ)
    assert not batch_recording_trainer(images, tmp_path / "d", workers=2)[0].resume()
