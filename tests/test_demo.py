import xarray as xr

from diffsens import demo


def test_demo_writes_a_real_cube(tmp_path, capsys):
    out = tmp_path / "demo.nc"
    demo.main(["--out", str(out), "--probes", "60", "--epochs", "1"])
    assert str(out.resolve()) in capsys.readouterr().out
    with xr.open_dataset(out) as ds:
        assert list(ds.checkpoint.values) == ["init", "trained"]
        assert ds.R.sizes == {"checkpoint": 2, "layer": len(demo.LAYERS), "temperature": 3}
        assert float(ds.test_error.sel(checkpoint="trained")) < 0.5  # learned well above chance
        assert (ds.D > 0).all() and (ds.G > 0).all()
