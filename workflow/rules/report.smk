# Aggregate tables and figures of the main benchmark.


rule aggregate:
    input:
        benchmark_metrics(),
    output:
        csv=report("results/tables/psnr.csv", caption="../report/psnr_table.rst", category="Tables"),
        summary="results/tables/psnr_summary.csv",
        markdown=report("results/tables/psnr_summary.md", caption="../report/psnr_table.rst", category="Tables"),
        latex="results/tables/psnr_summary.tex",
        pairs="results/tables/psnr_pairs.csv",
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/aggregate.py"


rule plot_psnr:
    input:
        "results/tables/psnr.csv",
    output:
        png=report("results/plots/psnr_vs_noise.png", caption="../report/psnr_vs_noise.rst", category="Figures"),
        svg="results/plots/psnr_vs_noise.svg",
    log:
        "results/logs/plot_psnr.log",
    benchmark:
        "results/benchmarks/plot_psnr.tsv"
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/plot_psnr.py"


rule plot_example:
    input:
        clean="results/data/{dataset}/test.npz",
        noisy="results/noisy/{dataset}/{noise}/test.npz",
        denoised=lambda wildcards: [
            f"results/denoised/{wildcards.dataset}/{wildcards.noise}/{m}.npz"
            for m in config["benchmark"][wildcards.dataset]
        ],
    output:
        png=report(
            "results/plots/example_{dataset}_{noise}.png",
            caption="../report/example.rst",
            category="Figures",
            labels={"dataset": "{dataset}", "noise": "{noise}"},
        ),
        svg="results/plots/example_{dataset}_{noise}.svg",
    log:
        "results/logs/plot_example/{dataset}-{noise}.log",
    benchmark:
        "results/benchmarks/plot_example/{dataset}-{noise}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        methods=lambda wildcards: config["benchmark"][wildcards.dataset],
        index=config["plots"]["example_index"],
        inset_fraction=config["plots"]["inset_fraction"],
    script:
        "../../scripts/plot_example.py"


ALL_TARGETS.extend(
    [
        "results/tables/psnr.csv",
        "results/tables/psnr_summary.md",
        "results/tables/psnr_summary.tex",
        "results/plots/psnr_vs_noise.png",
        *[
            f"results/plots/example_{dataset}_{noise}.png"
            for dataset in config["benchmark"]
            for noise in conditions(dataset)
        ],
    ]
)


rule provenance:
    output:
        report("results/provenance.json", caption="../report/provenance.rst", category="Provenance"),
    log:
        "results/logs/provenance.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        # a changed config reruns the rule (the record holds the config's hash)
        config_sha256=config_sha256(config),
    script:
        "../../scripts/provenance.py"


ALL_TARGETS.append("results/provenance.json")


rule table_html:
    input:
        "results/tables/{table}.md",
    output:
        report(
            "results/report/{table}.html",
            caption="../report/headline_table.rst",
            category="1 Headline tables",
            subcategory=lambda wildcards: headline_group(wildcards.table)[1][1],
            labels={"table": "{table}"},
        ),
    log:
        "results/logs/table_html/{table}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        caption=table_caption,
    script:
        "../../scripts/table_html.py"


rule claims:
    input:
        claim_tables(),
    output:
        markdown="results/tables/claims.md",
        csv="results/tables/claims.csv",
        summary="results/tables/claims_summary.md",
    log:
        "results/logs/claims.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        run=f"{', '.join(os.path.relpath(f, workflow.basedir) for f in workflow.configfiles) or 'config/config.yaml'} "
        f"(seed {config['seed']})",
    script:
        "../../scripts/claims.py"


ALL_TARGETS.extend(["results/tables/claims.md", "results/tables/claims.csv"])
ALL_TARGETS.extend(f"results/report/{Path(t).stem}.html" for t in headline_tables())


rule html_report:
    input:
        headline=lambda wildcards: headline_tables(),
        tables=lambda wildcards: [t for t in ALL_TARGETS if t.startswith("results/tables/") and t.endswith(".csv")],
        figures=lambda wildcards: [t for t in ALL_TARGETS if t.startswith("results/plots/") and t.endswith(".png")],
        provenance="results/provenance.json",
    output:
        "results/report.html",
    log:
        "results/logs/html_report.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        title="TEM denoising benchmark: results",
    script:
        "../../scripts/html_report.py"
