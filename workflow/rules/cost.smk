# What the run costs, and the calibration its time limits come from (docs/cluster.md).
# `snakemake calibration` times every network on the device the grid will use (on a cluster, a
# short GPU job per dataset) and writes the table that the config's `calibration` key names
# (without one, {results}/calibration.csv, for the key to name).
rule cost:
    input:
        settings=settings_file("cost"),
    output:
        table=report(
            f"{RESULTS}/cost.csv",
            caption="../report/cost.rst",
            category=REPORT_RUN,
            subcategory="Tables",
            labels={"table": "cost on a GPU"},
        ),
        markdown=f"{RESULTS}/cost.md",
    log:
        f"{RESULTS}/logs/cost.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=cost_settings,
    script:
        "../../scripts/cost.py"


rule calibrate:
    input:
        settings=settings_file("calibrate"),
    output:
        table=f"{RESULTS}/calibration/{{dataset}}.csv",
    log:
        f"{RESULTS}/logs/calibrate/{{dataset}}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=LOCAL_GPU,
        mem_mb=calibration_memory,
    params:
        settings=calibration_settings,
    script:
        "../../scripts/calibrate.py"


rule calibration:
    input:
        tables=expand(rules.calibrate.output.table, dataset=calibrated_datasets()),
        settings=settings_file("calibration"),
    output:
        table=CONFIG.calibration or f"{RESULTS}/calibration.csv",
    log:
        f"{RESULTS}/logs/calibration.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../../scripts/calibration.py"
