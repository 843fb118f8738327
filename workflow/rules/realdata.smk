# A microscopist's own recordings (datasets.<name>.source: files), ranked without ground truth (temdenoise.realdata,
# docs/thinning.md): each recording is split once by binomial thinning (real_thin); self-supervised methods (UDVD)
# train on the thinned halves only (train_real), networks trained on a simulated dataset are applied as they are, and
# every model is scored on the held-out halves (real_table).

REAL_DATASETS = datasets_with_source("files")
for _name in REAL_DATASETS:
    check_recordings(_name, config["datasets"][_name].get("files", {}))


rule real_thin:
    input:
        recordings=lambda wildcards: real_recordings(wildcards.dataset),
    output:
        **real_thinned("{dataset}"),
    log:
        "results/logs/real_thin/{dataset}.log",
    benchmark:
        "results/benchmarks/real_thin/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternatives(REAL_DATASETS),
    conda:
        "../../envs/torch.yaml"
    params:
        files=lambda wildcards: config["datasets"][wildcards.dataset]["files"],
        seed=lambda wildcards: workflow_seed("real_thin", wildcards.dataset),
    script:
        "../../scripts/real_thin.py"


rule train_real:
    input:
        recordings=lambda wildcards: real_thinned(wildcards.dataset)["input.npz"],
        metadata=lambda wildcards: real_thinned(wildcards.dataset)["items.csv"],
    output:
        model="results/models/{dataset}/{model}/model.pt",
        metrics="results/models/{dataset}/{model}/metrics.csv",
        curve="results/models/{dataset}/{model}/training_curve.png",
        info="results/models/{dataset}/{model}/info.json",
    log:
        "results/logs/train_real/{dataset}-{model}.log",
    benchmark:
        "results/benchmarks/train_real/{dataset}-{model}.tsv"
    wildcard_constraints:
        dataset=alternatives(REAL_DATASETS),
        model=alternatives(udvd_methods()),
    conda:
        "../../envs/torch.yaml"
    threads: resource("train", "threads")
    resources:
        mem_mb=resource("train", "mem_mb"),
        runtime=resource("train", "runtime"),
        gpu=resource("train", "gpu"),
        gpu_model=resource("train", "gpu_model"),
    params:
        entry=lambda wildcards: method_entry(wildcards.model, wildcards.dataset),
        recipe=lambda wildcards: training_recipe(wildcards.dataset, wildcards.model),
        condition=lambda wildcards: real_condition(wildcards.dataset),
        seed=lambda wildcards: workflow_seed("train", wildcards.dataset, wildcards.model),
    script:
        "../../scripts/train_real.py"


rule real_table:
    input:
        **real_thinned("{dataset}"),
        models=real_models,
        info=lambda wildcards: [Path(m).with_name("info.json") for m in real_models(wildcards)],
    output:
        table="results/tables/real_{dataset}.csv",
        scores="results/tables/real_{dataset}.scores.csv",
        markdown=report("results/tables/real_{dataset}.md", caption="../report/real_data.rst", category="Tables"),
    log:
        "results/logs/real_table/{dataset}.log",
    benchmark:
        "results/benchmarks/real_table/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternatives(REAL_DATASETS),
    conda:
        "../../envs/torch.yaml"
    threads: resource("denoise", "threads")
    resources:
        mem_mb=resource("denoise", "mem_mb"),
        runtime=resource("denoise", "runtime"),
        gpu=resource("denoise", "gpu"),
        gpu_model=resource("denoise", "gpu_model"),
    script:
        "../../scripts/real_table.py"


ALL_TARGETS.extend(f"results/tables/real_{name}.md" for name in REAL_DATASETS)
