# Helpers shared by every stage: config look-ups, cross-reference checks, resources, targets.
import functools
import glob
import os
import re
import sys

import yaml
from pathlib import Path

# The parse imports the package from this source tree, installed or not, and only its light
# modules (standard library): `snakemake --lint` and `-n` work where only Snakemake is installed
# (tests/test_lint.py blocks torch, numpy, abTEM... and checks). Jobs get the same tree through
# PYTHONPATH (below). The repository root is found from this file (workflow.basedir is the directory of the
# Snakefile named: the root, or workflow/ for the catalog's entry workflow/Snakefile).
REPO = Path(workflow.current_basedir).parents[1]
sys.path.insert(0, str(REPO / "src"))

from temdenoise.adapt.settings import selects
from temdenoise.conditions import condition_name
from temdenoise.families import declare_config_families, declared_families, missing_extra
from temdenoise.jobmemory import folder_split, job_mem_mb, piecewise_split, simulated_split, skimage_split
from temdenoise.provenance import config_sha256
from temdenoise.registry import (
    entry_on,
    replicate_entries,
    replicate_name,
    replicate_of,
    supervised_biased,
    supervised_networks,
    takes_videos,
)
from temdenoise.runtime import derive_seed
from temdenoise.scheduling import one_pending_reevaluation

# Snakemake 9.27.1's scheduler piles up rate-limit timers (snakemake#2967), one more per finished job, each waking its
# loop (21% of a core late in the laptop config); keep one pending (temdenoise/scheduling.py).
one_pending_reevaluation()

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
RESOURCE_DEFAULTS = {key: spec["default"] for key, spec in SCHEMA["$defs"]["resources"]["properties"].items()}

# Targets of `rule all`; every stage file appends what it produces.
ALL_TARGETS = []


class ConfigError(ValueError):
    """A config value that the schema cannot check (a cross-reference, a missing folder)."""


# Families from outside the package: the config's `plugins:` (entry points are found by themselves).
declare_config_families(config["plugins"])


def check_config(config):
    """Cross-reference checks, run before any job; each message names the offending key."""
    known = declared_families()
    for name, entry in config["methods"].items():
        if entry["family"] not in known:
            raise ConfigError(
                f"methods.{name}.family: unknown family {entry['family']!r}; registered: {', '.join(sorted(known))}"
            )
        if extra := missing_extra(entry["family"]):
            raise ConfigError(
                f"methods.{name}.family: {entry['family']!r} needs the optional extra {extra!r}, which is not "
                f'installed: pip install -e ".[{extra}]" (read its licence first: README, "Optional extras")'
            )
        if "objective" in entry and known[entry["family"]].kind != "network":
            raise ConfigError(f"methods.{name}.objective: only networks are trained with an objective")
        for dataset in entry.get("datasets", {}):
            if dataset not in config["datasets"]:
                raise ConfigError(f"methods.{name}.datasets.{dataset}: no such dataset under datasets")
        for dataset in [None, *entry.get("datasets", {})]:
            recipe = entry_on(entry, dataset).get("training", "quick")
            where = f"methods.{name}" + (f".datasets.{dataset}" if dataset else "")
            if known[entry["family"]].kind == "network" and recipe not in config["training"]:
                raise ConfigError(f"{where}.training: no recipe {recipe!r} under training")
    for dataset, methods in config["benchmark"].items():
        if dataset not in config["datasets"]:
            raise ConfigError(f"benchmark.{dataset}: no such dataset under datasets")
        for method in methods:
            if method not in config["methods"]:
                raise ConfigError(f"benchmark.{dataset}: method {method!r} is not a key of methods")
    for name, entry in config["datasets"].items():
        if entry["source"] == "folder":
            for key in ("train_folder", "test_folder"):
                if not entry.get(key):
                    raise ConfigError(f"datasets.{name}.{key}: required with source folder")
                if not Path(entry[key]).is_dir():
                    raise ConfigError(
                        f"datasets.{name}.{key}: folder not found: {entry[key]!r} (resolved from the working directory: "
                        f"{Path(entry[key]).resolve()}); README, 'The natural-image sets', says how to get them"
                    )
        if entry.get("models_from"):
            check_models_from(name, entry)
        noise = entry.get("train_noise")
        if noise and noise["range"][0] > noise["range"][1]:
            raise ConfigError(f"datasets.{name}.train_noise.range: low bound above high bound")


