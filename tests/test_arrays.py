"""``astrocnn prepare arrays``: the paper authors' DR16Q HDF5 sets and the workshop's CSV pair, built here in
small files of both layouts, round-tripped, streamed in bounded memory, refused cleanly when bad, trained on,
and a run trained on a flux astrocnn cannot reproduce refusing FITS files."""
import csv
import json
import tracemalloc

import h5py
import numpy as np
import pytest
import yaml

from astrocnn.apps.cli import main
from astrocnn.core.config import default_config
from astrocnn.core.errors import InputError
from astrocnn.spectra.arrays import normalise_rows, prepare_arrays
from astrocnn.spectra.csvstream import iter_csv_values, read_csv_values
from astrocnn.spectra.dataset import SpectraSet
from astrocnn.spectra.grid import PAPER_GRID, LogLambdaGrid
from astrocnn.spectra.gridded import CsvPair, class_from_name
from astrocnn.spectra.preprocess import ARRAYS_KEY, PreprocessConfig, preprocess
from astrocnn.spectra.spectrum import Spectrum
from astrocnn.tasks import make_task

TINY = """\
model: {kernels: [50, 20, 5], channels: [4, 8, 8], pools: [4, 4, 2], dense: [32]}
data: {num_workers: 0}
train: {progress_bar: false, threads: 2}
"""
N_PIX = PAPER_GRID.n


def dr16q(path, n=6, width=N_PIX, seed=0, drop=(), **replace):
    """A file laid out like the paper's dr16q-log-zvi-*.h5 (every dataset it has), with known values."""
    rng = np.random.default_rng(seed)
    flux = rng.normal(3.0, 1.5, (n, width)).astype(np.float32)
    z_vi = np.round(rng.uniform(0.5, 4.0, n), 4)
    z_vi[-1] = -1.0  # DR16Q's "no visual redshift"
    cols = {
        "flux": flux, "flux_norm": (flux / np.median(flux, axis=1, keepdims=True)).astype(np.float32),
        "z_vi": z_vi, "z": z_vi + 0.001, "z_pipe": z_vi + 0.002, "z_pca": z_vi, "z_qn": z_vi, "z_dr12q": z_vi,
        "z_conf": np.full(n, 3, np.int16), "zwarn_pca": np.zeros(n, np.int32),
        "plate": 7000 + np.arange(n, dtype=np.int32), "mjd": np.full(n, 57001, np.int32),
        "fiberid": 1 + np.arange(n, dtype=np.int32), "thing_id": 10**8 + np.arange(n, dtype=np.int64),
        "index": np.arange(n, dtype=np.int64), "bal_prob": np.linspace(0, 1, n).astype(np.float32),
        "class_person": np.full(n, 3, np.int16), "autoclass_dr14q": np.full(n, b"QSO", "S6"),
        "autoclass_pqn": np.full(n, b"QSO", "S6"), "deltachi2_pca": rng.uniform(0, 100, n),
        "is_qso_dr12q": np.ones(n, np.int16), "is_qso_final": np.ones(n, np.int16), "is_qso_qn": np.ones(n, np.int16),
        "sn_median_all": rng.uniform(1, 10, n).astype(np.float32),
        "sdss_name": np.array([f"J1200{i:02d}.00+300000.0" for i in range(n)], dtype=object),
        "url": np.array([f"https://dr16.sdss.org/{i}" for i in range(n)], dtype=object),
        "wavelength": PAPER_GRID.wave.astype(np.float32), "wavelength_log": PAPER_GRID.loglam,
    }
    cols.update(replace)
    with h5py.File(path, "w") as h5:
        for k, v in cols.items():
            if k in drop:
                continue
            if isinstance(v, np.ndarray) and v.dtype == object:
                h5.create_dataset(k, data=v, dtype=h5py.string_dtype())
            else:
                h5[k] = v
    return cols


