# One rule per figure; each output carries a report() caption for `snakemake --report`.
rule plot_layerwise:
    input:
        cubes=experiment_cubes,
    output:
        figures=[
            report(
                path,
                caption="../report/layerwise.rst",
                category="Layer-wise sensitivities",
            )
            for path in figure_files("layerwise")
        ],
    log:
        f"{RESULTS}/logs/plot/{{experiment}}/layerwise.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/{{experiment}}/layerwise.tsv"
    conda:
        "../../environment.yml"
    params:
        settings=lambda wildcards: canonical(FIGURES),
    script:
        "../../scripts/plot_layerwise.py"
