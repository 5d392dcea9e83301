# One rule per figure; each output carries a report() caption for `snakemake --report`.
rule plot_claims:
    input:
        table=rules.claims.output.table,
        settings=settings_file("plot_claims"),
    output:
        figures=figure_output(
            "claims", "claims", "claims at a glance", "", REPORT_CLAIMS
        ),
    log:
        f"{RESULTS}/logs/plot/claims.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/claims.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=claims_figure_settings,
        upstream=upstream_of_claims,
    script:
        "../../scripts/plot_claims.py"


rule plot_training:
    input:
        histories=experiment_histories,
        settings=settings_file("plot_training"),
    output:
        figures=figure_output("training", "training", "training curves"),
    log:
        f"{RESULTS}/logs/plot/{{experiment}}/training.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/{{experiment}}/training.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=training_figure_settings,
        upstream=upstream_of_histories,
    script:
        "../../scripts/plot_training.py"


rule plot_layerwise:
    input:
        cubes=experiment_cubes,
        settings=settings_file("plot_layerwise"),
    output:
        figures=figure_output("layerwise", "layerwise", "layer-wise sensitivities"),
    log:
        f"{RESULTS}/logs/plot/{{experiment}}/layerwise.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/{{experiment}}/layerwise.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=figure_settings_at_delta,
        upstream=upstream_of_cubes,
    script:
        "../../scripts/plot_layerwise.py"


rule plot_compare:
    input:
        cubes=experiment_cubes,
        settings=settings_file("plot_compare"),
    output:
        figures=figure_output("compare", "compare", "variants compared"),
    log:
        f"{RESULTS}/logs/plot/{{experiment}}/compare.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/{{experiment}}/compare.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=compare_settings,
        upstream=upstream_of_cubes,
    script:
        "../../scripts/plot_compare.py"


rule plot_error_vs_sensitivity:
    input:
        cubes=experiment_cubes,
        settings=settings_file("plot_error_vs_sensitivity"),
    output:
        figures=figure_output(
            "error_vs_sensitivity",
            "error_vs_sensitivity",
            "test error against sensitivity",
        ),
    log:
        f"{RESULTS}/logs/plot/{{experiment}}/error_vs_sensitivity.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/{{experiment}}/error_vs_sensitivity.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=figure_settings_at_delta,
        upstream=upstream_of_cubes,
    script:
        "../../scripts/plot_error_vs_sensitivity.py"


rule plot_spectra:
    input:
        spectra=experiment_spectra,
        settings=settings_file("plot_spectra"),
    output:
        figures=figure_output("spectra", "spectra", "filter spectra"),
    log:
        f"{RESULTS}/logs/plot/{{experiment}}/spectra.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/{{experiment}}/spectra.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=figure_settings,
        upstream=upstream_of_spectra_figure,
    script:
        "../../scripts/plot_spectra.py"


rule plot_depth_laws:
    input:
        cubes=experiment_cubes,
        fits=f"{FITS}.nc",
        settings=settings_file("plot_depth_laws"),
    output:
        figures=figure_output("depth_laws", "depth_laws", "depth laws"),
    log:
        f"{RESULTS}/logs/plot/{{experiment}}/depth_laws.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/{{experiment}}/depth_laws.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=figure_settings_at_delta,
        upstream=upstream_of_depth_laws,
    script:
        "../../scripts/plot_depth_laws.py"


rule plot_theory:
    input:
        theory=rules.theory.output.theory,
        settings=settings_file("plot_theory"),
    output:
        figures=figure_output(
            "constant_filters", "theory", "nets against their laws", "", REPORT_THEORY
        ),
    log:
        f"{RESULTS}/logs/plot/constant_filters.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/constant_filters.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=figure_settings,
        upstream=lambda wildcards: fingerprint(CONFIG.theory),
    script:
        "../../scripts/plot_theory.py"


rule plot_examples:
    input:
        settings=settings_file("plot_examples"),
    output:
        figures=figure_output(
            "examples", "examples", "inputs and their spreading", "", REPORT_THEORY
        ),
    log:
        f"{RESULTS}/logs/plot/examples.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/examples.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=figure_settings,
    script:
        "../../scripts/plot_examples.py"


rule plot_temperatures:
    input:
        cubes=experiment_cubes,
        settings=settings_file("plot_temperatures"),
    output:
        figures=figure_output("temperatures", "temperatures", "every displacement"),
    log:
        f"{RESULTS}/logs/plot/{{experiment}}/temperatures.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/{{experiment}}/temperatures.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=figure_settings,
        upstream=upstream_of_cubes,
    script:
        "../../scripts/plot_temperatures.py"
