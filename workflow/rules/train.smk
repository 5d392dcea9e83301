rule train:
    input:
        data=dataset_file,
        settings=settings_file("train"),
    output:
        checkpoints=directory(CHECKPOINTS),
        history=HISTORY,
    log:
        f"{RESULTS}/logs/train/{{experiment}}/{{variant}}/seed~{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{experiment}}/{{variant}}/seed~{{seed}}.tsv"
    group:
        train_group
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        gpu=LOCAL_GPU,
        runtime=train_runtime,
        mem_mb=job_memory,
    params:
        settings=train_settings,
        upstream=upstream_of_train,
    script:
        "../../scripts/train.py"