def real_recordings(dataset):
    """The recording files of a dataset with source files: a folder's files, or a glob's matches (sorted).

    A relative path is looked up in the working directory, then in the repository (so that the stand-in
    recordings of tests/configs/realdata.yaml are found from any --directory)."""
    path = config["datasets"][dataset]["files"]["path"]
    if not Path(path).is_absolute() and not glob.glob(path):
        path = str(REPO / path)
    if Path(path).is_dir():
        return sorted(str(p) for p in Path(path).iterdir() if p.is_file() and not p.name.startswith("."))
    return sorted(glob.glob(path))


def check_recordings(name, files):
    """A files dataset names recordings that exist and networks trained on a simulated dataset."""
    where = f"datasets.{name}.files"
    if not files.get("path") or not real_recordings(name):
        raise ConfigError(f"{where}.path: no recording found at {files.get('path')!r}")
    if files["methods"] and files["models_from"] not in config["datasets"]:
        raise ConfigError(f"{where}.models_from: no dataset {files['models_from']!r} under datasets")
    for method in files["methods"]:
        if method not in config["methods"] or not is_network(method):
            raise ConfigError(f"{where}.methods: {method!r} is not a network method")
        if method in udvd_methods() and files["dose"] is None:
            raise ConfigError(f"{where}.dose: {method} trains on the recordings and needs their dose")


def real_condition(dataset):
    """The noise condition of a files dataset's thinned recordings (Poisson at fraction x dose)."""
    files = config["datasets"][dataset]["files"]
    return condition_name("poisson", files["fraction"] * files["dose"])


def real_thinned(dataset):
    return {name: f"results/real/{dataset}/{name}" for name in ("input.npz", "target.npz", "items.csv")}


def real_models(wildcards):
    """Model files ranked on a files dataset: self-supervised ones trained on it, the others on models_from."""
    files = config["datasets"][wildcards.dataset]["files"]
    return [
        f"results/models/{wildcards.dataset if m in udvd_methods() else files['models_from']}/{m}/model.pt"
        for m in files["methods"]
    ]


def trainable_datasets():
    """Datasets whose models the `train` and `train_udvd` rules train (files datasets: `train_real`;
    a dataset with models_from uses another's)."""
    return [
        name
        for name, entry in config["datasets"].items()
        if entry["source"] != "files" and not entry.get("models_from")
    ]


def exportable_datasets():
    """Simulated TEM image datasets (Poisson noise, no videos): their supervised networks can be
    exported as BioImage Model Zoo packages (rule export_bioimageio, temdenoise.export)."""
    return [
        name
        for name in trainable_datasets()
        if config["datasets"][name]["domain"] == "tem" and name not in video_datasets()
    ]


def models_source(dataset):
    """The dataset whose trained networks and classical fits `denoise` uses on ``dataset``."""
    return config["datasets"][dataset].get("models_from") or dataset


def check_models_from(name, entry):
    """datasets.<name>.models_from names a dataset that trains its own models, in the same domain,
    with the same noise conditions (each condition's classical fit exists there)."""
    source, where = entry.get("models_from"), f"datasets.{name}.models_from"
    other = config["datasets"].get(source)
    if other is None or source == name:
        raise ConfigError(f"{where}: {source!r} is not another dataset under datasets")
    if other.get("models_from") or "files" in (entry["source"], other["source"]):
        raise ConfigError(f"{where}: {source!r} must train its own models (no models_from, neither source files)")
    for key in ("domain", "noise"):
        if entry.get(key) != other.get(key):
            raise ConfigError(f"{where}: {name} and {source} differ in {key} ({entry.get(key)} vs {other.get(key)})")


check_config(config)


def datasets_with_source(*sources):
    return [name for name, entry in config["datasets"].items() if entry["source"] in sources]


def alternatives(names):
    """A wildcard regex accepting exactly ``names`` (never matches when empty)."""
    return "|".join(map(re.escape, names)) if names else "(?!x)x"


def conditions(dataset):
    """Names of the stored noise conditions of ``dataset``."""
    noise = config["datasets"][dataset].get("noise", {})
    return [condition_name(kind, level) for kind in ("poisson", "gaussian") for level in noise.get(kind, [])]


def method_entry(model, dataset=None):
    """The ``methods:`` entry of ``model`` as used on ``dataset`` (its per-dataset overrides merged in)."""
    return entry_on(config["methods"][model], dataset)


def is_network(model):
    return declared_families()[method_entry(model)["family"]].kind == "network"


