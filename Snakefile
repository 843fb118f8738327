# TEM denoising benchmark: simulate -> add noise -> fit/train -> denoise -> evaluate -> analyse -> report.
from snakemake.utils import min_version, validate

min_version("9.0")


# A config named on the command line (--configfile laptop.yaml) replaces the default instead of being
# merged into it: merged, every key of the quick config that a larger config leaves out (a quick-only
# model parameter, say) would leak into the larger study.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml", set_default=True)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/noise.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/adapt.smk"
include: "workflow/rules/realdata.smk"
include: "workflow/rules/report.smk"


# Jobs that read a few small tables and write a table, a figure or a page run in the Snakemake
# process itself, never submitted to a cluster (profiles/slurm): a SLURM job's queueing would
# cost more than the work.
localrules:
    aggregate,
    plot_psnr,
    plot_example,
    html_report,
    table_html,
    provenance,
    tem_table,
    fov_gain,
    gaintuning_tables,
    udvd_table,


rule all:
    default_target: True
    input:
        ALL_TARGETS,
        "results/report.html",
