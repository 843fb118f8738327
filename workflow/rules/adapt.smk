# GainTuning test-time adaptation (Mohan et al., NeurIPS 2021): config experiments.gaintuning.
# Cases adapt a model trained by `train` on one dataset to the test images of another (or the same)
# dataset; tables under results/tables/gaintuning_*, figures under results/plots/gaintuning_*.

check_gaintuning()


rule piecewise_images:
    output:
        stack="results/data/{dataset}/{split}.npz",
        metadata="results/data/{dataset}/{split}.csv",
    log:
        "results/logs/piecewise_images/{dataset}-{split}.log",
    benchmark:
        "results/benchmarks/piecewise_images/{dataset}-{split}.tsv"
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("piecewise")),
    conda:
        "../../envs/analysis.yaml"
    threads: resource("noise", "threads")
    resources:
        mem_mb=resource("noise", "mem_mb"),
        runtime=resource("noise", "runtime"),
    params:
        settings=GAINTUNING.get("piecewise", {}),
    script:
        "../../scripts/piecewise_images.py"


# Split roles: gaintuning_select chooses a case's loss / lr / steps on validation images (scored
# against the clean validation images); gaintuning_case, gaintuning_curve and gaintuning_net_bias
# read noisy test items only and write estimates; gaintuning_score and gaintuning_curve_score are
# the evaluation rules that open the clean test images (tests/test_protocol.py checks the DAG).
rule gaintuning_select:
    input:
        unpack(lambda wildcards: gaintuning_selection_inputs(wildcards.case)),
    output:
        selection="results/adapt/{case}/selection.json",
        grid="results/adapt/{case}/selection.csv",
    log:
        "results/logs/gaintuning_select/{case}.log",
    benchmark:
        "results/benchmarks/gaintuning_select/{case}.tsv"
    wildcard_constraints:
        case=alternatives([case for case in GAINTUNING_CASES if gaintuning_selects(case)]),
    conda:
        "../../envs/analysis.yaml"
    threads: resource("adapt", "threads", adapted_model())
    resources:
        mem_mb=resource("adapt", "mem_mb", adapted_model()),
        runtime=resource("adapt", "runtime", adapted_model()),
        gpu=resource("adapt", "gpu", adapted_model()),
        gpu_model=resource("adapt", "gpu_model", adapted_model()),
    params:
        entry=lambda wildcards: GAINTUNING_CASES[wildcards.case],
        entries=lambda wildcards: gaintuning_entries(wildcards.case),
        section=GAINTUNING,
    script:
        "../../scripts/gaintuning_select.py"


rule gaintuning_case:
    input:
        unpack(lambda wildcards: gaintuning_case_inputs(wildcards.case)),
    output:
        adaptation="results/adapt/{case}/adaptation.csv",
        estimates="results/adapt/{case}/estimates.npz",
        gains="results/adapt/{case}/gains.npz",
    log:
        "results/logs/gaintuning_case/{case}.log",
    benchmark:
        "results/benchmarks/gaintuning_case/{case}.tsv"
    wildcard_constraints:
        case=alternatives(list(GAINTUNING_CASES)),
    conda:
        "../../envs/analysis.yaml"
    threads: resource("adapt", "threads", adapted_model())
    resources:
        mem_mb=resource("adapt", "mem_mb", adapted_model()),
        runtime=resource("adapt", "runtime", adapted_model()),
        gpu=resource("adapt", "gpu", adapted_model()),
        gpu_model=resource("adapt", "gpu_model", adapted_model()),
    params:
        entry=lambda wildcards: GAINTUNING_CASES[wildcards.case],
        entries=lambda wildcards: gaintuning_entries(wildcards.case),
        section=GAINTUNING,
    script:
        "../../scripts/gaintuning_case.py"


rule gaintuning_score:
    input:
        adaptation="results/adapt/{case}/adaptation.csv",
        estimates="results/adapt/{case}/estimates.npz",
        clean=lambda wildcards: clean_split(GAINTUNING_CASES[wildcards.case]["test"], "test"),
        # each image's independent unit (its structure) for the paired differences
        metadata=lambda wildcards: clean_metadata(GAINTUNING_CASES[wildcards.case]["test"], "test"),
    output:
        table="results/adapt/{case}/metrics.csv",
        figure=report("results/plots/gaintuning_{case}.png", caption="../report/gaintuning.rst", category="GainTuning"),
    log:
        "results/logs/gaintuning_score/{case}.log",
    benchmark:
        "results/benchmarks/gaintuning_score/{case}.tsv"
    wildcard_constraints:
        case=alternatives(list(GAINTUNING_CASES)),
    conda:
        "../../envs/analysis.yaml"
    threads: resource("evaluate", "threads")
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    params:
        domain=lambda wildcards: config["datasets"][GAINTUNING_CASES[wildcards.case]["test"]]["domain"],
        tem_psnr=config["metrics"]["tem_psnr"],
        reference_counts=lambda wildcards: dataset_reference_counts(GAINTUNING_CASES[wildcards.case]["test"]),
    script:
        "../../scripts/gaintuning_score.py"