def write_csv(path, rows, one_line=True):
    """Written as the workshop wrote theirs: csv.QUOTE_NONNUMERIC, all values on one line (or one row per line)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC)
        if one_line:
            w.writerow(np.ravel(rows).tolist())
        else:
            w.writerows(np.asarray(rows).tolist())


def csv_pair(folder, n=5, width=300, one_line=True, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n, width))
    z = np.round(rng.uniform(2.8, 3.0, n), 5)
    write_csv(folder / "flux-2.8-3.csv", x, one_line)
    write_csv(folder / "zpipe-2.8-3.csv", z)
    return x, z


def run_cli(args, capsys):
    rc = main(["-q", *map(str, args)])
    return rc, capsys.readouterr()


# ----------------------------------------------------------------------------------------------------
# round trips


def test_dr16q_file_round_trips_flux_norm_labels_ids_and_columns(tmp_path, capsys):
    src = tmp_path / "dr16q-log-zvi-quasar.h5"
    cols = dr16q(src)
    out = tmp_path / "q.h5"
    rc, io = run_cli(["prepare", "arrays", src, "--out", out], capsys)
    assert rc == 0 and "kept 6 spectra, rejected 0" in io.out
    ds = SpectraSet(out)
    assert ds.grid == PAPER_GRID
    np.testing.assert_array_equal(ds.read(slice(None))["flux"], cols["flux_norm"])  # as given, bit for bit
    np.testing.assert_array_equal(ds.read(slice(None))["ivar"], np.ones((6, N_PIX), np.float32))
    assert list(ds.ids) == [f"{7000 + i:04d}-57001-{1 + i:04d}" for i in range(6)]
    np.testing.assert_allclose(ds.z[:5], cols["z_vi"][:5].astype(np.float32))
    assert np.isnan(ds.z[5])  # z_vi = -1 is "none": kept, unlabelled
    assert [ds.class_names[c] for c in ds.cls] == ["qso"] * 6
    np.testing.assert_array_equal(ds.column("norm_mean"), 0.0)
    np.testing.assert_array_equal(ds.column("norm_std"), 1.0)
    truth = ds.truth()
    expected = set(cols) - {"flux", "flux_norm", "wavelength", "wavelength_log"} | {"source_file", "source_row"}
    assert set(truth) == expected
    np.testing.assert_array_equal(truth["z_pipe"], cols["z_pipe"])
    np.testing.assert_array_equal(truth["thing_id"], cols["thing_id"])
    assert list(truth["sdss_name"]) == list(cols["sdss_name"]) and truth["autoclass_dr14q"][0] == "QSO"
    assert list(truth["source_row"]) == list(range(6)) and set(truth["source_file"]) == {src.name}
    record = json.loads(ds.attrs["preprocess"])
    assert record[ARRAYS_KEY]["flux"] == "flux_norm" and record[ARRAYS_KEY]["normalisation"] == "given"
    assert record[ARRAYS_KEY]["files"] == [src.name] and ds.preprocess == PreprocessConfig()


def test_astrocnn_normalisation_is_preprocess_on_the_same_grid(tmp_path):
    src = tmp_path / "dr16q-log-zvi-quasar.h5"
    ramp = np.arange(N_PIX, dtype=np.float32)
    cols = dr16q(src, n=3)
    flux = cols["flux"].copy()
    flux[0] = ramp
    flux[1, :400] = np.nan  # missing pixels: no data, not a bad row
    dr16q(src, n=3, flux=flux)
    report = prepare_arrays([src], tmp_path / "a.h5", normalisation="astrocnn")
    assert report.kept == 3
    ds = SpectraSet(tmp_path / "a.h5")
    rows = ds.read(slice(None))
    # a ramp 0..n-1: mean (n-1)/2, std sqrt((n^2-1)/12)
    assert ds.column("norm_mean")[0] == pytest.approx((N_PIX - 1) / 2)
    assert ds.column("norm_std")[0] == pytest.approx(np.sqrt((N_PIX**2 - 1) / 12))
    np.testing.assert_allclose(rows["flux"][0], (ramp - (N_PIX - 1) / 2) / np.sqrt((N_PIX**2 - 1) / 12), atol=1e-6)
    assert (rows["flux"][1, :400] == 0).all() and (rows["ivar"][1, :400] == 0).all()
    assert (rows["ivar"][1, 400:] == 1).all()
    assert ds.column("coverage")[1] == pytest.approx(1 - 400 / N_PIX)
    # the same spectrum through prepare sdss's preprocessing (rebinning onto an identical grid is the identity)
    for i in range(3):
        good = np.isfinite(flux[i])
        s = Spectrum(PAPER_GRID.loglam, np.nan_to_num(flux[i]).astype(np.float64), good.astype(np.float64))
        p = preprocess(s, PAPER_GRID)
        np.testing.assert_allclose(rows["flux"][i], p.flux, atol=2e-5)
        assert ds.column("norm_std")[i] == pytest.approx(p.std, rel=1e-6)
    assert json.loads(ds.attrs["preprocess"])[ARRAYS_KEY]["flux"] == "flux"


def test_quasar_and_galaxy_files_make_one_set_classed_by_their_names(tmp_path):
    q, g = tmp_path / "dr16q-log-zvi-quasar.h5", tmp_path / "dr16q-log-zvi-galaxy.h5"
    dr16q(q, n=4)
    dr16q(g, n=3, seed=5, drop=("bal_prob",), plate=np.arange(3, dtype=np.int32) + 8000)
    prepare_arrays([q, g], tmp_path / "qg.h5")
    ds = SpectraSet(tmp_path / "qg.h5")
    assert [ds.class_names[c] for c in ds.cls] == ["qso"] * 4 + ["galaxy"] * 3
    assert ds.ids[4] == "8000-57001-0001"
    bal = ds.column("truth/bal_prob")
    assert np.isfinite(bal[:4]).all() and np.isnan(bal[4:]).all()  # the galaxy file has no bal_prob
    assert list(ds.column("truth/source_file")) == [q.name] * 4 + [g.name] * 3
    assert class_from_name("flux-2.8-3.csv") is None and class_from_name("dr16q-star.h5") == "star"


@pytest.mark.parametrize("one_line", [True, False])
def test_csv_pair_round_trips_on_one_line_or_one_spectrum_per_line(tmp_path, one_line):
    x, z = csv_pair(tmp_path, one_line=one_line)
    grid_args = dict(loglam_start=3.6, loglam_step=1e-4)
    report = prepare_arrays([tmp_path / "flux-2.8-3.csv", tmp_path / "zpipe-2.8-3.csv"], tmp_path / "c.h5",
                            cls="qso", chunk_bytes=1000, **grid_args)  # chunks far smaller than a line
    assert report.kept == 5
    ds = SpectraSet(tmp_path / "c.h5")
    np.testing.assert_array_equal(ds.read(slice(None))["flux"], x.astype(np.float32))
    np.testing.assert_array_equal(ds.z, z.astype(np.float32))
    assert ds.grid.n == 300
    np.testing.assert_allclose(ds.grid.loglam, 3.6 + 1e-4 * np.arange(300), atol=1e-12)
    assert list(ds.ids[:2]) == ["flux-2.8-3.csv:0", "flux-2.8-3.csv:1"]
    assert json.loads(ds.attrs["preprocess"])[ARRAYS_KEY]["layout"] == "workshop-csv"
    # the same grid from a file of wavelengths in Angstrom
    (tmp_path / "wave.txt").write_text("\n".join(f"{w:.6f}" for w in 10 ** (3.6 + 1e-4 * np.arange(300))))
    prepare_arrays([tmp_path / "flux-2.8-3.csv", tmp_path / "zpipe-2.8-3.csv"], tmp_path / "w.h5", cls="qso",
                   wavelength=tmp_path / "wave.txt")
    assert np.abs(SpectraSet(tmp_path / "w.h5").grid.loglam - ds.grid.loglam).max() < 1e-9


def test_csv_of_4618_pixels_is_on_the_paper_grid_and_can_be_normalised(tmp_path):
    x, _ = csv_pair(tmp_path, n=2, width=N_PIX)
    prepare_arrays([tmp_path / "flux-2.8-3.csv", tmp_path / "zpipe-2.8-3.csv"], tmp_path / "c.h5", cls="qso",
                   normalisation="astrocnn")
    ds = SpectraSet(tmp_path / "c.h5")
    assert ds.grid == PAPER_GRID
    np.testing.assert_allclose(ds.read(slice(None))["flux"], (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True),
                               atol=1e-5)


def test_csv_values_quoted_or_not_and_special_values(tmp_path):
    path = tmp_path / "v.csv"
    path.write_bytes(b'1.5,"2.5",nan,-inf,3e2\r\n4,\r\n\r\n')
    with pytest.raises(InputError, match=r"value 7 is not a number \(''\)"):
        read_csv_values(path)
    path.write_bytes(b'1.5,"2.5",nan,-inf,3e2\r\n4\r\n\r\n')
    v = read_csv_values(path, chunk_bytes=4)
    np.testing.assert_array_equal(v[[0, 1, 4, 5]], [1.5, 2.5, 300.0, 4.0])
    assert np.isnan(v[2]) and v[3] == -np.inf


def _peak_bytes(func) -> int:
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_csv_is_read_as_a_stream_in_bounded_memory(tmp_path):
    """A single-line flux file of ~8 MB read 64 KiB at a time: the reader never holds the file, nor its values."""
    n, width = 200, 2000
    x, _ = csv_pair(tmp_path, n=n, width=width)
    flux, labels = tmp_path / "flux-2.8-3.csv", tmp_path / "zpipe-2.8-3.csv"
    size, values = flux.stat().st_size, n * width * 8  # 7.9 MB of text, 3.2 MB of float64
    chunk = 1 << 16
    assert size > 100 * chunk
    sizes = [v.size for v in iter_csv_values(flux, chunk)]
    assert sum(sizes) == n * width and len(sizes) > 100 and max(sizes) * 8 < 2 * chunk

    def read_all():
        for block in CsvPair(flux, labels, "qso", chunk).blocks(4):
            normalise_rows(block.flux)

    peak = _peak_bytes(read_all)  # ~0.4 MB measured
    assert peak < min(size, values) / 4, f"reader peak {peak / 1e6:.2f} MB for a {size / 1e6:.1f} MB file"
    # the whole job adds the writer: HDF5 reads back its 1.6-MB chunk of 200 spectra to add 4 rows
    peak = _peak_bytes(lambda: prepare_arrays([flux, labels], tmp_path / "big.h5", cls="qso", block_rows=4,
                                              loglam_start=3.55, loglam_step=1e-4, chunk_bytes=chunk))
    assert peak < size / 3, f"prepare peak {peak / 1e6:.2f} MB for a {size / 1e6:.1f} MB file"
    back = SpectraSet(tmp_path / "big.h5").read([0, n - 1])["flux"]
    np.testing.assert_array_equal(back, x[[0, n - 1]].astype(np.float32))


def test_normalise_rows_says_why_a_row_is_bad():
    rows = np.array([[np.nan] * 4, [1.0, np.nan, np.nan, np.nan], [2.0] * 4, [1.0, 2.0, np.inf, 3.0]])
    out = normalise_rows(rows, "astrocnn", min_coverage=0.5)
    assert out.problems[:3] == ["no finite flux", "only 25% of its pixels are finite (minimum 50%)", "flux is constant"]
    assert out.problems[3] == ""  # one infinite pixel is missing data, not a bad row
    np.testing.assert_allclose(out.flux[3], [-np.sqrt(1.5), 0, 0, np.sqrt(1.5)], atol=1e-6)
    np.testing.assert_array_equal(out.ivar[3], [1, 1, 0, 1])


# ----------------------------------------------------------------------------------------------------
# bad files


def _bad_h5(name, **kw):
    def build(d):
        dr16q(d / name, **kw)
        return [d / name]
    return build


def _bad_csv(flux_text=None, z_text=None, **kw):
    def build(d):
        csv_pair(d, n=4, width=N_PIX, **kw)
        if flux_text is not None:
            (d / "flux-2.8-3.csv").write_text(flux_text)
        if z_text is not None:
            (d / "zpipe-2.8-3.csv").write_text(z_text)
        return [d / "flux-2.8-3.csv", d / "zpipe-2.8-3.csv", "--class", "qso"]
    return build


def _nan_row():
    flux = np.random.default_rng(0).normal(size=(6, N_PIX)).astype(np.float32)
    flux[3] = np.nan
    return flux


def _inf_row():
    flux = np.random.default_rng(0).normal(size=(6, N_PIX)).astype(np.float32)
    flux[2] = np.inf
    return flux


def _wavelength_rows():
    wave = np.tile(PAPER_GRID.wave, (6, 1))
    wave[4] *= 3610 / 3600  # one spectrum on another grid
    return wave


def _short_line(d):
    x = np.zeros((3, 10)) + np.arange(10)
    write_csv(d / "flux-a.csv", x, one_line=False)
    (d / "flux-a.csv").write_text((d / "flux-a.csv").read_text() + "1,2,3\n")
    write_csv(d / "zpipe-a.csv", np.ones(4))
    return [d / "flux-a.csv", d / "zpipe-a.csv", "--class", "qso", "--loglam-start", "3.6", "--loglam-step", "1e-4"]


def _not_hdf5(d):
    (d / "dr16q-quasar.h5").write_text("plate,mjd\n1,2\n")
    return [d / "dr16q-quasar.h5"]


def _truncated(d):
    dr16q(d / "dr16q-quasar.h5", n=40)
    data = (d / "dr16q-quasar.h5").read_bytes()
    (d / "dr16q-quasar.h5").write_bytes(data[: len(data) // 2])
    return [d / "dr16q-quasar.h5"]


BAD = {
    "width not the grid": (_bad_h5("dr16q-quasar.h5", width=2000), "dr16q-quasar.h5",
                           "holds spectra of 2000 pixels, the paper grid has 4618"),
    "NaN row": (_bad_h5("dr16q-quasar.h5", flux_norm=_nan_row()), "dr16q-quasar.h5",
                "row 3 (7003-57001-0004): no finite flux"),
    "inf row": (_bad_h5("dr16q-quasar.h5", flux_norm=_inf_row()), "dr16q-quasar.h5",
                "row 2 (7002-57001-0003): no finite"),
    "a row of wavelengths off the grid": (_bad_h5("dr16q-quasar.h5", wavelength=_wavelength_rows()), "dr16q-quasar.h5",
                                          "wavelength row 4 is not the grid used (3600-10325 A with 4618 pixels): it "
                                          "runs 3610.00-10353.68 A"),
    "label count": (_bad_h5("dr16q-quasar.h5", z_vi=np.ones(5)), "dr16q-quasar.h5", "label column z_vi has shape (5,)"),
    "no flux": (_bad_h5("dr16q-quasar.h5", drop=("flux", "flux_norm")), "dr16q-quasar.h5",
                "has no flux or flux_norm dataset"),
    "no label column": (_bad_h5("dr16q-quasar.h5", drop=("z_vi",)), "dr16q-quasar.h5", "has no z_vi dataset"),
    "no flux to normalise": (lambda d: _bad_h5("dr16q-quasar.h5", drop=("flux",))(d) + ["--normalise", "astrocnn"],
                             "dr16q-quasar.h5", "has no flux dataset for --normalise astrocnn"),
    "wavelengths not the grid": (_bad_h5("dr16q-quasar.h5", wavelength_log=3.5563 + 1e-4 * np.arange(N_PIX)),
                                 "dr16q-quasar.h5", "--loglam-start 3.5563 --loglam-step 0.0001"),
    "class unknown": (_bad_h5("dr16q-lowz.h5"), "dr16q-lowz.h5", "cannot tell the class"),
    "not HDF5": (_not_hdf5, "dr16q-quasar.h5", "not a readable HDF5 file"),
    "truncated HDF5": (_truncated, "dr16q-quasar.h5", ""),
    "missing file": (lambda d: [d / "dr16q-quasar.h5"], "dr16q-quasar.h5", "no such file"),
    "csv count": (_bad_csv(flux_text="1,2,3,4,5,6,7\n"), "flux-2.8-3.csv", "holds 7 values on one line: not a whole"),
    "csv short line": (_short_line, "flux-a.csv", "line 4 holds 3 values, line 1 holds 10"),
    "csv lines vs labels": (_bad_csv(z_text="3,3,3\n", one_line=False), "flux-2.8-3.csv",
                            "holds 4 spectra (one per line) but zpipe-2.8-3.csv has 3 redshifts"),
    "csv not a number": (_bad_csv(flux_text=",".join(["1.5"] * 16 + ['"x"'] + ["2.5"] * (4 * N_PIX - 17))),
                         "flux-2.8-3.csv", "value 17 is not a number ('\"x\"')"),
    "csv NaN row": (_bad_csv(flux_text=",".join(["1.0", "2.5"] * (N_PIX // 2) + ["nan"] * N_PIX
                                                + ["1.0", "2.5"] * N_PIX)),
                    "flux-2.8-3.csv", "row 1: no finite flux"),
    "csv width without a grid": (_bad_csv(flux_text=",".join(["1.0", "2.0"] * 8)), "flux-2.8-3.csv",
                                 "holds spectra of 4 pixels, the paper grid has 4618: give its grid"),
    "csv without labels": (lambda d: _bad_csv()(d)[:1] + ["--class", "qso"], "flux-2.8-3.csv",
                           "no single labels file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_are_refused_in_one_line_and_leave_nothing(case, tmp_path, capsys):
    build, name, problem = BAD[case]
    data = tmp_path / "in"
    data.mkdir()
    args = build(data)
    outdir = tmp_path / "out"
    rc, io = run_cli(["prepare", "arrays", *args, "--out", outdir / "set.h5"], capsys)
    lines = io.err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, io.err
    assert lines[0].startswith("astrocnn: error: ") and name in lines[0] and problem in lines[0], lines[0]
    assert not outdir.exists() or list(outdir.iterdir()) == []  # no set, no temporary file, no rejects


def test_skip_bad_rows_keeps_the_others_and_lists_them(tmp_path, capsys):
    src = tmp_path / "dr16q-quasar.h5"
    dr16q(src, flux_norm=_nan_row())
    rc, io = run_cli(["prepare", "arrays", src, "--out", tmp_path / "s.h5", "--skip-bad-rows"], capsys)
    assert rc == 0 and "kept 5 spectra, rejected 1" in io.out
    assert "7003-57001-0004" not in list(SpectraSet(tmp_path / "s.h5").ids)
    rejects = (tmp_path / "s.rejects.csv").read_text().splitlines()
    assert rejects[1] == f"{src}:3,no finite flux (7003-57001-0004)"
    # the same command again finds the set up to date
    rc, io = run_cli(["prepare", "arrays", src, "--out", tmp_path / "s.h5", "--skip-bad-rows"], capsys)
    assert rc == 0 and "already up to date" in io.out


# ----------------------------------------------------------------------------------------------------
# training and prediction


@pytest.fixture(scope="module")
def given_run(tmp_path_factory):
    """A tiny redshift run trained on the paper's flux_norm as given."""
    d = tmp_path_factory.mktemp("given")
    dr16q(d / "dr16q-log-zvi-quasar.h5", n=40)
    assert main(["-q", "prepare", "arrays", str(d / "dr16q-log-zvi-quasar.h5"), "--out", str(d / "q.h5")]) == 0
    (d / "tiny.yaml").write_text(TINY)
    assert main(["-q", "train", "redshift", "--data", str(d / "q.h5"), "--out", str(d / "run"), "--config",
                 str(d / "tiny.yaml"), "--max-epochs", "1"]) == 0
    return d


