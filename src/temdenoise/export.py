"""Trained models as BioImage Model Zoo packages (``temdenoise export MODEL_DIR --bioimageio OUT.zip``).

A package (bioimage.io model spec 0.5, through ``bioimageio.spec``: the optional extra
``.[bioimageio]``) loads in Fiji (deepImageJ), ilastik, napari and careamics. It holds:

* the weights twice: the PyTorch state dict of ``model.pt`` with its architecture as one
  self-contained source file (:func:`architecture_source`: the family's module and the package
  modules it imports, needing torch only), and TorchScript (traced on the test input);
* a test input and output: a centre crop of the model's own first validation image
  (``results/data/<dataset>/validation.npz`` beside the workflow's ``results/models/<dataset>/<model>``),
  noisy at the dose in the middle (log scale) of the training range, and the network's output;
* pixel size (the axes' scale, angstrom), the training doses and the test dose, the training record
  (``info.json`` and ``metrics.csv`` attached, recipe summarised in ``config.bioimageio.training``);
* the seed papers cited (Mohan et al. 2022, and DnCNN / UNet / bias-free networks as built).

The input is the model's scale, as everywhere in this package: counts divided by dose x pixel area
(normalised intensity, vacuum = 1; :mod:`temdenoise.noise`); the package's documentation says how to
bring a recording to it. Only what ``temdenoise denoise`` applies is exported: image networks
trained on Poisson noise (:func:`temdenoise.realdata.load_model_dir`).
"""

from __future__ import annotations

import ast
import inspect
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from temdenoise import registry
from temdenoise.families import extra_installed
from temdenoise.io import atomic_path
from temdenoise.models.inference import denoise_image
from temdenoise.realdata import TrainedModel, load_model_dir
from temdenoise.train.data import NoiseRange
from temdenoise.train.supervised import load_split

if TYPE_CHECKING:
    from bioimageio.spec.model.v0_5 import ModelDescr

AUTHORS = ("temdenoise contributors",)
"""The package's authors unless named (``temdenoise export --author``)."""
TEST_SIDE = 256
"""Largest side of the test image (px): the package stays small and its test fast."""

# (text, DOI) of the papers a package cites: the seed study always, the others by family and flags.
SEED = ("Mohan, Manzorro, Vincent, Tang, Sheth, Simoncelli, Matteson, Crozier & Fernandez-Granda: "
        "Deep denoising for scientific discovery: a case study in electron microscopy. IEEE TCI 8, 585-597 (2022)",
        "10.1109/TCI.2022.3176536")
FAMILY_PAPERS = {
    "dncnn": ("Zhang, Zuo, Chen, Meng & Zhang: Beyond a Gaussian denoiser: residual learning of deep CNN for "
              "image denoising (DnCNN). IEEE TIP 26, 3142-3155 (2017)", "10.1109/TIP.2017.2662206"),
    "unet": ("Ronneberger, Fischer & Brox: U-Net: convolutional networks for biomedical image segmentation. "
             "MICCAI 2015, LNCS 9351, 234-241", "10.1007/978-3-319-24574-4_28"),
}
BIAS_FREE = ("Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda: Robust and interpretable blind image denoising "
             "via bias-free convolutional neural networks. ICLR 2020", "10.48550/arXiv.1906.05478")


def architecture_source(cls: type) -> str:
    """One module defining ``cls`` that needs nothing but torch and the standard library.

    The sources of ``cls``'s module and of the ``temdenoise`` modules it imports (before it, in
    import order) are joined; imports from ``temdenoise`` and the ``@register`` decorator (the
    package's registry) are dropped, and ``from __future__`` imports lead the file."""
    order: list[str] = []

    def visit(name: str) -> None:
        for node in _statements(name):
            if _own_import(node) and node.module not in (registry.__name__, *order):
                visit(node.module)
        order.append(name)

    visit(cls.__module__)
    future, body = set(), []
    for node in (node for name in order for node in _statements(name)):
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            future.update(alias.name for alias in node.names)
        elif not _own_import(node):
            if isinstance(node, ast.ClassDef):
                node.decorator_list = [d for d in node.decorator_list if not _is_register(d)]
            body.append(node)
    header = f'"""{cls.__name__} from temdenoise ({", ".join(order)}), self-contained: torch only."""\n'
    imports = "".join(f"from __future__ import {name}\n" for name in sorted(future))
    return header + imports + "\n" + ast.unparse(ast.Module(body=body, type_ignores=[])) + "\n"


