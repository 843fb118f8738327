"""What the workflow knows about each method family before importing it.

The Snakefile needs a family's kind (classical methods are fitted per noise condition, networks are
trained) and whether it denoises videos (trained self-supervised on noisy videos) to build its
DAG. Importing the families themselves would import torch, so these facts are declared here, with
the standard library only, and the registry checks every registered class against its declaration
(:func:`temdenoise.registry.register`): the two cannot drift. ``snakemake --lint`` and a dry run
therefore work in an environment with nothing but Snakemake.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("classical", "network")


@dataclass(frozen=True)
class FamilyInfo:
    """A family's declaration: ``kind`` (``classical`` or ``network``), the ``module`` whose import
    registers its class, and ``video_input`` (the family denoises windows of video frames)."""

    kind: str
    module: str
    video_input: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"family kind must be one of {KINDS}, got {self.kind!r}")


BUILTIN_FAMILIES: dict[str, FamilyInfo] = {
    "wiener": FamilyInfo("classical", "temdenoise.classical.wiener"),
    "wavelet": FamilyInfo("classical", "temdenoise.classical.wavelet"),
    "dncnn": FamilyInfo("network", "temdenoise.models.dncnn"),
    "unet": FamilyInfo("network", "temdenoise.models.unet"),
    "udvd": FamilyInfo("network", "temdenoise.models.udvd", video_input=True),
}


def declared_families() -> dict[str, FamilyInfo]:
    """Every declared family by name."""
    return dict(BUILTIN_FAMILIES)


def family_info(name: str) -> FamilyInfo:
    """The declaration of family ``name``; a KeyError lists the declared families."""
    known = declared_families()
    if name not in known:
        raise KeyError(f"unknown method family {name!r}; declared: {', '.join(sorted(known))}")
    return known[name]
