"""Prepared HDF5 sets: round trip, random-order reads, atomic writes, clear errors."""
import numpy as np
import pytest

from astrocnn.core.errors import InputError
from astrocnn.spectra.grid import LogLambdaGrid
from astrocnn.spectra.preprocess import Prepared, PreprocessConfig
from astrocnn.spectra.dataset import SpectraSet, SpectraWriter

GRID = LogLambdaGrid(4000, 5000, 50)


def prepared(i):
    flux = np.full(GRID.n, float(i), np.float32)
    return Prepared(flux=flux, ivar=np.ones(GRID.n, np.float32), coverage=0.9, snr=3.0 + i, mean=1.0, std=2.0)


def write(path, n, chunk_rows=7):
    with SpectraWriter(path, GRID, source="unit-test", seed=5, chunk_rows=chunk_rows,
                        preprocess=PreprocessConfig(min_coverage=0.3),
                        truth_columns={"bal": "b", "sample": "U", "n_dla": "i", "alpha": "f"}) as w:
        for i in range(n):
            w.append(prepared(i), id=f"obj{i}", z=0.5 * i, cls=["qso", "galaxy", "star"][i % 3],
                     truth={"bal": i % 2 == 0, "sample": f"s{i}", "n_dla": i})
    return path


def test_round_trip(tmp_path):
    ds = SpectraSet(write(tmp_path / "set.h5", 23))
    assert len(ds) == 23 and ds.grid == GRID and ds.attrs["source"] == "unit-test" and ds.attrs["seed"] == 5
    assert ds.preprocess.min_coverage == 0.3
    assert list(ds.class_names) == ["qso", "galaxy", "star"]
    np.testing.assert_array_equal(ds.cls[:4], [0, 1, 2, 0])
    np.testing.assert_allclose(ds.z[:3], [0, 0.5, 1.0])
    b = ds.read([9, 2, 2, 20])
    np.testing.assert_array_equal(b["flux"][:, 0], [9, 2, 2, 20])
    assert list(b["id"]) == ["obj9", "obj2", "obj2", "obj20"]
    np.testing.assert_allclose(b["z"], [4.5, 1.0, 1.0, 10.0])
    s = ds.read(slice(5, 8))
    np.testing.assert_array_equal(s["flux"][:, 3], [5, 6, 7])
    t = ds.truth()
    assert t["bal"][:3].tolist() == [True, False, True] and t["sample"][22] == "s22" and t["n_dla"][4] == 4
    assert np.isnan(t["alpha"]).all()  # a column nobody filled stays NaN, not 0
    np.testing.assert_allclose(ds.column("snr")[:2], [3, 4])


def test_failed_write_leaves_no_file(tmp_path):
    out = tmp_path / "set.h5"
    with pytest.raises(RuntimeError):
        with SpectraWriter(out, GRID) as w:
            w.append(prepared(0), id="a")
            raise RuntimeError("interrupted")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_wrong_shape_is_refused(tmp_path):
    with SpectraWriter(tmp_path / "x.h5", GRID) as w:
        bad = Prepared(np.zeros(3, np.float32), np.zeros(3, np.float32), 1, 1, 0, 1)
        with pytest.raises(ValueError, match="grid has 50 pixels"):
            w.append(bad, id="a")


def test_not_a_prepared_set(tmp_path):
    p = tmp_path / "junk.h5"
    p.write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match=r"junk\.h5: not a readable HDF5"):
        SpectraSet(p)
    with pytest.raises(InputError, match="no such file"):
        SpectraSet(tmp_path / "missing.h5")
    import h5py
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = [1]
    with pytest.raises(InputError, match="not an astrocnn prepared set"):
        SpectraSet(tmp_path / "other.h5")


def test_input_errors_survive_pickling_between_processes():
    import pickle

    from astrocnn.core.errors import RejectedSpectrum

    for err in (InputError("a.fits", "truncated"), RejectedSpectrum("b.fits", "only 5% of the grid has data")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err) and back.path == err.path