def test_a_run_on_flux_norm_refuses_fits_files_and_predicts_sets_made_the_same_way(given_run, tmp_path, test_data,
                                                                                 capsys):
    run, fits = given_run / "run", test_data / "sdss" / "spec-7001-57001-0101.fits"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["input"]["preprocess"][ARRAYS_KEY]["flux"] == "flux_norm"
    out = tmp_path / "p.csv"
    rc, io = run_cli(["predict", run, fits, "--out", out, "--on-error", "fail"], capsys)
    lines = io.err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and not out.exists()
    assert lines[0] == (f"astrocnn: error: {fits}: the model was trained on flux_norm as given in "
                        "dr16q-log-zvi-quasar.h5, which astrocnn cannot reproduce from a FITS file: give it spectra "
                        "prepared the same way ('astrocnn prepare arrays')")
    # the same file prepared again elsewhere is a set made the same way: predicted, identically
    prepare_arrays([given_run / "dr16q-log-zvi-quasar.h5"], tmp_path / "again.h5")
    prepare_arrays([given_run / "dr16q-log-zvi-quasar.h5"], tmp_path / "ours.h5", normalisation="astrocnn")
    rc, io = run_cli(["predict", run, fits, given_run / "q.h5", tmp_path / "again.h5", tmp_path / "ours.h5",
                      "--out", out], capsys)
    assert rc == 0 and "80 predictions, 2 inputs could not be used" in io.out
    rows = list(csv.DictReader(open(out, newline="")))
    assert "cannot reproduce from a FITS file" in rows[0]["error"] and rows[0]["z_pred"] == ""
    assert [r["z_pred"] for r in rows[1:41]] == [r["z_pred"] for r in rows[41:81]] and rows[1]["z_pred"] != ""
    assert rows[81]["error"] == ("the spectra carry astrocnn's normalisation, the model was trained on flux_norm as "
                                 "given in dr16q-log-zvi-quasar.h5: prepare them the same way")


