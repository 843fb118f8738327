"""Jobs that hold arrays stream them: stacks are written and read item by item, so merge_shards,
add_noise, fit_classical (the Wiener filter), denoise and evaluate hold one item, not the split
(issue 37 item 2; docs/cluster.md). Memory is traced by ``tracemalloc``, which counts numpy's arrays."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from temdenoise.benchmark import denoise_split, evaluate_split, fit_classical, write_noisy_split
from temdenoise.io import StackReader, load_stack, save_stack

SIDE = 256
ITEM_BYTES = SIDE * SIDE * 4
WIENER = {"family": "wiener", "params": {"kernel_size": 5}}


def write_split(folder: Path, items: int) -> Path:
    """A clean split of ``items`` images (metadata with pixel sizes), its noisy copy and a Wiener fit."""
    folder.mkdir()
    rng = np.random.default_rng(items)
    save_stack(folder / "clean.npz", (1 + 0.1 * rng.standard_normal((SIDE, SIDE)) for _ in range(items)))
    pd.DataFrame({"item": range(items), "pixel_size": 0.5}).to_csv(folder / "clean.csv", index=False)
    write_noisy_split(folder / "clean.npz", folder / "clean.csv", "poisson-20", 0, folder / "noisy.npz")
    fit_classical(WIENER, folder / "noisy.npz", folder / "clean.npz", folder / "fit.npz")
    return folder


def merge(folder: Path) -> None:
    from temdenoise.simulate.dataset import merge_shards

    merge_shards([folder / "clean.npz"] * 2, [folder / "clean.csv"] * 2, folder / "merged.npz", folder / "merged.csv")


RULES: dict[str, Callable[[Path], None]] = {
    "merge_shards": merge,
    "add_noise": lambda f: write_noisy_split(f / "clean.npz", f / "clean.csv", "poisson-20", 1, f / "out.npz"),
    "fit_classical": lambda f: fit_classical(WIENER, f / "noisy.npz", f / "clean.npz", f / "out.npz"),
    "denoise": lambda f: denoise_split(WIENER, f / "fit.npz", f / "noisy.npz", f / "clean.csv", "poisson-20", "cpu",
                                       f / "out.npz"),
    "export_tiff": lambda f: __import__("temdenoise.simulate.dataset").simulate.dataset.export_split_tiff(
        f / "clean.npz", f / "out.tif"),
    "evaluate": lambda f: evaluate_split(f / "clean.npz", f / "noisy.npz", f / "clean.csv", "d", "natural", [], 0.45,
                                         "poisson-20", "noisy", f / "out.csv"),
}


def peak_traced_bytes(work: Callable[[], None]) -> int:
    """The peak of the memory allocated (numpy arrays included) while ``work`` runs."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("rule", RULES)
def test_a_streamed_job_holds_one_item_whatever_the_split_size(rule, tmp_path):
    small, large = write_split(tmp_path / "small", 4), write_split(tmp_path / "large", 16)
    peaks = {folder: peak_traced_bytes(lambda: RULES[rule](folder)) for folder in (small, large)}
    assert peaks[small] >= ITEM_BYTES  # it held an item: what is measured is the arrays
    # 12 (merge_shards: 24) more items would weigh 12 x ITEM_BYTES if the split were held whole
    assert peaks[large] - peaks[small] < ITEM_BYTES, (rule, peaks)


def test_streamed_outputs_equal_those_of_the_whole_split(tmp_path):
    folder = write_split(tmp_path / "split", 3)
    merge(folder)
    clean = load_stack(folder / "clean.npz")
    assert all(np.array_equal(a, b) for a, b in zip(load_stack(folder / "merged.npz"), clean + clean))
    assert list(pd.read_csv(folder / "merged.csv")["item"]) == list(range(6))
    RULES["add_noise"](folder)
    again = load_stack(folder / "out.npz")  # seed 1 in one generator, item after item
    from temdenoise.noise import apply_condition, parse_condition

    rng = np.random.default_rng(1)
    expected = [apply_condition(item, parse_condition("poisson-20"), rng, 0.5) for item in clean]
    assert all(np.array_equal(a, b) for a, b in zip(again, expected))


def test_items_past_9999_keep_their_place(tmp_path):
    """Members are named 0000...9999, 10000...: read back by number, not as text (as text 10000
    would come between 1000 and 1001)."""
    count = 10_003
    save_stack(tmp_path / "many.npz", (np.full((1, 1), index, dtype=np.float32) for index in range(count)))
    with StackReader(tmp_path / "many.npz") as stack:
        assert len(stack) == count
        assert [float(stack[i][0, 0]) for i in (1000, 1001, 9999, 10_000, count - 1)] == [1000, 1001, 9999, 10_000,
                                                                                           count - 1]
        assert [float(a[0, 0]) for a in stack[9998:10_001]] == [9998, 9999, 10_000]
