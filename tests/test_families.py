"""The light family declarations (temdenoise.families) agree with the registered classes."""

from __future__ import annotations

import pytest

from temdenoise import registry
from temdenoise.families import FamilyInfo, declared_families


def test_every_declared_family_registers_with_its_declared_kind():
    registered = registry.families()
    assert set(registered) == set(declared_families())
    for name, info in declared_families().items():
        cls = registered[name]
        assert (cls.kind, getattr(cls, "video_input", False), getattr(cls, "fits", True)) == (
            info.kind, info.video_input, info.fits), name
        assert cls.__module__ == info.module, name


def test_register_rejects_a_class_that_contradicts_its_declaration():
    with pytest.raises(TypeError, match="declared"):

        @registry.register("wiener")
        class NotClassical:
            kind = "network"


def test_register_rejects_an_undeclared_family():
    with pytest.raises(KeyError, match="unknown method family 'nameless'"):

        @registry.register("nameless")
        class Nameless:
            kind = "classical"


def test_kind_and_video_flag_come_from_the_declarations():
    assert registry.method_kind({"family": "wiener"}) == "classical"
    assert registry.takes_videos({"family": "udvd"}) and not registry.takes_videos({"family": "unet"})
    with pytest.raises(ValueError, match="kind"):
        FamilyInfo("filter", "somewhere")


def test_a_classical_family_loads_without_torch_or_scipy_stats():
    # Every denoise / fit job imports the benchmark module and builds its method through the
    # registry; importing torch (classical methods) or scipy.stats (pulled in by scikit-image's
    # metrics) there would cost each of them seconds of start-up.
    import subprocess
    import sys

    probe = (
        "import sys; from temdenoise import registry; from temdenoise.benchmark import denoise_split; "
        "registry.family('wiener'); "
        "print(sorted(m for m in ('torch', 'scipy.stats') if m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"
