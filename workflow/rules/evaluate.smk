# Fit classical methods per noise condition, denoise the test split, score every estimate
# (videos also frame by frame).


rule fit_classical:
    input:
        noisy="results/noisy/{dataset}/{noise}/train.npz",
        clean="results/data/{dataset}/train.npz",
    output:
        "results/models/{dataset}/{model}/fit-{noise}.npz",
    log:
        "results/logs/fit_classical/{dataset}-{model}-{noise}.log",
    benchmark:
        "results/benchmarks/fit_classical/{dataset}-{model}-{noise}.tsv"
    wildcard_constraints:
        model=alternatives(classical_methods()),
    conda:
        "../../envs/analysis.yaml"
    threads: resource("fit", "threads")
    resources:
        mem_mb=memory("fit", "fit_classical", one_item("train")),
        runtime=resource("fit", "runtime"),
    params:
        entry=lambda wildcards: method_entry(wildcards.model, wildcards.dataset),
    script:
        "../../scripts/fit_classical.py"


rule denoise:
    input:
        artifact=lambda wildcards: model_artifact(wildcards.dataset, wildcards.model, wildcards.noise),
        noisy="results/noisy/{dataset}/{noise}/test.npz",
        metadata="results/data/{dataset}/test.csv",
    output:
        "results/denoised/{dataset}/{noise}/{model}.npz",
    log:
        "results/logs/denoise/{dataset}-{noise}-{model}.log",
    benchmark:
        "results/benchmarks/denoise/{dataset}-{noise}-{model}.tsv"
    wildcard_constraints:
        model=alternatives(list(config["methods"])),
    group:
        denoise_group
    conda:
        "../../envs/torch.yaml"
    threads: resource("denoise", "threads")
    resources:
        mem_mb=memory("denoise", "denoise", one_item("test")),
        runtime=resource("denoise", "runtime"),
        gpu=resource("denoise", "gpu"),
        gpu_model=resource("denoise", "gpu_model"),
    params:
        # the entry the weights were trained as (per-dataset overrides of the models_from dataset)
        entry=lambda wildcards: method_entry(wildcards.model, models_source(wildcards.dataset)),
    script:
        "../../scripts/denoise.py"


rule evaluate:
    input:
        clean="results/data/{dataset}/test.npz",
        estimate=estimate_file,
        # each item's independent unit (its structure or video) for the paired differences
        metadata="results/data/{dataset}/test.csv",
    output:
        scores="results/metrics/{dataset}/{noise}/{model}.csv",
    log:
        "results/logs/evaluate/{dataset}-{noise}-{model}.log",
    benchmark:
        "results/benchmarks/evaluate/{dataset}-{noise}-{model}.tsv"
    wildcard_constraints:
        dataset=alternatives([d for d in config["datasets"] if d not in video_datasets()]),
    conda:
        "../../envs/analysis.yaml"
    threads: resource("evaluate", "threads")
    resources:
        mem_mb=memory("evaluate", "evaluate", one_item("test")),
        runtime=resource("evaluate", "runtime"),
    params:
        domain=lambda wildcards: config["datasets"][wildcards.dataset]["domain"],
        tem_psnr=config["metrics"]["tem_psnr"],
        reference_counts=lambda wildcards: dataset_reference_counts(wildcards.dataset),
    script:
        "../../scripts/evaluate.py"


# Videos: the same job also scores every frame, the items of the UDVD table's paired comparisons.
use rule evaluate as evaluate_video with:
    output:
        scores="results/metrics/{dataset}/{noise}/{model}.csv",
        frames=frame_metrics_file("{dataset}", "{noise}", "{model}"),
    wildcard_constraints:
        dataset=alternatives(video_datasets()),