def fits(model):
    """Whether a classical method learns a state from training pairs (a `fit_classical` job)."""
    return declared_families()[method_entry(model)["family"]].fits


def network_methods():
    return [m for m in config["methods"] if is_network(m)]


def classical_methods():
    return [m for m in config["methods"] if not is_network(m)]


# --- training helpers (train.smk: supervised CNNs and the TEM table) ---
def supervised_methods():
    """Networks trained supervised by the `train` rule (video families use `train_udvd`, entries
    with an `objective` `train_noisy_images`)."""
    return supervised_networks({m: method_entry(m) for m in config["methods"]})


def image_network_methods():
    """Networks applied image by image (not video families), trained supervised or self-supervised."""
    return [m for m in network_methods() if not takes_videos(method_entry(m))]


def noisy_image_methods():
    """Image networks trained self-supervised (Noise2Self / Noise2Void / Noise2Noise) by `train_noisy_images`."""
    return [m for m in image_network_methods() if "objective" in method_entry(m)]


def training_recipe(dataset, model):
    return config["training"][method_entry(model, dataset).get("training", "quick")]


def training_noise(dataset, model):
    """The method's own train_noise, else the dataset's (a clear error when neither is set)."""
    noise = method_entry(model, dataset).get("train_noise") or config["datasets"][dataset].get("train_noise")
    if not noise:
        raise ConfigError(f"methods.{model}.train_noise or datasets.{dataset}.train_noise must be set to train {model}")
    return noise


def tem_table_settings():
    return config["experiments"].get("tem_table", {})


def tem_table_dataset():
    return tem_table_settings().get("dataset", "tem")


def tem_table_methods():
    """The configured methods, else the dataset's benchmark methods."""
    return tem_table_settings().get("methods") or config["benchmark"].get(tem_table_dataset(), [])


def tem_table_networks():
    return [m for m in tem_table_methods() if m in image_network_methods()]


def tem_table_conditions():
    """The configured conditions, else every Poisson condition of the dataset."""
    return tem_table_settings().get("noise") or [c for c in conditions(tem_table_dataset()) if c.startswith("poisson-")]


# --- end of training helpers ---


# Stages whose jobs train or adapt a network: a method's own `resources` apply to these jobs only
# (evaluate, denoise, tables and analyses keep their stage's, so a paper-size method does not make
# every job that merely reads its output ask a cluster for a day and 32 GB).
METHOD_STAGES = ("train", "adapt")


def stage_resources(stage, model=None):
    """Resources of a job: schema defaults < config resources.<stage> < the method's own resources
    (train and adapt jobs of ``model``); a network's denoise job takes only its gpu / gpu_model."""
    merged = dict(RESOURCE_DEFAULTS)
    merged.update(config["resources"].get(stage, {}))
    if model is not None:
        own = method_entry(model).get("resources", {})
        if stage in METHOD_STAGES:
            merged.update(own)
        elif stage == "denoise" and is_network(model):
            merged.update({key: own[key] for key in ("gpu", "gpu_model") if key in own})
    return merged


def resource(stage, key, model=None):
    """A resource value for a rule's threads/resources. ``model`` (a function of the wildcards)
    names the method whose job this is; by default the {model} wildcard, when the rule has one."""

    def lookup(wildcards, attempt):
        name = model(wildcards) if model else getattr(wildcards, "model", None)
        resources = stage_resources(stage, name if name in config["methods"] else None)
        value = resources[key]
        if key == "gpu_model" and not resources["gpu"]:
            return ""  # a GPU type without a GPU request would become --gpus=<type>:0
        # A retried job (--retries, profiles/) most often ran out of memory or time: grow both.
        return value * attempt if key in ("mem_mb", "runtime") else value

    return lookup


def denoise_group(wildcards):
    """The group of a denoise job that asks for a GPU: one per network and dataset, all its noise
    conditions (paper.yaml: 285 GPU denoise jobs in its dry run); CPU denoise jobs are in none.

    Each such group's jobs are unconnected, so Snakemake submits them as one only when group-components
    names the group: every group here counts as "denoise_gpu" for it, as a group name with wildcards
    counts as its pattern (Workflow.parent_groupids). profiles/slurm sets denoise_gpu=100 and one GPU per
    submission, so a network's conditions run one after another in one SLURM job (docs/cluster.md,
    "Denoise jobs in groups"). A local run ignores groups."""
    if not resource("denoise", "gpu")(wildcards, 1):
        return None
    name = f"denoise_{wildcards.dataset}_{wildcards.model}"
    workflow.parent_groupids[name] = "denoise_gpu"
    return name


