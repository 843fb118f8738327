"""What the workflow knows about each method family before importing it.

The Snakefile needs a family's kind (classical methods are fitted per noise condition, networks are
trained) and whether it denoises videos (trained self-supervised on noisy videos) to build its
DAG. Importing the families themselves would import torch, so these facts are declared here, with
the standard library only, and the registry checks every registered class against its declaration
(:func:`temdenoise.registry.register`): the two cannot drift. ``snakemake --lint`` and a dry run
therefore work in an environment with nothing but Snakemake.

Families from outside the package are declared the same way, by one of two routes:

- an installed package's entry point in the group ``temdenoise.methods`` whose object is a
  declaration (a :class:`FamilyInfo` or a mapping with ``kind``, ``module`` and ``video_input``),
  e.g. ``blur = my_denoisers.declarations:BLUR`` (loading it imports that light module only);
- the config's ``plugins:`` section, ``name: {kind, module, video_input}``, declared for the
  process by :func:`declare_config_families` (the Snakefile at parse time, every job in
  :func:`temdenoise.runtime.job`).

A declaration may also set ``fits`` and ``extra`` (see :class:`FamilyInfo`). The family's
``module`` (importable in the jobs) registers its class with
:func:`temdenoise.registry.register`, exactly as a built-in family's does.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Mapping

KINDS = ("classical", "network")
ENTRY_POINT_GROUP = "temdenoise.methods"


@dataclass(frozen=True)
class FamilyInfo:
    """A family's declaration: ``kind`` (``classical`` or ``network``), the ``module`` whose import
    registers its class, ``video_input`` (the family denoises windows of video frames), ``fits``
    (a classical family learns a state from the training pairs; False: nothing to fit, no clean
    array is read, no fit job) and ``extra`` (the optional dependency group of the package,
    ``pip install -e ".[extra]"``, that the family needs; see :func:`missing_extra`)."""

    kind: str
    module: str
    video_input: bool = False
    fits: bool = True
    extra: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"family kind must be one of {KINDS}, got {self.kind!r}")


BUILTIN_FAMILIES: dict[str, FamilyInfo] = {
    "wiener": FamilyInfo("classical", "temdenoise.classical.wiener"),
    "wavelet": FamilyInfo("classical", "temdenoise.classical.wavelet", fits=False),
    "dncnn": FamilyInfo("network", "temdenoise.models.dncnn"),
    "unet": FamilyInfo("network", "temdenoise.models.unet"),
    "udvd": FamilyInfo("network", "temdenoise.models.udvd", video_input=True),
    # Self-supervised classical baselines (issue 23): parameters calibrated on the noisy image itself.
    "nlm": FamilyInfo("classical", "temdenoise.classical.calibrated", fits=False),
    "tv": FamilyInfo("classical", "temdenoise.classical.calibrated", fits=False),
    # BM3D / BM4D (Tampere University's package, free for non-commercial use only: an optional extra).
    "bm3d": FamilyInfo("classical", "temdenoise.classical.block_matching", fits=False, extra="bm3d"),
    "bm4d": FamilyInfo("classical", "temdenoise.classical.block_matching", fits=False, extra="bm3d"),
}

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "bm3d": ("bm3d", "bm4d"),
    "bioimageio": ("bioimageio.spec", "bioimageio.core"),  # temdenoise export (temdenoise.export)
}
"""The importable modules each optional extra of ``pyproject.toml`` provides."""


def extra_installed(extra: str) -> bool:
    """Whether the modules of optional extra ``extra`` are installed, looked up without importing them."""
    return all(importlib.util.find_spec(module) is not None for module in EXTRA_MODULES.get(extra, (extra,)))


def missing_extra(name: str) -> str | None:
    """The optional extra that family ``name`` needs and that is not installed, else None.

    Looks the modules up without importing them (the Snakefile calls it while parsing).
    """
    extra = family_info(name).extra
    return extra if extra and not extra_installed(extra) else None


# Families of the config's `plugins:` section, declared for this process (declare_config_families).
_CONFIG_FAMILIES: dict[str, FamilyInfo] = {}


def as_family_info(declaration: FamilyInfo | Mapping[str, Any], where: str) -> FamilyInfo:
    """A :class:`FamilyInfo` from a declaration object or mapping; errors name ``where``."""
    if isinstance(declaration, FamilyInfo):
        return declaration
    if not isinstance(declaration, Mapping) or not {"kind", "module"} <= set(declaration):
        raise TypeError(f"{where}: a family declaration needs kind and module, got {declaration!r}")
    unknown = set(declaration) - {"kind", "module", "video_input", "fits", "extra"}
    if unknown:
        raise TypeError(f"{where}: unknown declaration keys {sorted(unknown)}")
    try:
        return FamilyInfo(**declaration)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


@functools.cache
def entry_point_families() -> dict[str, FamilyInfo]:
    """Families declared by installed packages (entry-point group ``temdenoise.methods``).

    Cached: the installed packages do not change while a process runs.
    """
    return {
        point.name: as_family_info(point.load(), f"entry point {point.name} = {point.value}")
        for point in entry_points(group=ENTRY_POINT_GROUP)
    }


def declare_config_families(plugins: Mapping[str, Mapping[str, Any]]) -> None:
    """Declare the families of a config's ``plugins:`` section for this process (replacing any
    declared before), so that the registry and the Snakefile know them like built-in families."""
    _CONFIG_FAMILIES.clear()
    _CONFIG_FAMILIES.update({name: as_family_info(info, f"plugins.{name}") for name, info in plugins.items()})


def declared_families() -> dict[str, FamilyInfo]:
    """Every declared family by name: built-in, from entry points, from the config's plugins.

    A name declared twice with different declarations is an error (the same declaration from an
    entry point and the config is accepted: a config may name the package it was written for).
    """
    known = dict(BUILTIN_FAMILIES)
    for source, found in (("entry point", entry_point_families()), ("config plugins", _CONFIG_FAMILIES)):
        for name, info in found.items():
            if known.get(name, info) != info:
                raise ValueError(f"family {name!r} from {source} is already declared as {known[name]}")
            known[name] = info
    return known


def family_info(name: str) -> FamilyInfo:
    """The declaration of family ``name``; a KeyError lists the declared families."""
    known = declared_families()
    if name not in known:
        raise KeyError(f"unknown method family {name!r}; declared: {', '.join(sorted(known))}")
    return known[name]
