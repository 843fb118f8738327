"""Files written by real microscope software (../shared/data/real_files, its README.md): each gives
the outcome that README's table asks for: read with its calibration, read once, read as a movie,
or refused in one line naming the file and the reason (a spectrum, a spectrum image, a diffraction
pattern, a STEM detector's image as counts, a pixel size far from the model's)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from temdenoise import cli
from temdenoise.readers import RecordingError, read_recording
from temdenoise.realdata import Stated, calibrate, expand_inputs
from test_realdata import DNCNN, PIXEL_SIZE, counts_of, lattice, model_folder, write_mrc

REAL_FILES = REPO.parent / "shared" / "data" / "real_files"
pytestmark = pytest.mark.skipif(not REAL_FILES.is_dir(), reason="shared/data/real_files not beside the repository")


def refusal(path: Path, **read: str) -> str:
    """The one-line message with which reading ``path`` is refused."""
    with pytest.raises(RecordingError) as caught:
        read_recording(path, **read)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    return message


def calibration_refusal(path: Path, stated: Stated = Stated()) -> str:
    """The one-line message with which calibrating ``path``'s recording is refused."""
    with pytest.raises(RecordingError) as caught:
        calibrate(read_recording(path), stated)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    return message


@pytest.mark.parametrize("name", ["digitalmicrograph/2D/test-1.dm3", "digitalmicrograph/2D/test-1.dm4"])
def test_dm_images_read_with_the_files_calibration(name):
    recording = read_recording(REAL_FILES / name)
    assert recording.data.shape == (2, 2) and recording.kind == "tem" and recording.integer
    assert recording.pixel_size is None  # the file's axes have scale 1 and no unit: no length calibration
    assert "pass --pixel-size" in calibration_refusal(REAL_FILES / name)


def test_dm_stack_reads_as_a_movie():
    recording = read_recording(REAL_FILES / "digitalmicrograph/3D/test-1.dm4")
    assert recording.is_movie and recording.data.shape == (2, 2, 2)


@pytest.mark.parametrize("name, detector", [("digitalmicrograph/2D/test_STEM_image.dm3", "scanning detector"),
                                            ("mrc/HAADFscan.mrc", "HAADF")])
def test_stem_images_are_not_taken_as_counts(name, detector):
    recording = read_recording(REAL_FILES / name)
    assert recording.kind == "stem" and recording.detector == detector
    assert "STEM" in calibration_refusal(REAL_FILES / name) and "--counts-per-unit" in calibration_refusal(REAL_FILES / name)
    stated = calibrate(recording, Stated(pixel_size=1.0, counts_per_unit=0.01))  # a stated gain is used as stated
    assert stated.counts_per_unit == 0.01 and stated.gain is None


def test_multi_signal_dm_chooses_the_haadf_image_and_refuses_it_as_counts():
    path = REAL_FILES / "digitalmicrograph/2D/multi_signal.dm3"
    recording = read_recording(path)
    assert recording.title == "HAADF" and recording.kind == "stem" and recording.data.shape == (512, 512)
    assert len(recording.signals) == 2  # the HAADF image and a 1-D plot
    assert "STEM" in calibration_refusal(path)
    assert "not an image" in refusal(path, signal="Plot")
    assert "no signal titled 'ADF'" in refusal(path, signal="ADF")


@pytest.mark.parametrize("name, reason", [
    ("digitalmicrograph/2D/test_diffraction_pattern.dm3", "diffraction pattern"),
    ("digitalmicrograph/3D/EELS_SI.dm4", "spectrum image"),
    ("digitalmicrograph/1D/test-EELS_spectrum.dm3", "a spectrum, not an image"),
])
def test_diffraction_and_spectra_are_refused(name, reason):
    assert reason in refusal(REAL_FILES / name)


@pytest.mark.parametrize("folder, shape", [("tia/new", (128, 128)), ("tia/old", (5, 64, 64))])
def test_a_tia_pair_is_one_recording(folder, shape):
    emi, ser = sorted((REAL_FILES / folder).iterdir())  # <name>.emi, <name>_1.ser
    assert expand_inputs([REAL_FILES / folder]) == expand_inputs([emi, ser]) == expand_inputs([ser]) == [emi]
    recording = read_recording(emi)
    assert recording.data.shape == shape and recording.kind == "tem" and recording.detector  # the camera's name
    assert np.array_equal(recording.data, read_recording(ser).data)


