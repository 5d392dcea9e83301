rule collect:
    input:
        runs=collect_inputs,
        settings=settings_file("collect"),
    output:
        cube=CUBE,
    log:
        f"{RESULTS}/logs/collect/{{experiment}}/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/collect/{{experiment}}/{{variant}}.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=collect_settings,
        upstream=upstream_of_collect,
    script:
        "../../scripts/collect.py"