def test_fits_files_are_made_the_same_way_when_astrocnn_normalised_the_flux():
    task = make_task(default_config("redshift").task)
    config = default_config("redshift")
    record = {"min_coverage": 0.3, "bad_pixel_bits": 0,
              ARRAYS_KEY: {"layout": "dr16q-hdf5", "flux": "flux", "normalisation": "astrocnn", "files": ["a.h5"]}}
    config.input = {"grid": json.loads(LogLambdaGrid(3600, 9000, 3000).to_json()), "preprocess": record}
    pre = task.input_transform(config)
    assert pre.grid.n == 3000 and pre.config == PreprocessConfig(min_coverage=0.3, bad_pixel_bits=0)
    config.input["preprocess"] = {**record, ARRAYS_KEY: {**record[ARRAYS_KEY], "normalisation": "given"}}
    with pytest.raises(InputError, match="trained on flux as given in a.h5, which astrocnn cannot reproduce"):
        task.input_transform(config)


def test_the_network_takes_its_input_length_from_a_csv_set(tmp_path):
    csv_pair(tmp_path, n=4, width=600)
    prepare_arrays([tmp_path / "flux-2.8-3.csv", tmp_path / "zpipe-2.8-3.csv"], tmp_path / "c.h5", cls="qso",
                   loglam_start=3.6, loglam_step=1e-4)
    config = default_config("redshift")
    with SpectraSet(tmp_path / "c.h5") as store:
        make_task(config.task).configure_inputs(store, config)  # what train does with its set
    assert config.model.length == 600 and config.input["grid"]["n"] == 600
    assert config.input["preprocess"][ARRAYS_KEY] == {
        "layout": "workshop-csv", "flux": "values", "normalisation": "given", "files": ["flux-2.8-3.csv"],
        "ivar": "1 where the flux is finite, 0 elsewhere (the files carry no uncertainties)"}
