# Supervised training of the CNN families (DnCNN, UNet and their bias-free versions) and the TEM
# table (parameters, measured field of view, PSNR, SSIM of every model on the Poisson test set).


rule train:
    input:
        train="results/data/{dataset}/train.npz",
        validation="results/data/{dataset}/validation.npz",
        train_metadata="results/data/{dataset}/train.csv",
        validation_metadata="results/data/{dataset}/validation.csv",
    output:
        model="results/models/{dataset}/{model}/model.pt",
        metrics="results/models/{dataset}/{model}/metrics.csv",
        curve=report(
            "results/models/{dataset}/{model}/training_curve.png",
            caption="../report/training_curve.rst",
            category="Training",
            labels={"dataset": "{dataset}", "model": "{model}"},
        ),
        info="results/models/{dataset}/{model}/info.json",
    log:
        "results/logs/train/{dataset}-{model}.log",
    benchmark:
        "results/benchmarks/train/{dataset}-{model}.tsv"
    wildcard_constraints:
        dataset=alternatives(trainable_datasets()),
        model=alternatives(supervised_methods()),
    conda:
        "../../envs/torch.yaml"
    threads: resource("train", "threads")
    resources:
        mem_mb=memory("train", "train", training_items()),
        runtime=resource("train", "runtime"),
        gpu=resource("train", "gpu"),
        gpu_model=resource("train", "gpu_model"),
        # a resource, not a param: it changes how batches are built, not what the job computes from
        loader_workers=resource("train", "loader_workers"),
    params:
        entry=lambda wildcards: method_entry(wildcards.model, wildcards.dataset),
        recipe=lambda wildcards: training_recipe(wildcards.dataset, wildcards.model),
        train_noise=lambda wildcards: training_noise(wildcards.dataset, wildcards.model),
        domain=lambda wildcards: config["datasets"][wildcards.dataset]["domain"],
        seed=lambda wildcards: training_seed(wildcards.dataset, wildcards.model),
    script:
        "../../scripts/train.py"


# On demand, never in the default target (it needs the optional extra .[bioimageio]): a trained TEM image
# network as a BioImage Model Zoo package, e.g. `snakemake results/export/tem_regime/unet_s4.zip`.
rule export_bioimageio:
    input:
        model="results/models/{dataset}/{model}/model.pt",
        info="results/models/{dataset}/{model}/info.json",
        validation="results/data/{dataset}/validation.npz",
        validation_metadata="results/data/{dataset}/validation.csv",
    output:
        "results/export/{dataset}/{model}.zip",
    log:
        "results/logs/export/{dataset}-{model}.log",
    benchmark:
        "results/benchmarks/export/{dataset}-{model}.tsv"
    wildcard_constraints:
        dataset=alternatives(exportable_datasets()),
        model=alternatives(supervised_methods()),
    conda:
        "../../envs/torch.yaml"
    threads: resource("evaluate", "threads")
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    params:
        seed=lambda wildcards: workflow_seed("export", wildcards.dataset, wildcards.model),
    script:
        "../../scripts/export_bioimageio.py"


for pair in tem_table_settings().get("pairs", []):
    if unknown := [m for m in pair if m not in tem_table_methods()]:
        raise ConfigError(f"experiments.tem_table.pairs: {unknown} not among the table's methods {tem_table_methods()}")


rule tem_table:
    input:
        metrics=lambda wildcards: [
            metrics_file(tem_table_dataset(), noise, model)
            for noise in tem_table_conditions()
            for model in tem_table_methods()
        ],
        info=lambda wildcards: [f"results/models/{tem_table_dataset()}/{m}/info.json" for m in tem_table_networks()],
        # the test pixel and support: the FoV in angstroms and in projected support cells
        metadata=lambda wildcards: clean_metadata(tem_table_dataset(), "test"),
    output:
        csv="results/tables/tem_table.csv",
        markdown=report("results/tables/tem_table.md", caption="../report/tem_table.rst", category="Tables"),
        latex="results/tables/tem_table.tex",
        pairs="results/tables/tem_table_pairs.csv",
    log:
        "results/logs/tem_table.log",
    benchmark:
        "results/benchmarks/tem_table.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        networks=tem_table_networks(),
        entries={m: method_entry(m, tem_table_dataset()) for m in tem_table_methods()},
        pairs=tem_table_settings().get("pairs", []),
    script:
        "../../scripts/tem_table.py"


if tem_table_settings().get("enabled"):
    ALL_TARGETS.append("results/tables/tem_table.md")