# -- memory from the data (temdenoise.jobmemory, docs/cluster.md) --
@functools.cache
def split_size(dataset, split):
    """The float32 arrays of a dataset's split, computed from the config (a folder's from its image headers)."""
    entry = config["datasets"][dataset]
    if entry["source"] == "simulate":
        return simulated_split(SIMULATION[dataset], split)
    if entry["source"] == "piecewise":
        return piecewise_split(GAINTUNING["piecewise"], split)
    if entry["source"] == "skimage":
        return skimage_split(split)
    if entry["source"] == "folder":
        return folder_split(entry, split)
    raise ConfigError(f"datasets.{dataset}: no array size for source {entry['source']!r} (no job of it holds a split)")


def one_item(split=None):
    """For `memory`: a job that streams ``split`` (default: the {split} wildcard) holds its largest item."""
    return lambda wildcards: split_size(wildcards.dataset, split or wildcards.split).largest


def whole_split(wildcards):
    """For `memory`: a job that holds the whole {split} of its {dataset}."""
    return split_size(wildcards.dataset, wildcards.split).total


def training_items(copies=lambda dataset, model: 1):
    """For `memory`: a training job holds its training split and its recipe's validation images,
    ``copies(dataset, model)`` times (one per stored noisy recording it trains on)."""

    def held(wildcards):
        count = training_recipe(wildcards.dataset, wildcards.model)["validation_images"]
        train = split_size(wildcards.dataset, "train").total
        validation = split_size(wildcards.dataset, "validation").first(count)
        return copies(wildcards.dataset, wildcards.model) * (train + validation)

    return held


def memory(stage, rule, held):
    """``mem_mb`` of a job that holds arrays: the larger of its stage's (or method's) mem_mb and what
    ``held(wildcards)`` bytes need by the measured footprint of ``rule``; grown on retries like mem_mb."""
    configured = resource(stage, "mem_mb")

    def lookup(wildcards, attempt):
        return max(configured(wildcards, attempt), job_mem_mb(rule, held(wildcards)) * attempt)

    return lookup


def clean_split(dataset, split):
    return f"results/data/{dataset}/{split}.npz"


def clean_metadata(dataset, split):
    return f"results/data/{dataset}/{split}.csv"


def dataset_reference_counts(dataset):
    """Counts per vacuum pixel at the base dose of the dataset's seed_counts PSNR (scoring rules' params)."""
    return config["datasets"][dataset]["reference_counts"]


def noisy_split(dataset, noise, split):
    return f"results/noisy/{dataset}/{noise}/{split}.npz"


def model_artifact(dataset, model, noise):
    """What `denoise` loads: a trained network, or a classical state fitted on this condition
    (those of the dataset's models_from, when set)."""
    source = models_source(dataset)
    if is_network(model):
        return f"results/models/{source}/{model}/model.pt"
    if not fits(model):
        return []  # calibrated on the noisy image itself: nothing fitted
    return f"results/models/{source}/{model}/fit-{noise}.npz"


def metrics_file(dataset, noise, model):
    return f"results/metrics/{dataset}/{noise}/{model}.csv"


def video_datasets():
    """Datasets whose items are (T, H, W) videos (datasets.<name>.simulation.video.frames > 0)."""
    return [
        name
        for name, dataset in config["datasets"].items()
        if dataset.get("simulation", {}).get("video", {}).get("frames", 0) > 0
    ]


def frame_metrics_file(dataset, noise, model):
    """Per-frame scores of a video dataset, beside the per-video ones of `metrics_file`."""
    return f"results/metrics/{dataset}/{noise}/{model}.frames.csv"


# -- GainTuning (experiments.gaintuning; rules in adapt.smk) --

GAINTUNING = config["experiments"].get("gaintuning", {})
GAINTUNING_CASES = GAINTUNING.get("cases", {})


