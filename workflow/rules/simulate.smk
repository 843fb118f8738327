# Simulated TEM datasets (abTEM): shards of structures -> one clean split + metadata -> figures.
from temdenoise.simulate.settings import SPLITS, SimulationSettings, shard_paths

# Parsed (and physically checked) before any job runs; errors name the offending key.
SIMULATION = {
    name: SimulationSettings.from_config(entry.get("simulation"), key=f"datasets.{name}.simulation")
    for name, entry in config["datasets"].items()
    if entry["source"] == "simulate"
}


rule simulate:
    output:
        stack="results/data/{dataset}/shards/{split}-{shard}.npz",
        metadata="results/data/{dataset}/shards/{split}-{shard}.csv",
    log:
        "results/logs/simulate/{dataset}-{split}-{shard}.log",
    benchmark:
        "results/benchmarks/simulate/{dataset}-{split}-{shard}.tsv"
    wildcard_constraints:
        dataset=alternatives(list(SIMULATION)),
        shard=r"\d+",
    conda:
        "../../envs/simulate.yaml"
    threads: resource("simulate", "threads")
    resources:
        mem_mb=resource("simulate", "mem_mb"),
        runtime=resource("simulate", "runtime"),
    params:
        settings=lambda wildcards: SIMULATION[wildcards.dataset],
    script:
        "../../scripts/simulate.py"


rule merge_shards:
    input:
        unpack(lambda wildcards: shard_paths(SIMULATION[wildcards.dataset], wildcards.dataset, wildcards.split)),
    output:
        stack="results/data/{dataset}/{split}.npz",
        metadata="results/data/{dataset}/{split}.csv",
    log:
        "results/logs/merge_shards/{dataset}-{split}.log",
    benchmark:
        "results/benchmarks/merge_shards/{dataset}-{split}.tsv"
    wildcard_constraints:
        dataset=alternatives(list(SIMULATION)),
    conda:
        "../../envs/simulate.yaml"
    threads: resource("simulate", "threads")
    resources:
        mem_mb=memory("simulate", "merge_shards", one_item()),
        runtime=resource("simulate", "runtime"),
    script:
        "../../scripts/merge_shards.py"


rule export_tiff:
    input:
        "results/data/{dataset}/{split}.npz",
    output:
        "results/data/{dataset}/{split}.tif",
    log:
        "results/logs/export_tiff/{dataset}-{split}.log",
    benchmark:
        "results/benchmarks/export_tiff/{dataset}-{split}.tsv"
    wildcard_constraints:
        dataset=alternatives(list(SIMULATION)),
    conda:
        "../../envs/simulate.yaml"
    threads: resource("simulate", "threads")
    resources:
        mem_mb=memory("simulate", "export_tiff", one_item()),
        runtime=resource("simulate", "runtime"),
    script:
        "../../scripts/export_tiff.py"


rule plot_dataset:
    input:
        stack="results/data/{dataset}/train.npz",
        metadata="results/data/{dataset}/train.csv",
    output:
        png=report(
            "results/plots/dataset_{dataset}.png",
            caption="../report/dataset.rst",
            category="Data",
            labels={"dataset": "{dataset}"},
        ),
        svg="results/plots/dataset_{dataset}.svg",
    log:
        "results/logs/plot_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/plot_dataset/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternatives(list(SIMULATION)),
    conda:
        "../../envs/simulate.yaml"
    threads: resource("analyze", "threads")
    resources:
        mem_mb=resource("analyze", "mem_mb"),
        runtime=resource("analyze", "runtime"),
    script:
        "../../scripts/plot_dataset.py"


rule data_stats:
    input:
        stack="results/data/{dataset}/test.npz",
        metadata="results/data/{dataset}/test.csv",
    output:
        markdown=report(
            "results/tables/data_stats_{dataset}.md",
            caption="../report/data_stats.rst",
            category="Data",
            labels={"dataset": "{dataset}"},
        ),
        csv="results/tables/data_stats_{dataset}.csv",
    log:
        "results/logs/data_stats/{dataset}.log",
    benchmark:
        "results/benchmarks/data_stats/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternatives(list(SIMULATION)),
    conda:
        "../../envs/analysis.yaml"
    threads: resource("analyze", "threads")
    resources:
        mem_mb=resource("analyze", "mem_mb"),
        runtime=resource("analyze", "runtime"),
    params:
        split="test",
    script:
        "../../scripts/data_stats.py"


for _name, _settings in SIMULATION.items():
    ALL_TARGETS.extend(expand("results/tables/data_stats_{dataset}.{ext}", dataset=_name, ext=("md", "csv")))
    ALL_TARGETS.extend(expand("results/data/{dataset}/{split}.csv", dataset=_name, split=SPLITS))
    ALL_TARGETS.extend(expand("results/plots/dataset_{dataset}.{ext}", dataset=_name, ext=("png", "svg")))
    if _settings.export_tiff:
        ALL_TARGETS.extend(expand("results/data/{dataset}/{split}.tif", dataset=_name, split=SPLITS))
