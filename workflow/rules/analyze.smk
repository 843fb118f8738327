# Robustness and interpretability (Mohan et al., ICLR 2020) on natural and TEM images: noise-level
# generalisation, net bias and effective dimensionality of the Jacobian, equivalent filters.
# Config: experiments.generalization / net_bias / equivalent_filters, each by dataset.

check_analyses()


rule generalization:
    input:
        lambda wildcards: [
            metrics_file(wildcards.dataset, noise, model)
            for noise in GENERALIZATION[wildcards.dataset]["noise"]
            for model in ["noisy", *GENERALIZATION[wildcards.dataset]["models"]]
        ],
    output:
        csv="results/tables/generalization_{dataset}.csv",
        markdown=report(
            "results/tables/generalization_{dataset}.md",
            caption="../report/generalization.rst",
            category="Robustness",
            labels={"dataset": "{dataset}", "figure": "table"},
        ),
        latex="results/tables/generalization_{dataset}.tex",
        png=report(
            "results/plots/generalization_{dataset}.png",
            caption="../report/generalization.rst",
            category="Robustness",
            labels={"dataset": "{dataset}", "figure": "PSNR vs noise"},
        ),
        svg="results/plots/generalization_{dataset}.svg",
        pairs="results/tables/generalization_{dataset}_pairs.csv",
    log:
        "results/logs/generalization/{dataset}.log",
    benchmark:
        "results/benchmarks/generalization/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternatives(list(GENERALIZATION)),
    conda:
        "../../envs/analysis.yaml"
    threads: resource("analyze", "threads")
    resources:
        mem_mb=resource("analyze", "mem_mb"),
        runtime=resource("analyze", "runtime"),
    params:
        models=lambda wildcards: GENERALIZATION[wildcards.dataset]["models"],
        entries=lambda wildcards: {
            m: method_entry(m, wildcards.dataset) for m in GENERALIZATION[wildcards.dataset]["models"]
        },
        train_noise=lambda wildcards: analysis_train_noise(
            wildcards.dataset, GENERALIZATION[wildcards.dataset]["models"]
        ),
    script:
        "../../scripts/analyze_generalization.py"


rule jacobian_statistics:
    input:
        weights="results/models/{dataset}/{model}/model.pt",
        clean="results/data/{dataset}/test.npz",
        metadata="results/data/{dataset}/test.csv",
    output:
        "results/analysis/net_bias/{dataset}/{model}.csv",
    log:
        "results/logs/jacobian_statistics/{dataset}-{model}.log",
    benchmark:
        "results/benchmarks/jacobian_statistics/{dataset}-{model}.tsv"
    wildcard_constraints:
        dataset=alternatives(list(NET_BIAS_DATASETS)),
    conda:
        "../../envs/torch.yaml"
    threads: resource("analyze", "threads")
    resources:
        mem_mb=resource("analyze", "mem_mb"),
        runtime=resource("analyze", "runtime"),
        gpu=resource("analyze", "gpu"),
        gpu_model=resource("analyze", "gpu_model"),
    params:
        entry=lambda wildcards: method_entry(wildcards.model, wildcards.dataset),
        noise=lambda wildcards: NET_BIAS_DATASETS[wildcards.dataset]["noise"],
        settings={key: NET_BIAS[key] for key in ("patch", "images", "chunk_size") if key in NET_BIAS},
        seed=lambda wildcards: workflow_seed("net_bias", wildcards.dataset),
    script:
        "../../scripts/analyze_jacobian.py"


rule net_bias:
    input:
        lambda wildcards: expand(
            "results/analysis/net_bias/{dataset}/{model}.csv",
            dataset=wildcards.dataset,
            model=NET_BIAS_DATASETS[wildcards.dataset]["models"],
        ),
    output:
        csv="results/tables/net_bias_{dataset}.csv",
        net_bias_png=report(
            "results/plots/net_bias_{dataset}.png",
            caption="../report/net_bias.rst",
            category="Robustness",
            labels={"dataset": "{dataset}", "figure": "net bias"},
        ),
        net_bias_svg="results/plots/net_bias_{dataset}.svg",
        dim_png=report(
            "results/plots/effective_dim_{dataset}.png",
            caption="../report/effective_dim.rst",
            category="Robustness",
            labels={"dataset": "{dataset}", "figure": "effective dimensionality"},
        ),
        dim_svg="results/plots/effective_dim_{dataset}.svg",
    log:
        "results/logs/net_bias/{dataset}.log",
    benchmark:
        "results/benchmarks/net_bias/{dataset}.tsv"
    wildcard_constraints:
        dataset=alternatives(list(NET_BIAS_DATASETS)),
    conda:
        "../../envs/analysis.yaml"
    threads: resource("analyze", "threads")
    resources:
        mem_mb=resource("analyze", "mem_mb"),
        runtime=resource("analyze", "runtime"),
    params:
        train_noise=lambda wildcards: analysis_train_noise(
            wildcards.dataset, NET_BIAS_DATASETS[wildcards.dataset]["models"]
        ),
    script:
        "../../scripts/analyze_net_bias.py"