def check_gaintuning():
    """Cross-references of experiments.gaintuning, each message naming the bad key."""
    for name, case in GAINTUNING_CASES.items():
        for key in ("train", "test"):
            if case[key] not in config["datasets"]:
                raise ConfigError(f"experiments.gaintuning.cases.{name}.{key}: no dataset {case[key]!r}")
        for method in [case["model"], *case.get("compare", [])]:
            if method not in config["methods"] or not is_network(method):
                raise ConfigError(f"experiments.gaintuning.cases.{name}: {method!r} is not a network method")
    for part in ("curve", "net_bias"):
        chosen = GAINTUNING.get(part, {}).get("case")
        if chosen is not None and chosen not in GAINTUNING_CASES:
            raise ConfigError(f"experiments.gaintuning.{part}.case: no case {chosen!r} under cases")
    curve = GAINTUNING.get("curve", {})
    if curve.get("case") and curve["steps"] % curve["every"]:
        raise ConfigError("experiments.gaintuning.curve.every must divide curve.steps")


def gaintuning_selects(case):
    """True when the case's loss / lr / steps are chosen on validation images (rule gaintuning_select)."""
    return selects(GAINTUNING, GAINTUNING_CASES[case])


def adapted_model(part=None):
    """For `resource`: a function of the wildcards naming the method a GainTuning job adapts, the
    model of its {case} wildcard or of the case that experiments.gaintuning.<part> names."""

    def name(wildcards):
        return GAINTUNING_CASES[GAINTUNING[part]["case"] if part else wildcards.case]["model"]

    return name


def gaintuning_selection(case):
    """The case's selection.json as a list (empty when the config fixes the setting)."""
    return [f"results/adapt/{case}/selection.json"] if gaintuning_selects(case) else []


def gaintuning_case_inputs(case, noises=None, compared=True, split="test"):
    """Input files of a case on ``split``: its model, the compared models, the noisy items
    (``noises`` only) and the split's metadata (pixel sizes), with the chosen setting when it is
    selected on validation. Never a clean array: test items are scored by separate rules."""
    entry = GAINTUNING_CASES[case]
    return {
        "model": f"results/models/{entry['train']}/{entry['model']}/model.pt",
        "compared": (
            [f"results/models/{entry['test']}/{m}/model.pt" for m in entry.get("compare", [])] if compared else []
        ),
        "noisy": [noisy_split(entry["test"], noise, split) for noise in (noises or entry["noise"])],
        "metadata": clean_metadata(entry["test"], split),
        "selection": gaintuning_selection(case) if split == "test" else [],
    }


def gaintuning_selection_inputs(case):
    """Inputs of the validation sweep: the case's model, noisy and clean validation images."""
    entry = GAINTUNING_CASES[case]
    return {
        **gaintuning_case_inputs(case, compared=False, split="validation"),
        "clean": clean_split(entry["test"], "validation"),
    }


def gaintuning_entries(case):
    """Method entries of a case's networks as trained (see gaintuning_case_inputs): the adapted
    model on the case's train dataset, the compared ones on its test dataset."""
    entry = GAINTUNING_CASES[case]
    return {
        "model": method_entry(entry["model"], entry["train"]),
        "compared": {m: method_entry(m, entry["test"]) for m in entry.get("compare", [])},
    }


# Robustness analyses (analyze.smk): experiments.generalization / net_bias / equivalent_filters.
GENERALIZATION = config["experiments"].get("generalization", {}).get("datasets", {})
NET_BIAS = config["experiments"].get("net_bias", {})
NET_BIAS_DATASETS = NET_BIAS.get("datasets", {})
FILTERS = config["experiments"].get("equivalent_filters", {}).get("datasets", {})


def check_analyses():
    """Cross-references of the analysis sections, each message naming the bad key."""
    trained = supervised_methods()
    for section, studies in (
        ("generalization", GENERALIZATION),
        ("net_bias", NET_BIAS_DATASETS),
        ("equivalent_filters", FILTERS),
    ):
        for dataset, study in studies.items():
            where = f"experiments.{section}.datasets.{dataset}"
            if dataset not in config["datasets"]:
                raise ConfigError(f"{where}: no dataset {dataset!r} under datasets")
            for model in study["models"]:
                if model not in trained:
                    raise ConfigError(f"{where}.models: {model!r} is not a network trained by the train rule")
            kinds = {name.split("-")[0] for name in study["noise"]}
            if len(kinds) != 1:
                raise ConfigError(f"{where}.noise: mixes noise kinds {sorted(kinds)}")


def analysis_train_noise(dataset, models):
    """Training range of each model on ``dataset`` (shaded in the analysis plots)."""
    return {model: training_noise(dataset, model) for model in models}


def workflow_seed(*names):
    """The seed of one piece of work, derived from the master seed and the names that identify it."""
    return derive_seed(config["seed"], *names)