def test_tia_search_image_far_from_the_models_pixel_is_refused(tmp_path, capsys):
    """128 x 128 at 52.6 A/px against a 0.25 A model: a x210 resampling (8.9 GB before) is refused
    before any work, naming both pixel sizes; the pair counts as one file."""
    model = model_folder(tmp_path / "models", "bf_dncnn", DNCNN)
    emi = REAL_FILES / "tia/new/128x128-TEM_search.emi"
    status = cli.main(["denoise", str(emi), str(emi.with_name("128x128-TEM_search_1.ser")), "--model", str(model),
                       "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert status == 1 and not (tmp_path / "out").exists()
    errors = capsys.readouterr().err.splitlines()
    summary = next(i for i, line in enumerate(errors) if line.endswith("file(s) failed:"))
    assert errors[summary].endswith(" 1 file(s) failed:") and len(errors) == summary + 2
    line = errors[summary + 1]
    assert str(emi) in line and "52.61 A" in line and "0.25 A" in line and "x210" in line


def test_emd_images_are_read():
    recording = read_recording(REAL_FILES / "emd/example_image.emd")
    assert recording.data.shape == (3, 3) and recording.kind == "tem"


def test_velox_emd_with_eds_streams_reads_its_image_signal():
    path = REAL_FILES / "emd/veloxeels/example_velox_EELS_EDS.emd"
    recording = read_recording(path)  # EDS streams need rosettasciio's eds-stream extra (sparse)
    assert recording.title == "a" and recording.data.shape == (128, 128)
    assert recording.kind == "stem" and recording.detector == "DF-S"  # every image of this file is a STEM one
    assert recording.pixel_size == pytest.approx(1586.58, rel=1e-5)
    kinds = " ".join(recording.signals)
    assert "(spectrum image" in kinds and "(map" in kinds and "(spectrum," in kinds
    assert "elemental map" in refusal(path, signal="Fe-EELS")
    assert "STEM" in calibration_refusal(path)


@pytest.mark.parametrize("name", ["test_loading_image_saved_with_DM.tif", "test_loading_image_saved_with_imageJ.tif"])
def test_tiff_calibration_from_dm_tags_and_imagej(name):
    recording = read_recording(REAL_FILES / "tiff" / name)
    assert recording.pixel_size == pytest.approx(1686.747, rel=1e-5)  # 0.16867 um in the file's tags
    assert recording.pixel_size_y == pytest.approx(recording.pixel_size)


def test_dm_tiff_stack_has_its_frame_interval_and_non_square_pixels_are_refused():
    path = REAL_FILES / "tiff/test_loading_image_saved_with_DM_stack.tif"
    recording = read_recording(path)
    assert recording.data.shape == (2, 68, 68) and recording.frame_interval == pytest.approx(2.5)
    assert recording.pixel_size == pytest.approx(1686.74, rel=1e-5)
    assert recording.pixel_size_y == pytest.approx(16867.4, rel=1e-5)  # as the file's DM tags say
    assert "not square" in calibration_refusal(path)


def test_mrc_movie_reads_as_a_movie():
    recording = read_recording(REAL_FILES / "mrc/Custom_movie.mrc")
    assert recording.is_movie and recording.data.shape == (30, 16, 16) and recording.kind == "tem"
    assert recording.pixel_size is None  # its voxel size is -1 nm: not calibrated


def test_three_scan_files_give_three_outputs(tmp_path, monkeypatch):
    """./scan.dm3, ./scan.tif and sub/scan.dm3 (one stem, two folders): three outputs, mirrored."""
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    shutil.copy(REAL_FILES / "digitalmicrograph/2D/test-1.dm3", work / "scan.dm3")
    shutil.copy(REAL_FILES / "tiff/test_loading_image_saved_with_DM.tif", work / "scan.tif")
    shutil.copy(REAL_FILES / "digitalmicrograph/2D/test-1.dm3", work / "sub" / "scan.dm3")
    model = model_folder(tmp_path / "models", "bf_dncnn", DNCNN)
    monkeypatch.chdir(work)
    status = cli.main(["denoise", "./scan.dm3", "./scan.tif", "sub/scan.dm3", "--model", str(model), "--out", "out",
                       "--device", "cpu", "--pixel-size", str(PIXEL_SIZE), "--counts-per-unit", "1"])
    assert status == 0
    outputs = sorted(str(p.relative_to(work / "out")) for p in (work / "out").rglob("*.denoised.tif"))
    assert outputs == ["scan.dm3.denoised.tif", "scan.tif.denoised.tif", "sub/scan.dm3.denoised.tif"]
    assert read_recording(work / "out/scan.tif.denoised.tif").data.shape == (68, 68)


def readme_commands() -> list[str]:
    """The shell commands of README's "Denoise your own data" section, as written."""
    text = (REPO / "README.md").read_text()
    start = text.index("## Denoise your own data")
    section = text[start:text.index("\n## ", start)]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_real_data_commands_run_as_written(tmp_path, monkeypatch, capsys):
    """README's `temdenoise denoise` / `score` commands, verbatim, in a folder holding
    `recordings/` (real files, and one simulated movie at the models' pixel size) and the model
    folders they name (random weights): the simulated movie is denoised and scored, each real
    file is refused on its own line for its own reason. README's snakemake command names its
    target and both config files, and the default config merged with the README's dataset entry
    passes the workflow's schema."""
    commands = readme_commands()
    # install, denoise, score, export (run by tests/test_export.py, which needs a trained model), workflow
    assert [c.split()[:2] for c in commands][1:4] == [["temdenoise", "denoise"], ["temdenoise", "score"],
                                                      ["temdenoise", "export"]]
    assert [c.split()[0] for c in commands] == ["pip", "temdenoise", "temdenoise", "temdenoise", "snakemake"]
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for name in ["tia/old/64x64x5_TEM_preview.emi", "tia/old/64x64x5_TEM_preview_1.ser", "mrc/HAADFscan.mrc",
                 "tiff/test_loading_image_saved_with_DM.tif", "digitalmicrograph/2D/test_diffraction_pattern.dm3"]:
        shutil.copy(REAL_FILES / name, recordings)
    write_mrc(recordings / "simulated.mrc", np.stack([counts_of(lattice(64, 5), 20 + t) for t in range(3)]).astype(np.int16),
              PIXEL_SIZE)
    for name in ("dncnn", "bf_dncnn"):
        model_folder(tmp_path / "results/models/tem", name, DNCNN)
    monkeypatch.chdir(tmp_path)
    refusals = {  # denoise checks the pixel size against the model's first; score thins before any model
        "denoise": {"64x64x5_TEM_preview.emi": "x251", "HAADFscan.mrc": "x227",
                    "test_loading_image_saved_with_DM.tif": "x6747", "test_diffraction_pattern.dm3": "diffraction"},
        "score": {"64x64x5_TEM_preview.emi": "not integer counts", "HAADFscan.mrc": "STEM",
                  "test_loading_image_saved_with_DM.tif": "gain cannot be estimated",
                  "test_diffraction_pattern.dm3": "diffraction"},
    }
    for command in commands[1:3]:
        capsys.readouterr()
        assert cli.main(shlex.split(command)[1:]) == 1
        lines = capsys.readouterr().err.splitlines()
        failed = lines[next(i for i, line in enumerate(lines) if line.endswith("4 file(s) failed:")) + 1:]
        expected = refusals[shlex.split(command)[1]]
        assert len(failed) == len(expected)
        for line in failed:
            name = next(name for name in expected if f"recordings/{name}:" in line)
            assert expected[name] in line, line
    assert sorted(p.name for p in (tmp_path / "denoised").iterdir()) == ["simulated.mrc.denoised.json",
                                                                         "simulated.mrc.denoised.tif"]
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    assert set(ranking.model) == {"noisy", "dncnn", "bf_dncnn"} and (ranking.recordings == 1).all()

    from snakemake.cli import get_argument_parser
    from snakemake.utils import update_config, validate

    parsed = get_argument_parser().parse_args(shlex.split(commands[4])[1:])
    assert parsed.targets == ["results/tables/real_<name>.md"]
    assert [str(path) for path in parsed.configfile] == ["config/config.yaml", "my.yaml"]
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    update_config(config, {"datasets": {"mine": {"domain": "tem", "source": "files", "files": {
        "path": "recordings/", "dose": 400, "models_from": "tem", "methods": ["dncnn", "bf_dncnn"]}}}})
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"), set_default=True)