# -- UDVD (issue 7): self-supervised training of the blind-spot video denoisers --------------------
# Trains on the stored noisy copies of the training videos, as recordings (one fixed noise draw per
# frame), at every stored condition of the dataset within the entry's train_noise range; the loss
# targets the noisy centre frame and model selection uses the stored noisy validation videos
# (temdenoise.train.self_supervised.train_udvd). No clean video is an input: the metadata tables
# give the pixel sizes only.


rule train_udvd:
    input:
        train=lambda wildcards: stored_recordings(wildcards.dataset, wildcards.model, "train"),
        validation=lambda wildcards: stored_recordings(wildcards.dataset, wildcards.model, "validation"),
        train_metadata="results/data/{dataset}/train.csv",
        validation_metadata="results/data/{dataset}/validation.csv",
    output:
        model="results/models/{dataset}/{model}/model.pt",
        metrics="results/models/{dataset}/{model}/metrics.csv",
        curve=report(
            "results/models/{dataset}/{model}/training_curve.png",
            caption="../report/training_curve.rst",
            category="Training",
            labels={"dataset": "{dataset}", "model": "{model}"},
        ),
        info="results/models/{dataset}/{model}/info.json",
    log:
        "results/logs/train_udvd/{dataset}-{model}.log",
    benchmark:
        "results/benchmarks/train_udvd/{dataset}-{model}.tsv"
    wildcard_constraints:
        dataset=alternatives(trainable_datasets()),
        model=alternatives(udvd_methods()),
    conda:
        "../../envs/torch.yaml"
    threads: resource("train", "threads")
    resources:
        mem_mb=memory("train", "train_udvd", training_items(stored_copies)),
        runtime=resource("train", "runtime"),
        gpu=resource("train", "gpu"),
        gpu_model=resource("train", "gpu_model"),
        loader_workers=resource("train", "loader_workers"),
    params:
        entry=lambda wildcards: method_entry(wildcards.model, wildcards.dataset),
        recipe=lambda wildcards: training_recipe(wildcards.dataset, wildcards.model),
        conditions=lambda wildcards: recording_conditions(wildcards.dataset, wildcards.model),
        seed=lambda wildcards: training_seed(wildcards.dataset, wildcards.model),
    script:
        "../../scripts/train_udvd.py"


# -- Noise2Self / Noise2Void / Noise2Noise (issue 23): image networks trained on noisy images only ------
# A DnCNN or UNet entry with an `objective` section trains on the stored noisy copies of the training
# split at every stored condition within its train_noise range; the loss is masked (or thinned) and
# model selection uses the same loss on the stored noisy validation images
# (temdenoise.train.noisy_images). No clean array is an input: the metadata give the pixel sizes.
# Two-exposure Noise2Noise also reads the second noisy copies (add_noise_second); others read none.


check_noisy_image_methods()


rule train_noisy_images:
    input:
        train=lambda wildcards: stored_recordings(wildcards.dataset, wildcards.model, "train"),
        validation=lambda wildcards: stored_recordings(wildcards.dataset, wildcards.model, "validation"),
        train_second=lambda wildcards: second_recordings(wildcards.dataset, wildcards.model, "train"),
        validation_second=lambda wildcards: second_recordings(wildcards.dataset, wildcards.model, "validation"),
        train_metadata="results/data/{dataset}/train.csv",
        validation_metadata="results/data/{dataset}/validation.csv",
    output:
        model="results/models/{dataset}/{model}/model.pt",
        metrics="results/models/{dataset}/{model}/metrics.csv",
        curve=report(
            "results/models/{dataset}/{model}/training_curve.png",
            caption="../report/training_curve.rst",
            category="Training",
            labels={"dataset": "{dataset}", "model": "{model}"},
        ),
        info="results/models/{dataset}/{model}/info.json",
    log:
        "results/logs/train_noisy_images/{dataset}-{model}.log",
    benchmark:
        "results/benchmarks/train_noisy_images/{dataset}-{model}.tsv"
    wildcard_constraints:
        dataset=alternatives(trainable_datasets()),
        model=alternatives(noisy_image_methods()),
    conda:
        "../../envs/torch.yaml"
    threads: resource("train", "threads")
    resources:
        mem_mb=memory("train", "train_noisy_images", training_items(stored_copies)),
        runtime=resource("train", "runtime"),
        gpu=resource("train", "gpu"),
        gpu_model=resource("train", "gpu_model"),
        loader_workers=resource("train", "loader_workers"),
    params:
        entry=lambda wildcards: method_entry(wildcards.model, wildcards.dataset),
        recipe=lambda wildcards: training_recipe(wildcards.dataset, wildcards.model),
        conditions=lambda wildcards: recording_conditions(wildcards.dataset, wildcards.model),
        seed=lambda wildcards: training_seed(wildcards.dataset, wildcards.model),
    script:
        "../../scripts/train_noisy_images.py"