def training_seed(dataset, model):
    """The seed of a network's training: from the master seed, or for a replicate (``<model>~seed<k>``,
    config ``training_seeds``) from its own seed k, with the names of the model it replicates."""
    base, seed = replicate_of(model)
    return derive_seed(config["seed"] if seed is None else seed, "train", dataset, base)


def benchmark_metrics():
    """Per-image metrics of every benchmark method (and the noisy input) on every condition."""
    return [
        metrics_file(dataset, noise, model)
        for dataset, methods in config["benchmark"].items()
        for noise in conditions(dataset)
        for model in ["noisy", *methods]
    ]


# Jobs run with a conda environment (--software-deployment-method conda) import the package from
# the source tree, prepended to whatever Python path the user set; an installed package is unaffected.
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.getenv("PYTHONPATH")])))


def estimate_file(wildcards):
    """The noisy input itself for the `noisy` row, else the method's denoised stack."""
    if wildcards.model == "noisy":
        return noisy_split(wildcards.dataset, wildcards.noise, "test")
    return f"results/denoised/{wildcards.dataset}/{wildcards.noise}/{wildcards.model}.npz"


# -- UDVD (experiments.udvd; rules train_udvd in train.smk, udvd_* in analyze.smk) --
def udvd_methods():
    """Video networks (UDVD), trained self-supervised by the `train_udvd` rule."""
    return [m for m in network_methods() if takes_videos(method_entry(m))]


def recording_conditions(dataset, model):
    """The stored conditions of ``dataset`` a self-supervised ``model`` (UDVD, Noise2Self...) trains
    on: every one of its training noise kind whose level lies in its train_noise range (recordings
    at several doses or sigmas)."""
    noise = training_noise(dataset, model)
    low, high = noise["range"]
    levels = config["datasets"][dataset].get("noise", {}).get(noise["kind"], [])
    chosen = [condition_name(noise["kind"], level) for level in levels if low <= level <= high]
    if not chosen:
        key = f"methods.{model}" if method_entry(model, dataset).get("train_noise") else f"datasets.{dataset}"
        raise ConfigError(
            f"{key}.train_noise: no stored {noise['kind']} condition of datasets.{dataset}.noise lies in the range "
            f"{noise['range']} (stored: {', '.join(conditions(dataset)) or 'none'}); {model} trains on the stored "
            "noisy recordings only"
        )
    return chosen


def stored_recordings(dataset, model, split):
    """The stored noisy copies of ``split`` that a self-supervised ``model`` trains on."""
    return [noisy_split(dataset, noise, split) for noise in recording_conditions(dataset, model)]


def pairs_two_exposures(dataset, model):
    """Whether ``model`` is Noise2Noise trained on two stored exposures (``objective.pairs``)."""
    objective = method_entry(model, dataset).get("objective") or {}
    return objective.get("name") == "noise2noise" and objective.get("pairs") == "two_exposures"


def second_recordings(dataset, model, split):
    """The independent second noisy copies of ``split`` (rule add_noise_second), for two-exposure
    Noise2Noise only: no other method makes them exist."""
    if not pairs_two_exposures(dataset, model):
        return []
    return [f"results/noisy_second/{dataset}/{noise}/{split}.npz" for noise in recording_conditions(dataset, model)]


def stored_copies(dataset, model):
    """How many stored noisy copies of a split a self-supervised ``model`` trains on: one per
    recorded condition, two for two-exposure Noise2Noise."""
    return len(recording_conditions(dataset, model)) * (2 if pairs_two_exposures(dataset, model) else 1)


# Schema defaults fill the keys of absent sections, so a study is on when it names what it needs.
UDVD = config["experiments"]["udvd"] if config["experiments"].get("udvd", {}).get("dataset") else {}
UDVD_AUGMENTATION = UDVD["augmentation"] if UDVD.get("augmentation", {}).get("model") else {}
UDVD_MOTION = UDVD["motion"] if UDVD.get("motion", {}).get("model") else {}