rule equivalent_filters:
    input:
        weights="results/models/{dataset}/{model}/model.pt",
        clean="results/data/{dataset}/test.npz",
        metadata="results/data/{dataset}/test.csv",
    output:
        png=report(
            "results/plots/equivalent_filters_{dataset}_{model}.png",
            caption="../report/equivalent_filters.rst",
            category="Robustness",
            labels={"dataset": "{dataset}", "figure": "filters {model}"},
        ),
        svg="results/plots/equivalent_filters_{dataset}_{model}.svg",
    log:
        "results/logs/equivalent_filters/{dataset}-{model}.log",
    benchmark:
        "results/benchmarks/equivalent_filters/{dataset}-{model}.tsv"
    wildcard_constraints:
        dataset=alternatives(list(FILTERS)),
    conda:
        "../../envs/torch.yaml"
    threads: resource("analyze", "threads")
    resources:
        mem_mb=resource("analyze", "mem_mb"),
        runtime=resource("analyze", "runtime"),
        gpu=resource("analyze", "gpu"),
        gpu_model=resource("analyze", "gpu_model"),
    params:
        entry=lambda wildcards: method_entry(wildcards.model, wildcards.dataset),
        settings=lambda wildcards: FILTERS[wildcards.dataset],
        seed=lambda wildcards: workflow_seed("equivalent_filters", wildcards.dataset),
    script:
        "../../scripts/analyze_filters.py"


ALL_TARGETS.extend(
    [
        *[f"results/tables/generalization_{dataset}.md" for dataset in GENERALIZATION],
        *[f"results/plots/generalization_{dataset}.png" for dataset in GENERALIZATION],
        *[f"results/tables/net_bias_{dataset}.csv" for dataset in NET_BIAS_DATASETS],
        *[
            f"results/plots/{kind}_{dataset}.png"
            for kind in ("net_bias", "effective_dim")
            for dataset in NET_BIAS_DATASETS
        ],
        *[
            f"results/plots/equivalent_filters_{dataset}_{model}.png"
            for dataset, study in FILTERS.items()
            for model in study["models"]
        ],
    ]
)


# -- UDVD (issue 7; Sheth, Mohan et al., ICCV 2021): config experiments.udvd ------------------------
# udvd_table: UDVD 1/3/5 frames vs supervised CNNs vs classical methods on the video dataset, with
# paired per-frame differences (evaluate_video scores every frame);
# udvd_augmentation: UDVD trained on single noisy videos (augmentation x early stopping), scored by
# udvd_augmentation_table;
# udvd_motion: the filter-centroid motion estimate of a multi-frame UDVD vs the true motion,
# zero motion and TV-L1 optical flow.
check_udvd()


rule udvd_table:
    input:
        metrics=lambda wildcards: udvd_table_metrics(),
        frames=lambda wildcards: udvd_table_metrics(frame_metrics_file),
    output:
        csv="results/tables/udvd_table.csv",
        summary="results/tables/udvd_table_summary.csv",
        markdown=report("results/tables/udvd_table.md", caption="../report/udvd_table.rst", category="UDVD"),
        latex="results/tables/udvd_table.tex",
        pairs="results/tables/udvd_table_pairs.csv",
    log:
        "results/logs/udvd_table.log",
    benchmark:
        "results/benchmarks/udvd_table.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: resource("analyze", "threads")
    resources:
        mem_mb=resource("analyze", "mem_mb"),
        runtime=resource("analyze", "runtime"),
    params:
        entries=lambda wildcards: {
            m: method_entry(m, UDVD["dataset"])
            for noise in conditions(UDVD["dataset"])
            for m in udvd_table_methods(noise)
            if m != "noisy"
        },
        main_seed=config["seed"],
    script:
        "../../scripts/udvd_table.py"


rule udvd_augmentation:
    input:
        noisy=lambda wildcards: noisy_split(UDVD["dataset"], UDVD_AUGMENTATION["noise"], "test"),
    output:
        runs="results/udvd_augmentation/runs.csv",
        estimates="results/udvd_augmentation/denoised.npz",
    log:
        "results/logs/udvd_augmentation.log",
    benchmark:
        "results/benchmarks/udvd_augmentation.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: resource("train", "threads", lambda wildcards: UDVD_AUGMENTATION["model"])
    resources:
        mem_mb=resource("train", "mem_mb", lambda wildcards: UDVD_AUGMENTATION["model"]),
        runtime=resource("train", "runtime", lambda wildcards: UDVD_AUGMENTATION["model"]),
        gpu=resource("train", "gpu", lambda wildcards: UDVD_AUGMENTATION["model"]),
        gpu_model=resource("train", "gpu_model", lambda wildcards: UDVD_AUGMENTATION["model"]),
    params:
        entry=lambda wildcards: method_entry(UDVD_AUGMENTATION["model"], UDVD["dataset"]),
        recipe=lambda wildcards: config["training"][UDVD_AUGMENTATION["training"]],
        section=UDVD_AUGMENTATION,
        seed=lambda wildcards: workflow_seed("udvd_augmentation"),
    script:
        "../../scripts/udvd_augmentation.py"


