import numpy as np
import pytest
import xarray as xr

from diffsens.cubes import write_netcdf


def test_written_file_opens_with_plain_xarray(tmp_path):
    ds = xr.Dataset({"D": (("layer",), np.array([0.5, 0.25]))}, coords={"layer": ["a", "b"]})
    ds.attrs["seed"] = 3
    path = write_netcdf(ds, tmp_path / "sub" / "cube.nc")
    with xr.open_dataset(path) as back:
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