def check_udvd():
    """Cross-references of experiments.udvd, each message naming the bad key."""
    if not UDVD:
        return
    dataset = UDVD["dataset"]
    if dataset not in config["datasets"]:
        raise ConfigError(f"experiments.udvd.dataset: no dataset {dataset!r} under datasets")
    for key in ("poisson_methods", "gaussian_methods"):
        for method in UDVD.get(key, []):
            if method not in config["methods"]:
                raise ConfigError(f"experiments.udvd.{key}: {method!r} is not a key of methods")
            if method in udvd_methods():
                recording_conditions(dataset, method)  # before any job: recordings to train on
    for key, section, required in (
        ("augmentation", UDVD_AUGMENTATION, ("noise", "training")),
        ("motion", UDVD_MOTION, ("noise",)),
    ):
        if not section:
            continue
        for name in required:
            if name not in section:
                raise ConfigError(f"experiments.udvd.{key}.{name}: required when experiments.udvd.{key}.model is set")
        model = section["model"]
        if model not in config["methods"] or method_entry(model)["family"] != "udvd":
            raise ConfigError(f"experiments.udvd.{key}.model: {section['model']!r} is not a udvd method")
        if section["noise"] not in conditions(dataset):
            raise ConfigError(
                f"experiments.udvd.{key}.noise: {section['noise']!r} is not a stored condition of {dataset}"
            )
    recipe = UDVD_AUGMENTATION.get("training")
    if recipe is not None and recipe not in config["training"]:
        raise ConfigError(f"experiments.udvd.augmentation.training: no recipe {recipe!r} under training")


def check_noisy_image_methods():
    """Before any job: each self-supervised image network has recordings to train on, and
    Noise2Noise by binomial thinning trains on Poisson recordings (two exposures: any noise)."""
    uses = [(dataset, model) for dataset, methods in config["benchmark"].items() for model in methods]
    if UDVD:  # the UDVD table's frame-wise rows
        uses += [(UDVD["dataset"], m) for key in ("poisson_methods", "gaussian_methods") for m in UDVD.get(key, [])]
    for dataset, model in uses:
        if model in noisy_image_methods():
            recording_conditions(dataset, model)
            objective = method_entry(model, dataset)["objective"]
            thinning = objective["name"] == "noise2noise" and not pairs_two_exposures(dataset, model)
            if thinning and training_noise(dataset, model)["kind"] != "poisson":
                raise ConfigError(
                    f"methods.{model}.objective: noise2noise thins Poisson counts; {dataset} trains it on "
                    f"{training_noise(dataset, model)['kind']} noise"
                )


def udvd_table_methods(noise):
    """Rows of the UDVD table on condition ``noise``: the noisy input and that noise kind's methods."""
    return ["noisy", *UDVD.get(f"{noise.split('-')[0]}_methods", [])]


def udvd_table_metrics(file=metrics_file):
    """Scores of every row of the UDVD table and of its networks' replicates (``file``: `metrics_file`,
    or `frame_metrics_file` per frame)."""
    dataset = UDVD["dataset"]
    return [
        file(dataset, noise, model)
        for noise in conditions(dataset)
        for model in with_replicates(udvd_table_methods(noise))
    ]


# -- FoV gain (experiments.fov_gain; rule fov_gain in analyze.smk) --
FOV_GAIN = config["experiments"].get("fov_gain", {})


def fov_gain_networks(dataset):
    """The biased supervised UNets and DnCNNs of a dataset's benchmark, whose gains are compared."""
    entries = {m: method_entry(m, dataset) for m in config["benchmark"].get(dataset, [])}
    return [m for family in ("unet", "dncnn") for m in supervised_biased(entries, family)]


def has_fov_gain_pair(dataset):
    """Whether a dataset's benchmark holds a biased supervised UNet and a biased supervised DnCNN."""
    return {method_entry(m, dataset)["family"] for m in fov_gain_networks(dataset)} == {"unet", "dncnn"}


def fov_gain_datasets():
    """The configured datasets, else every simulated TEM image dataset whose benchmark holds a
    biased supervised UNet and DnCNN."""
    if FOV_GAIN.get("datasets"):
        return FOV_GAIN["datasets"]
    return [
        name
        for name in config["benchmark"]
        if config["datasets"][name]["domain"] == "tem"
        and name in datasets_with_source("simulate")
        and name not in video_datasets()
        and has_fov_gain_pair(name)
    ]


def check_fov_gain():
    """Cross-references of experiments.fov_gain, each message naming the bad key."""
    for dataset in FOV_GAIN.get("datasets", []):
        if (
            dataset not in config["benchmark"]
            or dataset in video_datasets()
            or config["datasets"][dataset]["domain"] != "tem"
        ):
            raise ConfigError(f"experiments.fov_gain.datasets: {dataset!r} is not a TEM image dataset under benchmark")
        if not has_fov_gain_pair(dataset):
            raise ConfigError(
                f"experiments.fov_gain.datasets: benchmark.{dataset} needs a biased supervised UNet and DnCNN"
            )
    if FOV_GAIN.get("enabled") and not fov_gain_datasets():
        raise ConfigError("experiments.fov_gain.enabled: no TEM dataset with a UNet and a DnCNN under benchmark")