def _statements(module: str) -> list[ast.stmt]:
    """The top-level statements of an imported module's source."""
    return ast.parse(inspect.getsource(sys.modules[module])).body


def _own_import(node: ast.stmt) -> bool:
    """Whether ``node`` is a ``from temdenoise... import ...``."""
    return isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "temdenoise"


def _is_register(decorator: ast.expr) -> bool:
    return isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == registry.register.__name__


def default_validation(model_dir: Path) -> Path:
    """``results/data/<dataset>/validation.npz`` of the workflow's ``results/models/<dataset>/<model>``."""
    return model_dir.parents[2] / "data" / model_dir.parent.name / "validation.npz"


def sample_pair(trained: TrainedModel, validation: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """(noisy input, network output, dose): a square centre crop of the first validation image, its
    side a multiple of the network's ``size_multiple`` (at most :data:`TEST_SIDE`), made noisy at the
    dose in the middle (log scale) of the training range at that image's pixel size."""
    metadata = validation.with_suffix(".csv")
    images, sizes = load_split(str(validation), str(metadata) if metadata.is_file() else None)
    image = np.asarray(images[0], dtype=np.float32)
    multiple = getattr(trained.network, "size_multiple", 1)
    side = min(TEST_SIDE, *image.shape) // multiple * multiple
    if side == 0:
        raise ValueError(f"{validation}: first image {image.shape} smaller than the network's multiple {multiple}")
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    clean = image[top : top + side, left : left + side]
    noise = NoiseRange.from_config(trained.info["train_noise"])
    dose = noise.spread(1)[0]
    noisy = noise.add(clean, dose, np.random.default_rng(seed), trained.pixel_size if sizes is None else sizes[0])
    return noisy, denoise_image(trained.network, noisy), dose


def cover_image(noisy: np.ndarray, denoised: np.ndarray, path: Path) -> None:
    """The package's cover: input and output side by side (2:1), both on the output's 1-99% range."""
    from skimage import io

    low, high = np.percentile(denoised, [1, 99])
    pair = np.clip((np.concatenate([noisy, denoised], axis=1) - low) / max(high - low, 1e-12), 0, 1)
    io.imsave(path, (pair * 255).astype(np.uint8), check_contrast=False)


def citations(trained: TrainedModel) -> list[tuple[str, str]]:
    """(text, DOI) of the seed study and of the papers of the network's family (and bias-free form)."""
    family = trained.info["family"]
    return [SEED, *([FAMILY_PAPERS[family]] if family in FAMILY_PAPERS else []),
            *([BIAS_FREE] if trained.info.get("bias_free") else [])]


def documentation(trained: TrainedModel, dataset: str, dose: float) -> str:
    """The package's README: what the model is, its input scale, how it was trained and validated."""
    info, low, high = trained.info, *trained.info["train_noise"]["range"]
    papers = "".join(f"- {text}. doi:{doi}\n" for text, doi in citations(trained))
    return f"""# temdenoise {info['family']} `{trained.name}` ({dataset})

A {info['family']} denoiser of transmission electron microscopy (TEM) images, trained by the
temdenoise benchmark (supervised, mean squared error against the clean image) on the simulated
dataset `{dataset}`: {info.get('parameters', '?')} parameters, measured field of view
{info.get('fov', '?')} px, bias-free: {bool(info.get('bias_free'))}.

## Input

One 2-D image in the model's scale: **electron counts divided by dose x pixel area** (normalised
intensity, vacuum = 1), at the training pixel size of {trained.pixel_size:.4g} A (the axes' scale;
resample an image whose pixel differs). Trained on Poisson noise at doses {low:g} to {high:g} e/A^2
(log-uniform). A camera's values must first be made counts (its gain and zero level) and divided by
the dose times the pixel area; `temdenoise denoise` does both from the file's metadata.

## Validation

The test input is a centre crop of the model's own first validation image, with Poisson noise at
{dose:.4g} e/A^2; the test output is this network's output on it. The training record
(`info.json`: recipe, best epoch, validation PSNR, code version; `metrics.csv`: per epoch) is attached.
To validate on unseen data, score the denoised images against clean references, or without them by
binomial thinning (`temdenoise score`; docs/thinning.md of temdenoise).

## References

{papers}"""


ATTACHMENTS = ("info.json", "metrics.csv")
"""The training record copied from the model folder into the package (where present)."""


def write_package_files(trained: TrainedModel, files: Path, validation: Path, dataset: str, seed: int = 0) -> float:
    """Write into ``files`` what the package holds besides ``model.pt`` and its description: test
    and sample tensors, the architecture source, TorchScript weights, cover, README and the
    training record. Returns the test input's dose (e/A^2)."""
    import tifffile

    noisy, denoised, dose = sample_pair(trained, validation, seed)
    for name, image in (("input", noisy), ("output", denoised)):
        np.save(files / f"test_{name}.npy", image[None, None])
        tifffile.imwrite(files / f"sample_{name}.tif", image)
    (files / "architecture.py").write_text(architecture_source(type(trained.network)))
    with warnings.catch_warnings():
        # the UNet's size check is traced as a constant: the input axes allow only sizes it passes;
        # torch deprecates torch.jit for torch.export, but TorchScript is what deepImageJ and bioimage.io read
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.")
        traced = torch.jit.trace(trained.network, torch.from_numpy(noisy[None, None]))
    traced.save(str(files / "model.torchscript.pt"))
    cover_image(noisy, denoised, files / "cover.png")
    (files / "README.md").write_text(documentation(trained, dataset, dose))
    for name in ATTACHMENTS:
        if (trained.directory / name).is_file():
            shutil.copy(trained.directory / name, files / name)
    return dose


def model_description(trained: TrainedModel, files: Path, dataset: str, dose: float, validation: Path,
                      authors: Sequence[str]) -> "ModelDescr":
    """The bioimage.io model description (spec 0.5) of the files :func:`write_package_files` wrote."""
    from bioimageio.spec.model import v0_5 as spec

    info, recipe = trained.info, trained.info.get("recipe", {})
    multiple = getattr(trained.network, "size_multiple", 1)
    intensity = spec.ChannelAxis(channel_names=[spec.Identifier("intensity")])

    def tensor(kind: type, name: str, description: str, role: str, size: Callable[[str], object], axis: type) -> object:
        """A 2-D tensor description: batch, one channel, y and x at the training pixel size."""
        space = [axis(id=spec.AxisId(a), size=size(a), scale=trained.pixel_size, unit="angstrom") for a in "yx"]
        return kind(id=spec.TensorId(name), description=description, axes=[spec.BatchAxis(), intensity, *space],
                    test_tensor=spec.FileDescr(source=files / f"test_{role}.npy"),
                    sample_tensor=spec.FileDescr(source=files / f"sample_{role}.tif"))

    inputs = tensor(spec.InputTensorDescr, "noisy", "counts / (dose x pixel area): normalised intensity, vacuum = 1",
                    "input", lambda a: spec.ParameterizedSize(min=multiple, step=multiple), spec.SpaceInputAxis)
    outputs = tensor(spec.OutputTensorDescr, "denoised", "the denoised normalised intensity", "output",
                     lambda a: spec.SizeReference(tensor_id=spec.TensorId("noisy"), axis_id=spec.AxisId(a)),
                     spec.SpaceOutputAxis)
    torch_version = spec.Version(torch.__version__.split("+")[0])
    return spec.ModelDescr(
        name=f"temdenoise {info['family']} {dataset} {trained.name}".replace("~", " "),
        description=f"{info['family']} denoiser of TEM images (Poisson noise, {noise_text(info)}), trained on the "
                    f"simulated dataset {dataset} by the temdenoise benchmark",
        authors=[spec.Author(name=name) for name in authors],
        cite=[spec.CiteEntry(text=text, doi=spec.Doi(doi)) for text, doi in citations(trained)],
        license=spec.LicenseId("MIT"),
        documentation=spec.FileDescr(source=files / "README.md"),
        covers=[spec.FileDescr(source=files / "cover.png")],
        attachments=[spec.FileDescr(source=files / name) for name in ATTACHMENTS if (files / name).is_file()],
        tags=["denoising", "electron-microscopy", "tem", "2d", "pytorch", info["family"]],
        inputs=[inputs],
        outputs=[outputs],
        weights=spec.WeightsDescr(
            pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
                source=trained.directory / "model.pt", pytorch_version=torch_version,
                architecture=spec.ArchitectureFromFileDescr(
                    source=files / "architecture.py", callable=spec.Identifier(type(trained.network).__name__),
                    kwargs=info["params"])),
            torchscript=spec.TorchscriptWeightsDescr(
                source=files / "model.torchscript.pt", pytorch_version=torch_version, parent="pytorch_state_dict"),
        ),
        config=spec.Config(
            bioimageio=spec.BioimageioConfig(
                architecture_type=info["family"], modality="transmission electron microscopy", task="denoising",
                model_parameter_count=info.get("parameters"),
                training=spec.TrainingDetails(
                    training_epochs=info.get("epochs"), training_batch_size=recipe.get("batch_size"),
                    initial_learning_rate=recipe.get("lr"), loss_function="torch.nn.functional.mse_loss",
                    optimizer="torch.optim.Adam",
                    training_preprocessing=f"random patches of the clean training images, Poisson noise drawn per "
                                           f"patch at {noise_text(info)}, augmented as the recipe in info.json states"),
            ),
            temdenoise={"pixel_size_angstrom": info["pixel_size"], "train_noise": info["train_noise"],
                        "test_input_dose_e_per_A2": dose, "validation": str(validation),
                        "best_epoch": info.get("best_epoch"), "best_val_psnr": info.get("best_val_psnr")},
        ),
    )


