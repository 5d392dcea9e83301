"""Files: atomic writes, checksummed torch files, NetCDF reads that name what is wrong, tables."""

import errno
import os
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from diffsens.io import (
    CHECKSUM,
    CorruptedFile,
    digest,
    load_torch,
    markdown,
    netcdf_digest,
    open_cubes,
    open_netcdf,
    save_torch,
    write_netcdf,
    write_table,
)


def test_written_file_opens_with_plain_xarray(tmp_path):
    ds = xr.Dataset({"D": (("layer",), np.array([0.5, 0.25]))}, coords={"layer": ["a", "b"]})
    ds.attrs["seed"] = 3
    path = write_netcdf(ds, tmp_path / "sub" / "cube.nc")
    with xr.open_dataset(path) as back:
        assert back.attrs.pop(CHECKSUM) == netcdf_digest(ds)  # what diffsens verifies on reads
        xr.testing.assert_identical(back, ds)
    assert [p.name for p in path.parent.iterdir()] == ["cube.nc"]


def test_failed_write_leaves_neither_partial_file_nor_damage(tmp_path):
    path = tmp_path / "cube.nc"
    good = xr.Dataset({"D": ("x", [1.0])})
    write_netcdf(good, path)
    bad = xr.Dataset({"D": ("x", [2.0])}, attrs={"settings": {"not": "serialisable"}})
    with pytest.raises(TypeError):
        write_netcdf(bad, path)
    assert [p.name for p in tmp_path.iterdir()] == ["cube.nc"]
    with xr.open_dataset(path) as back:
        assert back.D.item() == 1.0


def test_digest_follows_contents_dtype_and_shape():
    a = {"w": torch.arange(6.0).view(2, 3), "n": 1, "s": "x"}
    assert digest(a) == digest({"s": "x", "n": 1, "w": torch.arange(6.0).view(2, 3)})
    assert digest(a) != digest({**a, "w": torch.arange(6.0).view(3, 2)})
    assert digest(a) != digest({**a, "w": torch.arange(6.0, dtype=torch.float64).view(2, 3)})
    changed = torch.arange(6.0).view(2, 3)
    changed[1, 2] = 5.000001
    assert digest(a) != digest({**a, "w": changed})
    assert digest({"x": [1, 2]}) != digest({"x": [2, 1]})


def test_torch_files_round_trip_and_refuse_corruption(tmp_path):
    path = save_torch({"w": torch.randn(64, 64), "epoch": 3}, tmp_path / "c.pt")
    back = load_torch(path, "checkpoint")
    assert back["epoch"] == 3 and back["w"].shape == (64, 64) and "sha256" not in back
    raw = bytearray(path.read_bytes())
    # flip one byte inside the tensor's data (stored uncompressed in torch's zip archive)
    index = raw.index(torch.load(path, weights_only=True)["w"].numpy().tobytes()[:64]) + 40
    raw[index] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptedFile, match=r"checkpoint '.*c\.pt' is corrupted: its contents do"):
        load_torch(path, "checkpoint")
    path.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CorruptedFile, match="unreadable or corrupted") as caught:
        load_torch(path, "checkpoint")
    assert caught.value.path == path and "delete it and run again" in str(caught.value)
    with pytest.raises(FileNotFoundError, match=r"checkpoint does not exist: '.*missing\.pt'"):
        load_torch(tmp_path / "missing.pt", "checkpoint")


def test_files_without_checksum_are_refused_unless_a_plain_state_dict_is_allowed(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "plain.pt")
    with pytest.raises(CorruptedFile, match="has no checksum"):
        load_torch(tmp_path / "plain.pt", "checkpoint")
    assert torch.equal(
        load_torch(tmp_path / "plain.pt", "checkpoint", state_dict=True)["w"], torch.ones(2)
    )
    torch.save({"w": torch.ones(2), "epoch": 3}, tmp_path / "other.pt")  # not tensors alone
    with pytest.raises(CorruptedFile, match=r"has no checksum .*or a plain state_dict \(torch"):
        load_torch(tmp_path / "other.pt", "checkpoint", state_dict=True)


def test_netcdf_reads_name_the_problem(tmp_path):
    cube = xr.Dataset(
        {name: ("layer", [1.0]) for name in ("D", "G", "R", "num_D", "num_G", "den", "test_error")}
    )
    path = write_netcdf(cube, tmp_path / "a.nc")
    assert list(open_cubes([path])) == ["a"]
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptedFile, match=r"cube '.*truncated\.nc' is truncated or corrupted"):
        open_cubes([truncated])
    text = tmp_path / "notes.nc"
    text.write_text("not a NetCDF file\n")
    with pytest.raises(
        CorruptedFile, match=r"is not a NetCDF file \(first bytes b'not a Ne'\); give a cube$"
    ):
        open_netcdf(text, "cube")  # another kind of file: no advice to delete it
    with pytest.raises(
        CorruptedFile, match=r"is not a torch file \(it is a NetCDF file\); give a check"
    ):
        load_torch(path, "checkpoint")
    with pytest.raises(FileNotFoundError, match=r"cube is a folder, not a file"):
        open_netcdf(tmp_path, "cube")
    history = write_netcdf(xr.Dataset({"lr": ("epoch", [0.1])}), tmp_path / "history.nc")
    with pytest.raises(
        CorruptedFile, match=r"is a NetCDF file but not a cube: it lacks \['D'.*; give a cube$"
    ):
        open_cubes([history])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_netcdf(tmp_path / "none.nc", "cube")


