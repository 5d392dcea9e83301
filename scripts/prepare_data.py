"""Prepare one dataset and cache it to a file (rule prepare_data)."""

from diffsens.runtime import start_job

start_job(snakemake)

from diffsens.data import prepare

settings = dict(snakemake.params.settings)
data = prepare(settings.pop("source"), **settings)
data.save(snakemake.output.data)
print(f"{data.name}: {len(data.train_images)} train, {len(data.test_images)} test, {data.settings}")
