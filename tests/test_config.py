"""Config validation: malformed configs fail before any job runs, naming the bad key."""

import copy

import pytest
import yaml

from conftest import REPO, make_paper_natural_folders

VALID = yaml.safe_load((REPO / "tests/configs/natural_only.yaml").read_text())


def mutated(change):
    config = copy.deepcopy(VALID)
    change(config)
    return config


CASES = {
    "wrong type": (lambda c: c.update(seed="zero"), "seed"),
    "unknown key": (lambda c: c.update(colour="blue"), "colour"),
    "negative dose": (lambda c: c["datasets"]["natural"]["noise"].update(poisson=[-5]), "poisson"),
    "empty method list": (lambda c: c["benchmark"].update(natural=[]), "natural"),
    "unknown method": (lambda c: c["benchmark"].update(natural=["wiener", "bm3d"]), "benchmark.natural"),
    "unknown family": (lambda c: c["methods"].update(nlm={"family": "nlmeans"}), "methods.nlm.family"),
    "override of an unknown dataset": (
        lambda c: c["methods"].update(net={"family": "dncnn", "datasets": {"tem": {"params": {"residual": False}}}}),
        "methods.net.datasets.tem",
    ),
    "unknown recipe on one dataset": (
        lambda c: c.update(training={"quick": {"epochs": 1}})
        or c["methods"].update(net={"family": "dncnn", "datasets": {"natural": {"training": "slow"}}}),
        "methods.net.datasets.natural.training",
    ),
    "optional extra not installed": (
        lambda c: c.update(plugins={"licensed": {"kind": "classical", "module": "x", "extra": "absent_extra"}})
        or c["methods"].update(licensed={"family": "licensed"}),
        'pip install -e ".[absent_extra]"',
    ),
    "noise2noise on Gaussian noise": (
        lambda c: c.update(training={"quick": {"epochs": 1}})
        or c["methods"].update(n2n={"family": "dncnn", "objective": {"name": "noise2noise"},
                                    "train_noise": {"kind": "gaussian", "range": [10, 60]}})
        or c["benchmark"]["natural"].append("n2n"),
        "methods.n2n.objective",
    ),
    "models_from an unknown dataset": (
        lambda c: c["datasets"].update(set12={**c["datasets"]["natural"], "models_from": "bsd"}),
        "datasets.set12.models_from",
    ),
    "models_from with other noise conditions": (
        lambda c: c["datasets"].update(set12={**c["datasets"]["natural"], "models_from": "natural",
                                              "noise": {"gaussian": [99]}}),
        "datasets.set12.models_from",
    ),
    "master seed among the training seeds": (lambda c: c.update(seed=3, training_seeds=[1, 3]), "training_seeds"),
    "missing folder": (
        lambda c: c["datasets"]["natural"].update(source="folder", train_folder="/nonexistent", test_folder="/x"),
        "datasets.natural.train_folder",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_config_fails_before_any_job(case, workflow_runner, tmp_path):
    change, key = CASES[case]
    result = workflow_runner(mutated(change), "--dry-run", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert key in output, output[-3000:]
    assert not (tmp_path / "results").exists()


def test_entry_on_a_dataset_merges_its_overrides():
    from temdenoise.registry import entry_on

    entry = {
        "family": "dncnn",
        "params": {"depth": 7, "channels": 16},
        "training": "quick",
        "resources": {"threads": 1},
        "datasets": {"tem": {"params": {"residual": False}, "training": "quick_long"}},
    }
    on_tem = entry_on(entry, "tem")
    assert on_tem == {
        "family": "dncnn",
        "params": {"depth": 7, "channels": 16, "residual": False},
        "training": "quick_long",
        "resources": {"threads": 1},
    }
    assert entry_on(entry, "natural") == entry_on(entry, None) == {k: v for k, v in entry.items() if k != "datasets"}
    assert entry["params"] == {"depth": 7, "channels": 16}  # the config entry itself is untouched
    with pytest.raises(KeyError, match="datasets.tem.family"):
        entry_on({"family": "dncnn", "datasets": {"tem": {"family": "unet"}}}, "tem")


def test_valid_config_passes_dry_run(workflow_runner):
    result = workflow_runner(VALID, "--dry-run")
    assert "aggregate" in result.stdout


@pytest.mark.parametrize("name", ["config.yaml", "laptop.yaml", "paper.yaml"])
def test_shipped_configs_validate_and_build_the_whole_dag(name, workflow_runner, tmp_path):
    # every method a shipped config names resolves to a family, a recipe and resources
    make_paper_natural_folders(tmp_path)  # the image folders paper.yaml reads
    result = workflow_runner(REPO / "config" / name, "--dry-run")
    for rule in ("tem_table", "generalization", "gaintuning_case", "train_udvd", "html_report"):
        assert rule in result.stdout, (rule, result.stdout[-2000:])
    # the headline comparisons' networks are trained again with every training seed
    seeds = yaml.safe_load((REPO / "config" / name).read_text()).get("training_seeds", [])
    for seed in seeds:
        assert f"udvd3~seed{seed}/model.pt" in result.stdout and f"dncnn~seed{seed}/model.pt" in result.stdout


def test_configfile_on_the_command_line_replaces_the_default(workflow_runner, tmp_path):
    """``--configfile laptop.yaml`` is the whole config: no key of config/config.yaml leaks into it
    (Snakemake would merge the two). The default here carries a key the schema rejects, so a merge
    fails validation naming it, and the default alone (no --configfile) does fail."""
    import subprocess
    import sys

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump({**VALID, "colour": "blue"}))
    result = workflow_runner(VALID, "--dry-run")
    assert "colour" not in result.stdout + result.stderr
    default_only = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--dry-run", "--cores", "1"],
        capture_output=True, text=True,
    )
    assert default_only.returncode != 0
    assert "colour" in default_only.stdout + default_only.stderr