def test_a_flipped_bit_in_a_netcdf_file_is_refused_by_its_checksum(tmp_path):
    import struct

    ds = xr.Dataset(
        {"D": ("layer", np.array([1.2345678, 0.5, 0.25]))},
        coords={"layer": ["conv1", "relu1", "pool1"]},
        attrs={"model": '{"name": "vgg11_bn"}', "n_probes": 500, "T_max": 0.013},
    )
    path = write_netcdf(ds, tmp_path / "cube.nc")
    back = open_netcdf(path, "cube")  # the checksum survives the round trip
    xr.testing.assert_identical(back, ds)
    assert CHECKSUM not in back.attrs
    raw = bytearray(path.read_bytes())
    at = raw.find(struct.pack("<d", 1.2345678))
    raw[at] ^= 1  # the last bit of the mantissa: D = 1.2345678000000002, still a fine number
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptedFile, match=r"cube\.nc' is corrupted: its contents do not match"):
        open_netcdf(path, "cube")
    plain = tmp_path / "plain.nc"  # a file of another tool, without a checksum, is read
    ds.to_netcdf(plain)
    xr.testing.assert_identical(open_netcdf(plain), ds)


def test_a_stack_of_nets_of_different_depths_keeps_its_checksum(tmp_path):
    # layer names joined over nets of 2 and 3 layers leave a missing name (NaN) that NetCDF
    # stores as the empty string: the file must still verify
    nets = [
        xr.Dataset(
            {"D": ("depth", [1.0, 0.5, 0.25][:n])}, coords={"depth": [1, 2, 3][:n]}
        ).assign_coords(label=("depth", ["relu1", "relu2", "relu3"][:n]))
        for n in (2, 3)
    ]
    stacked = xr.concat(nets, pd.Index(["short", "long"], name="network"), join="outer")
    assert stacked.label.values[0, 2] != stacked.label.values[0, 2]  # NaN before writing
    back = open_netcdf(write_netcdf(stacked, tmp_path / "nets.nc"), "theory file")
    assert back.label.values.tolist() == [["relu1", "relu2", ""], ["relu1", "relu2", "relu3"]]


def test_tables_as_csv_and_markdown(tmp_path):
    table = pd.DataFrame({"a": ["x"], "b": [1.23456], "c": [float("nan")]})
    assert markdown(table).splitlines() == ["| a | b | c |", "|---|---|---|", "| x | 1.23 |  |"]
    write_table(table, tmp_path / "t.csv", tmp_path / "t.md")
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a,b,c", "x,1.23456,"]
    assert (tmp_path / "t.md").read_text() == markdown(table)


@pytest.fixture
def full_disk(tmp_path):
    """A real, tiny file system (tmpfs of 256 kB): writes beyond it fail with ENOSPC."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_reported_as_such_with_the_path(full_disk):
    filler = full_disk / "filler"
    filler.write_bytes(bytes(200_000))
    small = xr.Dataset({"D": ("x", np.zeros(10_000))})  # 80 kB: more than is left
    with pytest.raises(
        OSError, match=r"no space left on the device while writing '.*cube\.nc'"
    ) as caught:
        write_netcdf(small, full_disk / "cubes" / "cube.nc")
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match=r"no space left .*state\.pt'.*free some space"):
        save_torch({"w": torch.zeros(20_000)}, full_disk / "state.pt")
    assert sorted(p.name for p in full_disk.rglob("*") if p.is_file()) == ["filler"]  # no partials
    filler.unlink()  # following the advice: free some space, run again
    write_netcdf(small, full_disk / "cubes" / "cube.nc")
    save_torch({"w": torch.zeros(20_000)}, full_disk / "state.pt")
    assert load_torch(full_disk / "state.pt", "state")["w"].shape == (20_000,)


def test_a_file_size_limit_is_reported_as_such_with_the_path(tmp_path):
    """ulimit -f: torch says "unexpected pos", NetCDF "HDF error"; diffsens names file and fix."""
    script = f"""
import resource, numpy as np, torch, xarray as xr
from diffsens.io import save_torch, write_netcdf
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
for write in (
    lambda: save_torch({{"w": torch.zeros(100_000)}}, {str(tmp_path / "state.pt")!r}),
    lambda: write_netcdf(xr.Dataset({{"D": ("x", np.zeros(100_000))}}), {str(tmp_path / "c.nc")!r}),
):
    try:
        write()
    except OSError as error:
        print(error.errno, error)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    for line, name in zip(lines, ("state.pt", "c.nc"), strict=True):
        assert line.startswith(f"{errno.EFBIG} ")
        assert (
            f"the file size limit (100,000 bytes, ulimit -f) was reached while writing "
            f"'{tmp_path / name}'; raise the limit" in line
        )
    assert not list(tmp_path.iterdir())  # no partial file left