# -- headline tables (report.smk: table_html, html_report) --
# Headline tables, in reading order: (file-name prefix, report subcategory, caption of the table).
HEADLINE_GROUPS = [
    ("claims", "0 Claims", "claims.rst"),
    ("psnr_summary", "1 PSNR benchmark", "psnr_table.rst"),
    ("tem_table", "2 TEM table", "tem_table.rst"),
    ("fov_gain", "2 TEM table", "fov_gain.rst"),
    ("generalization_", "3 Generalisation", "generalization.rst"),
    ("udvd_table", "4 UDVD", "udvd_table.rst"),
    ("udvd_augmentation", "4 UDVD", "udvd_augmentation.rst"),
    ("udvd_motion", "4 UDVD", "udvd_motion.rst"),
    ("gaintuning_", "5 GainTuning", "gaintuning.rst"),
    ("real_", "6 Real data", "real_data.rst"),
    ("data_stats_", "7 Data cards", "data_stats.rst"),
]


def claim_tables():
    """The tables of this run whose rows test the study's claims (temdenoise.claims): the pairs of
    the TEM, UDVD and generalisation tables and the FoV-gain table, where the config builds them."""
    own = {"tem_table": "tem_table_pairs", "udvd_table": "udvd_table_pairs", "fov_gain": "fov_gain"}
    stems = [Path(t).stem for t in ALL_TARGETS if t.startswith("results/tables/") and t.endswith(".md")]
    return sorted(
        f"results/tables/{own.get(stem, f'{stem}_pairs')}.csv"
        for stem in dict.fromkeys(stems)
        if stem in own or stem.startswith("generalization_")
    )


def headline_group(table):
    """The HEADLINE_GROUPS entry of a table name, and its position (the reading order)."""
    for position, group in enumerate(HEADLINE_GROUPS):
        if table.startswith(group[0]):
            return position, group
    raise ValueError(f"{table} is not a headline table")


def headline_tables():
    """The run's Markdown tables (results/tables/*.md among the targets), in reading order."""
    tables = [t for t in ALL_TARGETS if t.startswith("results/tables/") and t.endswith(".md")]
    if UDVD_MOTION:  # only its figure is a target; the rule writes the table beside it
        tables.append(rules.udvd_motion.output.markdown)
    return sorted(dict.fromkeys(tables), key=lambda t: headline_group(Path(t).stem)[0])


def table_caption(wildcards):
    """The caption of a table's own report entry (workflow/report/*.rst), its wildcards filled in."""
    import jinja2

    table = wildcards.table
    rst = (REPO / "workflow/report" / headline_group(table)[1][2]).read_text()
    dataset = table.removeprefix("generalization_")
    return jinja2.Template(rst).render(snakemake={"wildcards": {"dataset": dataset}})


# -- training-seed replicates (config training_seeds) of the headline comparisons' networks --
def replicated_networks():
    """Networks trained again with each of ``training_seeds``: the FoV gain's UNets and DnCNNs and
    the networks of the UDVD table."""
    fov = [m for dataset in fov_gain_datasets() for m in fov_gain_networks(dataset)] if FOV_GAIN.get("enabled") else []
    udvd = [m for noise in conditions(UDVD["dataset"]) for m in udvd_table_methods(noise)[1:]] if UDVD else []
    return [m for m in dict.fromkeys(fov + udvd) if is_network(m)]


def with_replicates(models):
    """``models`` followed by the replicates of those among them that are replicated."""
    replicated = set(replicated_networks())
    return [*models, *(replicate_name(m, seed) for seed in config["training_seeds"] for m in models if m in replicated)]


if config["seed"] in config["training_seeds"]:
    raise ConfigError(f"training_seeds: {config['seed']} is the master seed (seed), whose networks are trained already")
config["methods"].update(replicate_entries(config["methods"], replicated_networks(), config["training_seeds"]))


# after the replicates: their names are models too
wildcard_constraints:
    dataset=alternatives(list(config["datasets"])),
    model=alternatives(["noisy", *config["methods"]]),
    noise=r"(poisson|gaussian)-[0-9]+(\.[0-9]+)?",
    split="train|validation|test",
