rule measure:
    input:
        checkpoints=CHECKPOINTS,
        data=dataset_file,
        settings=settings_file("measure"),
    output:
        sensitivity=SENSITIVITY,
    log:
        f"{RESULTS}/logs/measure/{{experiment}}/{{variant}}/seed~{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{{experiment}}/{{variant}}/seed~{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=LOCAL_GPU,
        runtime=measure_runtime,
        mem_mb=job_memory,
    params:
        settings=measure_settings,
        upstream=upstream_of_measure,
    script:
        "../../scripts/measure.py"
