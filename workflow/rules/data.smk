rule prepare_data:
    input:
        settings=settings_file("prepare_data"),
    output:
        data=f"{RESULTS}/data/{{dataset}}.pt",
    log:
        f"{RESULTS}/logs/prepare_data/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data/{{dataset}}.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=lambda wildcards: CONFIG.datasets[wildcards.dataset],
        files=lambda wildcards: CONFIG.data_identity(wildcards.dataset).get("files", ""),
    script:
        "../../scripts/prepare_data.py"