# Scoring only: the one job of the study that reads the clean test videos.
rule udvd_augmentation_table:
    input:
        runs="results/udvd_augmentation/runs.csv",
        estimates="results/udvd_augmentation/denoised.npz",
        noisy=lambda wildcards: noisy_split(UDVD["dataset"], UDVD_AUGMENTATION["noise"], "test"),
        clean=lambda wildcards: clean_split(UDVD["dataset"], "test"),
    output:
        csv="results/tables/udvd_augmentation.csv",
        markdown=report(
            "results/tables/udvd_augmentation.md", caption="../report/udvd_augmentation.rst", category="UDVD"
        ),
    log:
        "results/logs/udvd_augmentation_table.log",
    benchmark:
        "results/benchmarks/udvd_augmentation_table.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: resource("analyze", "threads")
    resources:
        mem_mb=resource("analyze", "mem_mb"),
        runtime=resource("analyze", "runtime"),
    params:
        section=UDVD_AUGMENTATION,
        domain=lambda wildcards: config["datasets"][UDVD["dataset"]]["domain"],
        tem_psnr=config["metrics"]["tem_psnr"],
        reference_counts=lambda wildcards: dataset_reference_counts(UDVD["dataset"]),
    script:
        "../../scripts/udvd_augmentation_table.py"


rule udvd_motion:
    input:
        weights=lambda wildcards: f"results/models/{UDVD['dataset']}/{UDVD_MOTION['model']}/model.pt",
        noisy=lambda wildcards: noisy_split(UDVD["dataset"], UDVD_MOTION["noise"], "test"),
        # clean test frames: only for the flow on clean frames, scored as a labelled upper bound
        clean=lambda wildcards: clean_split(UDVD["dataset"], "test"),
        metadata=lambda wildcards: clean_metadata(UDVD["dataset"], "test"),
        # the flows' smoothing is chosen on the validation video
        validation_noisy=lambda wildcards: noisy_split(UDVD["dataset"], UDVD_MOTION["noise"], "validation"),
        validation_clean=lambda wildcards: clean_split(UDVD["dataset"], "validation"),
        validation_metadata=lambda wildcards: clean_metadata(UDVD["dataset"], "validation"),
    output:
        csv="results/tables/udvd_motion.csv",
        pixels="results/tables/udvd_motion_pixels.csv",
        markdown="results/tables/udvd_motion.md",
        png=report("results/plots/udvd_motion.png", caption="../report/udvd_motion.rst", category="UDVD"),
    log:
        "results/logs/udvd_motion.log",
    benchmark:
        "results/benchmarks/udvd_motion.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: resource("analyze", "threads")
    resources:
        mem_mb=resource("analyze", "mem_mb"),
        runtime=resource("analyze", "runtime"),
        gpu=resource("analyze", "gpu"),
        gpu_model=resource("analyze", "gpu_model"),
    params:
        entry=lambda wildcards: method_entry(UDVD_MOTION["model"], UDVD["dataset"]),
        section=UDVD_MOTION,
    script:
        "../../scripts/udvd_motion.py"


if UDVD:
    ALL_TARGETS.append("results/tables/udvd_table.md")
if UDVD_AUGMENTATION:
    ALL_TARGETS.append("results/tables/udvd_augmentation.md")
if UDVD_MOTION:
    ALL_TARGETS.append("results/plots/udvd_motion.png")


# The FoV gain (UNet - DnCNN) against the FoV in angstroms across TEM datasets (experiments.fov_gain).
check_fov_gain()


rule fov_gain:
    input:
        metrics=lambda wildcards: [
            metrics_file(dataset, noise, model)
            for dataset in fov_gain_datasets()
            for noise in conditions(dataset)
            for model in with_replicates(fov_gain_networks(dataset))
        ],
        info=lambda wildcards: [
            f"results/models/{dataset}/{model}/info.json"
            for dataset in fov_gain_datasets()
            for model in fov_gain_networks(dataset)
        ],
        # each dataset's test pixel and support: the FoV in angstroms and in projected support cells
        metadata=lambda wildcards: [clean_metadata(dataset, "test") for dataset in fov_gain_datasets()],
    output:
        csv="results/tables/fov_gain.csv",
        markdown="results/tables/fov_gain.md",
        png=report("results/plots/fov_gain_angstrom.png", caption="../report/fov_gain.rst", category="Figures"),
        svg="results/plots/fov_gain_angstrom.svg",
    log:
        "results/logs/fov_gain.log",
    benchmark:
        "results/benchmarks/fov_gain.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        datasets=fov_gain_datasets(),
        info_keys=[[dataset, model] for dataset in fov_gain_datasets() for model in fov_gain_networks(dataset)],
        entries={
            dataset: {m: method_entry(m, dataset) for m in fov_gain_networks(dataset)}
            for dataset in fov_gain_datasets()
        },
        main_seed=config["seed"],
    script:
        "../../scripts/fov_gain.py"


if FOV_GAIN.get("enabled"):
    ALL_TARGETS.extend(
        ["results/tables/fov_gain.csv", "results/tables/fov_gain.md", "results/plots/fov_gain_angstrom.png"]
    )