def export_bioimageio(
    model_dir: str | Path,
    out: str | Path,
    validation: str | Path | None = None,
    authors: Sequence[str] | None = None,
    seed: int = 0,
) -> Path:
    """Write the BioImage Model Zoo package of a trained model folder to ``out`` (a ``.zip``) atomically.

    ``validation``: the clean validation stack the test image comes from (default
    :func:`default_validation`); ``authors``: default :data:`AUTHORS`; ``seed``: of the test input's
    noise. Returns ``out``."""
    if not extra_installed("bioimageio"):
        raise ModuleNotFoundError('BioImage Model Zoo export needs the optional extra: pip install -e ".[bioimageio]"',
                                  name="bioimageio")
    from bioimageio.spec import save_bioimageio_package

    model_dir, out = Path(model_dir), Path(out)
    trained = load_model_dir(model_dir)
    if trained.takes_videos:
        raise ValueError(f"{model_dir}: a video network; only image networks are exported")
    validation = Path(validation) if validation else default_validation(model_dir)
    dataset = model_dir.parent.name
    with tempfile.TemporaryDirectory() as tmp:
        dose = write_package_files(trained, Path(tmp), validation, dataset, seed)
        description = model_description(trained, Path(tmp), dataset, dose, validation, authors or AUTHORS)
        with atomic_path(out) as target:
            save_bioimageio_package(description, output_path=target)
    return out


def noise_text(info: dict) -> str:
    """The training doses of ``info`` as text."""
    low, high = info["train_noise"]["range"]
    return f"doses {low:g}-{high:g} e/A^2"