rule gaintuning_tables:
    input:
        expand("results/adapt/{case}/metrics.csv", case=GAINTUNING_CASES),
    output:
        expand(
            "results/tables/gaintuning_{kind}.{ext}",
            kind=sorted({c["kind"] for c in GAINTUNING_CASES.values()}),
            ext=["csv", "md", "tex"],
        ),
    log:
        "results/logs/gaintuning_tables.log",
    benchmark:
        "results/benchmarks/gaintuning_tables.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        kinds={name: case["kind"] for name, case in GAINTUNING_CASES.items()},
    script:
        "../../scripts/gaintuning_tables.py"


rule gaintuning_curve:
    input:
        unpack(
            lambda wildcards: gaintuning_case_inputs(
                GAINTUNING["curve"]["case"], [GAINTUNING["curve"]["noise"]], False
            )
        ),
    output:
        steps="results/adapt/curve/steps.csv",
        estimates="results/adapt/curve/estimates.npz",
    log:
        "results/logs/gaintuning_curve.log",
    benchmark:
        "results/benchmarks/gaintuning_curve.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: resource("adapt", "threads", adapted_model("curve"))
    resources:
        mem_mb=resource("adapt", "mem_mb", adapted_model("curve")),
        runtime=resource("adapt", "runtime", adapted_model("curve")),
        gpu=resource("adapt", "gpu", adapted_model("curve")),
        gpu_model=resource("adapt", "gpu_model", adapted_model("curve")),
    params:
        entries=lambda wildcards: gaintuning_entries(GAINTUNING["curve"]["case"]),
        section=GAINTUNING,
    script:
        "../../scripts/gaintuning_curve.py"


rule gaintuning_curve_score:
    input:
        steps="results/adapt/curve/steps.csv",
        estimates="results/adapt/curve/estimates.npz",
        clean=lambda wildcards: clean_split(GAINTUNING_CASES[GAINTUNING["curve"]["case"]]["test"], "test"),
    output:
        expand("results/tables/gaintuning_curve.{ext}", ext=["csv", "md", "tex"]),
        figure=report("results/plots/gaintuning_curve.png", caption="../report/gaintuning.rst", category="GainTuning"),
    log:
        "results/logs/gaintuning_curve_score.log",
    benchmark:
        "results/benchmarks/gaintuning_curve_score.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: resource("evaluate", "threads")
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    params:
        section=GAINTUNING,
        tem_psnr=config["metrics"]["tem_psnr"],
        reference_counts=lambda wildcards: dataset_reference_counts(
            GAINTUNING_CASES[GAINTUNING["curve"]["case"]]["test"]
        ),
    script:
        "../../scripts/gaintuning_curve_score.py"


rule gaintuning_net_bias:
    input:
        unpack(lambda wildcards: gaintuning_case_inputs(GAINTUNING["net_bias"]["case"], compared=False)),
    output:
        expand("results/tables/gaintuning_net_bias.{ext}", ext=["csv", "md", "tex"]),
        figure=report(
            "results/plots/gaintuning_net_bias.png", caption="../report/gaintuning.rst", category="GainTuning"
        ),
    log:
        "results/logs/gaintuning_net_bias.log",
    benchmark:
        "results/benchmarks/gaintuning_net_bias.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: resource("adapt", "threads", adapted_model("net_bias"))
    resources:
        mem_mb=resource("adapt", "mem_mb", adapted_model("net_bias")),
        runtime=resource("adapt", "runtime", adapted_model("net_bias")),
        gpu=resource("adapt", "gpu", adapted_model("net_bias")),
        gpu_model=resource("adapt", "gpu_model", adapted_model("net_bias")),
    params:
        entries=lambda wildcards: gaintuning_entries(GAINTUNING["net_bias"]["case"]),
        section=GAINTUNING,
    script:
        "../../scripts/gaintuning_net_bias.py"


if GAINTUNING_CASES:
    ALL_TARGETS.extend(rules.gaintuning_tables.output)
    ALL_TARGETS.extend(expand("results/plots/gaintuning_{case}.png", case=GAINTUNING_CASES))
# A part is on when it names its case (schema defaults fill the other keys of an empty part).
if GAINTUNING.get("curve", {}).get("case"):
    ALL_TARGETS.extend(rules.gaintuning_curve_score.output)
if GAINTUNING.get("net_bias", {}).get("case"):
    ALL_TARGETS.extend(rules.gaintuning_net_bias.output)
