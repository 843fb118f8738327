"""One registry of denoising methods, classical and learned.

A config entry under ``methods:`` names a ``family`` and its ``params``; the family is a class
registered here with :func:`register`. Adding a variant is one config entry; adding a family is
one module that decorates its class with ``@register("name")`` plus its declaration (kind, module,
video input), built in (:mod:`temdenoise.families`) or from outside the package (an entry point or
the config's ``plugins:``), which the workflow reads without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Sequence, TypeVar

from temdenoise.families import declared_families, family_info

T = TypeVar("T", bound=type)

_FAMILIES: dict[str, type] = {}


def register(name: str) -> Callable[[T], T]:
    """Class decorator: register a method family under ``name``.

    The class must define ``kind = "classical"`` or ``kind = "network"``, and ``kind``,
    ``video_input`` (default False) and ``fits`` (default True) must equal the family's declaration in
    :mod:`temdenoise.families`, which the workflow plans with.
    """

    def decorate(cls: T) -> T:
        if getattr(cls, "kind", None) not in ("classical", "network"):
            raise TypeError(f"family {name!r}: class {cls.__name__} must set kind = 'classical' or 'network'")
        declared = family_info(name)
        found = (cls.kind, getattr(cls, "video_input", False), getattr(cls, "fits", True))
        if found != (declared.kind, declared.video_input, declared.fits):
            raise TypeError(
                f"family {name!r}: class {cls.__name__} has (kind, video_input, fits) = {found}, "
                f"declared {(declared.kind, declared.video_input, declared.fits)} in temdenoise.families"
            )
        if name in _FAMILIES and _FAMILIES[name] is not cls:
            raise ValueError(f"method family {name!r} registered twice")
        cls.family = name
        _FAMILIES[name] = cls
        return cls

    return decorate


def _load_families() -> None:
    # Imported on first use so that `import temdenoise.registry` stays light.
    for info in declared_families().values():
        importlib.import_module(info.module)


def families() -> dict[str, type]:
    """All registered families by name."""
    _load_families()
    return dict(_FAMILIES)


def family(name: str) -> type:
    """The class of family ``name``; a KeyError lists the declared families.

    Only the module declared for ``name`` is imported, so a job applying a classical method does
    not pay for importing torch (about 3 s of every such job on the quick run).
    """
    importlib.import_module(family_info(name).module)
    if name not in _FAMILIES:
        raise KeyError(f"family {name!r} is declared in module {family_info(name).module} but not registered there")
    return _FAMILIES[name]


def method_kind(entry: dict[str, Any]) -> str:
    """``classical`` or ``network`` for a ``methods:`` config entry (from its declaration: no import)."""
    return family_info(entry["family"]).kind


def takes_videos(entry: dict[str, Any]) -> bool:
    """Whether a ``methods:`` entry's family denoises video windows (``video_input = True``).

    Such families are trained self-supervised on noisy videos and applied to whole videos; every
    other network family is trained supervised and applied frame by frame. Read from the family's
    declaration (:mod:`temdenoise.families`), so the Snakefile can ask without importing torch.
    """
    return family_info(entry["family"]).video_input


def build(entry: dict[str, Any]) -> Any:
    """Instantiate the family of a ``methods:`` entry with its ``params``."""
    return family(entry["family"])(**entry.get("params", {}))


# Keys of a ``methods:`` entry that ``datasets.<name>`` may override: params merge key by key.
_OVERRIDABLE = {"params": True, "training": False, "train_noise": False}


def entry_on(entry: dict[str, Any], dataset: str | None) -> dict[str, Any]:
    """A ``methods:`` entry as used on ``dataset``: its ``datasets.<dataset>`` section merged in.

    ``params`` merge key by key, ``training`` and ``train_noise`` are replaced (``resources`` stay);
    the result has no ``datasets`` key, so the networks built, the checkpoints' fingerprints and the
    tables all see one flat entry. ``dataset=None`` gives the entry without overrides.
    """
    flat = {key: value for key, value in entry.items() if key != "datasets"}
    overrides = entry.get("datasets", {}).get(dataset, {}) if dataset is not None else {}
    for key, value in overrides.items():
        if key not in _OVERRIDABLE:
            raise KeyError(f"datasets.{dataset}.{key}: a dataset may override only {', '.join(_OVERRIDABLE)}")
        flat[key] = {**flat.get(key, {}), **value} if _OVERRIDABLE[key] else value
    return flat


def supervised_biased(entries: Mapping[str, Mapping[str, Any]], family: str) -> list[str]:
    """The entries of ``family`` that are biased and supervised (no ``bias_free``, no ``objective``):
    the rows the seed's comparisons (UNet vs DnCNN, DnCNN vs Wiener...) are made between."""
    return [name for name, e in entries.items()
            if e["family"] == family and not e.get("params", {}).get("bias_free") and "objective" not in e]


def supervised_networks(entries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The entries trained supervised image by image (the workflow's `train` rule): networks whose
    family does not denoise videos and that have no self-supervised ``objective``."""
    return [name for name, e in entries.items() if method_kind(e) == "network" and not takes_videos(e) and "objective" not in e]


REPLICATE_MARK = "~seed"
"""What separates a network's name from the training seed of one of its replicates (``unet_s4~seed1``)."""


def replicate_name(model: str, seed: int) -> str:
    """The method name of ``model`` trained again with training seed ``seed`` (config ``training_seeds``)."""
    return f"{model}{REPLICATE_MARK}{seed}"


def replicate_of(name: str) -> tuple[str, int | None]:
    """``(model, seed)`` of a replicate's name (:func:`replicate_name`); ``(name, None)`` otherwise."""
    model, mark, seed = name.rpartition(REPLICATE_MARK)
    return (model, int(seed)) if mark and seed.isdigit() else (name, None)


def replicate_entries(methods: Mapping[str, Mapping[str, Any]], models: Sequence[str], seeds: Sequence[int]) -> dict:
    """The ``methods:`` entries of every replicate of ``models``: each model's own entry, trained
    with each of ``seeds`` (key ``training_seed``) instead of the config's master seed."""
    return {replicate_name(model, seed): {**methods[model], "training_seed": seed} for model in models for seed in seeds}
