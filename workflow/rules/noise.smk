# Image datasets read from scikit-image or a folder, and the stored noisy copies of every split.


rule prepare_images:
    output:
        stack="results/data/{dataset}/{split}.npz",
        metadata="results/data/{dataset}/{split}.csv",
    log:
        "results/logs/prepare_images/{dataset}-{split}.log",
    benchmark:
        "results/benchmarks/prepare_images/{dataset}-{split}.tsv"
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("skimage", "folder")),
    conda:
        "../../envs/analysis.yaml"
    threads: resource("noise", "threads")
    resources:
        mem_mb=memory("noise", "prepare_images", whole_split),
        runtime=resource("noise", "runtime"),
    params:
        entry=lambda wildcards: config["datasets"][wildcards.dataset],
    script:
        "../../scripts/prepare_images.py"


rule add_noise:
    input:
        clean=lambda wildcards: clean_split(wildcards.dataset, wildcards.split),
        metadata=lambda wildcards: clean_metadata(wildcards.dataset, wildcards.split),
    output:
        "results/noisy/{dataset}/{noise}/{split}.npz",
    log:
        "results/logs/add_noise/{dataset}-{noise}-{split}.log",
    benchmark:
        "results/benchmarks/add_noise/{dataset}-{noise}-{split}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: resource("noise", "threads")
    resources:
        mem_mb=memory("noise", "add_noise", one_item()),
        runtime=resource("noise", "runtime"),
    params:
        seed=lambda wildcards: workflow_seed("noise", wildcards.dataset, wildcards.noise, wildcards.split),
    script:
        "../../scripts/add_noise.py"


# The independent second noisy copy of a training / validation split: a second exposure of the same
# scenes, drawn with its own seed. Only two-exposure Noise2Noise entries ask for it (second_recordings).
use rule add_noise as add_noise_second with:
    output:
        "results/noisy_second/{dataset}/{noise}/{split}.npz",
    log:
        "results/logs/add_noise_second/{dataset}-{noise}-{split}.log",
    benchmark:
        "results/benchmarks/add_noise_second/{dataset}-{noise}-{split}.tsv"
    wildcard_constraints:
        split="train|validation",
    params:
        seed=lambda wildcards: workflow_seed("noise_second", wildcards.dataset, wildcards.noise, wildcards.split),
