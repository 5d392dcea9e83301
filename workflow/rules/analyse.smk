# Analyses of the cubes and checkpoints: Laplacian spectra, depth-law fits, the theory model.
rule spectra:
    input:
        checkpoints=spectra_inputs,
        settings=settings_file("spectra"),
    output:
        spectra=FILTER_ENERGY,
    log:
        f"{RESULTS}/logs/spectra/{{experiment}}/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/spectra/{{experiment}}/{{variant}}.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=spectra_settings,
        upstream=upstream_of_spectra,
    script:
        "../../scripts/spectra.py"


rule fit_depth_laws:
    input:
        cubes=experiment_cubes,
        settings=settings_file("fit_depth_laws"),
    output:
        fits=f"{FITS}.nc",
        table=report(
            f"{FITS}.csv",
            caption="../report/fits.rst",
            category=REPORT_EXPERIMENT,
            subcategory="Tables",
            labels={"table": "depth-law fits"},
        ),
        markdown=f"{FITS}.md",
    log:
        f"{RESULTS}/logs/fits/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fits/{{experiment}}.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=fit_settings,
        upstream=upstream_of_cubes,
    script:
        "../../scripts/fit_depth_laws.py"


rule theory:
    input:
        settings=settings_file("theory"),
    output:
        theory=f"{RESULTS}/theory/constant_filters.nc",
        table=report(
            f"{RESULTS}/theory/fits.csv",
            caption="../report/theory_fits.rst",
            category=REPORT_THEORY,
            subcategory="Tables",
            labels={"table": "fits of the laws"},
        ),
        markdown=f"{RESULTS}/theory/fits.md",
    log:
        f"{RESULTS}/logs/theory.log",
    benchmark:
        f"{RESULTS}/benchmarks/theory.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=lambda wildcards: CONFIG.theory,
    script:
        "../../scripts/theory.py"


rule summarise:
    input:
        unpack(summary_inputs),
        settings=settings_file("summarise"),
    output:
        table=report(
            f"{RESULTS}/summary.csv",
            caption="../report/summary.rst",
            category=REPORT_RUN,
            subcategory="Tables",
            labels={"table": "summary"},
        ),
        markdown=f"{RESULTS}/summary.md",
    log:
        f"{RESULTS}/logs/summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/summary.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=summary_settings,
        upstream=upstream_of_summary,
    script:
        "../../scripts/summarise.py"


rule claims:
    input:
        unpack(claims_inputs),
        settings=settings_file("claims"),
    output:
        table=report(
            f"{RESULTS}/claims.csv",
            caption="../report/claims_table.rst",
            category=REPORT_CLAIMS,
            subcategory="Tables",
            labels={"table": "claims, every displacement"},
        ),
        markdown=f"{RESULTS}/claims.md",
    log:
        f"{RESULTS}/logs/claims.log",
    benchmark:
        f"{RESULTS}/benchmarks/claims.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    params:
        settings=claims_settings,
        upstream=upstream_of_claims,
    script:
        "../../scripts/claims.py"
