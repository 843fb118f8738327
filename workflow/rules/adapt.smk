# GainTuning test-time adaptation (Mohan et al., NeurIPS 2021): config experiments.gaintuning.
# Cases adapt a model trained by `train` on one dataset to the test images of another (or the same)
# dataset; tables under results/tables/gaintuning_*, figures under results/plots/gaintuning_*.

check_gaintuning()


rule piecewise_images:
    output:
        stack="results/data/{dataset}/{split}.npz",
        metadata="results/data/{dataset}/{split}.csv",
    wildcard_constraints:
        dataset=alternatives(datasets_with_source("piecewise")),
    params:
        settings=GAINTUNING.get("piecewise", {}),
    log:
        "results/logs/piecewise_images/{dataset}-{split}.log",
    benchmark:
        "results/benchmarks/piecewise_images/{dataset}-{split}.tsv"
    threads: resource("noise", "threads")
    resources:
        mem_mb=resource("noise", "mem_mb"),
        runtime=resource("noise", "runtime"),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/piecewise_images.py"


rule gaintuning_case:
    input:
        unpack(lambda wildcards: gaintuning_case_inputs(wildcards.case)),
    output:
        table="results/adapt/{case}/metrics.csv",
        gains="results/adapt/{case}/gains.npz",
        figure=report("results/plots/gaintuning_{case}.png", caption="../report/gaintuning.rst", category="GainTuning"),
    wildcard_constraints:
        case=alternatives(list(GAINTUNING_CASES)),
    params:
        entry=lambda wildcards: GAINTUNING_CASES[wildcards.case],
        entries=lambda wildcards: gaintuning_entries(wildcards.case),
        section=GAINTUNING,
    log:
        "results/logs/gaintuning_case/{case}.log",
    benchmark:
        "results/benchmarks/gaintuning_case/{case}.tsv"
    threads: resource("adapt", "threads")
    resources:
        mem_mb=resource("adapt", "mem_mb"),
        runtime=resource("adapt", "runtime"),
        gpu=resource("adapt", "gpu"),
        gpu_model=resource("adapt", "gpu_model"),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/gaintuning_case.py"


rule gaintuning_tables:
    input:
        expand("results/adapt/{case}/metrics.csv", case=GAINTUNING_CASES),
    output:
        expand(
            "results/tables/gaintuning_{kind}.{ext}",
            kind=sorted({c["kind"] for c in GAINTUNING_CASES.values()}),
            ext=["csv", "md", "tex"],
        ),
    params:
        kinds={name: case["kind"] for name, case in GAINTUNING_CASES.items()},
    log:
        "results/logs/gaintuning_tables.log",
    benchmark:
        "results/benchmarks/gaintuning_tables.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/gaintuning_tables.py"


rule gaintuning_curve:
    input:
        unpack(lambda wildcards: gaintuning_case_inputs(GAINTUNING["curve"]["case"], [GAINTUNING["curve"]["noise"]], False)),
    output:
        expand("results/tables/gaintuning_curve.{ext}", ext=["csv", "md", "tex"]),
        figure=report("results/plots/gaintuning_curve.png", caption="../report/gaintuning.rst", category="GainTuning"),
    params:
        entries=lambda wildcards: gaintuning_entries(GAINTUNING["curve"]["case"]),
        section=GAINTUNING,
    log:
        "results/logs/gaintuning_curve.log",
    benchmark:
        "results/benchmarks/gaintuning_curve.tsv"
    threads: resource("adapt", "threads")
    resources:
        mem_mb=resource("adapt", "mem_mb"),
        runtime=resource("adapt", "runtime"),
        gpu=resource("adapt", "gpu"),
        gpu_model=resource("adapt", "gpu_model"),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/gaintuning_curve.py"


rule gaintuning_net_bias:
    input:
        unpack(lambda wildcards: gaintuning_case_inputs(GAINTUNING["net_bias"]["case"], compared=False)),
    output:
        expand("results/tables/gaintuning_net_bias.{ext}", ext=["csv", "md", "tex"]),
        figure=report("results/plots/gaintuning_net_bias.png", caption="../report/gaintuning.rst", category="GainTuning"),
    params:
        entries=lambda wildcards: gaintuning_entries(GAINTUNING["net_bias"]["case"]),
        section=GAINTUNING,
    log:
        "results/logs/gaintuning_net_bias.log",
    benchmark:
        "results/benchmarks/gaintuning_net_bias.tsv"
    threads: resource("adapt", "threads")
    resources:
        mem_mb=resource("adapt", "mem_mb"),
        runtime=resource("adapt", "runtime"),
        gpu=resource("adapt", "gpu"),
        gpu_model=resource("adapt", "gpu_model"),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/gaintuning_net_bias.py"


if GAINTUNING_CASES:
    ALL_TARGETS.extend(rules.gaintuning_tables.output)
    ALL_TARGETS.extend(expand("results/plots/gaintuning_{case}.png", case=GAINTUNING_CASES))
# A part is on when it names its case (schema defaults fill the other keys of an empty part).
if GAINTUNING.get("curve", {}).get("case"):
    ALL_TARGETS.extend(rules.gaintuning_curve.output)
if GAINTUNING.get("net_bias", {}).get("case"):
    ALL_TARGETS.extend(rules.gaintuning_net_bias.output)
