#!/usr/bin/env python
"""Write the tiny SDSS-format test fixtures (committed under tests/data/).

    python scripts/make_fixtures.py [OUTDIR]        # default: tests/data next to this script's repo

Writes OUTDIR/sdss/ (good files and a DR16Q-like catalogue) and OUTDIR/sdss-bad/ (files every reader
must refuse with a one-line InputError). Same bytes on every run: fixed seeds, no dates in headers,
gzip with a zero timestamp. Re-run it whenever the writers change, and commit the result.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

from astrocnn.core.io import atomic_path
from astrocnn.spectra.catalog import write_catalog
from astrocnn.spectra.masks import SpPixMask
from astrocnn.spectra.sdss import SDSS_LOGLAM_STEP, spec_filename, write_image_spectrum, write_spec_lite
from astrocnn.spectra.spectrum import Spectrum

SEED = 20240601
#: Redshift of the fixture quasar; CIV and MgII are injected at (1 + z) times their rest wavelengths.
QSO_Z = 2.3
CIV = 1549.06
MGII = 2798.75
GALAXY_Z = 0.1
C_KMS = 299792.458

BOSS_QSO = (7001, 57001, 101)
BOSS_QSO_NO_EXTNAME = (7001, 57001, 102)
LEGACY_GALAXY = (500, 51990, 201)
MISSING = (7001, 57001, 999)
IMAGE_FILE = "SDSSJ120000.00+300000.0.fits"
IMAGE_PLATE_MJD = (7002, 57002)


def sdss_grid(lam_min: float, lam_max: float) -> np.ndarray:
    """The native SDSS grid (1e-4 dex, starting on a multiple of 1e-4) covering lam_min-lam_max A."""
    start = np.ceil(np.log10(lam_min) / SDSS_LOGLAM_STEP)
    stop = np.floor(np.log10(lam_max) / SDSS_LOGLAM_STEP)
    return np.round(np.arange(start, stop + 1) * SDSS_LOGLAM_STEP, 4)


def _gauss(wave: np.ndarray, centre: float, fwhm_kms: float, area: float) -> np.ndarray:
    sigma = centre * fwhm_kms / C_KMS / 2.3548
    return area / (sigma * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((wave - centre) / sigma) ** 2)


def _sky(wave: np.ndarray) -> np.ndarray:
    """A toy sky: flat plus the two brightest [OI] lines (vacuum A)."""
    return 2.0 + _gauss(wave, 5578.9, 60.0, 300.0) + _gauss(wave, 6302.0, 60.0, 80.0)


def _finish(loglam, model, snr, rng, *, fibre_bits: int = 0, **meta) -> Spectrum:
    """Add noise, masks and sky to a noiseless model (1e-17 erg/s/cm^2/A)."""
    wave = 10.0 ** loglam
    sky = _sky(wave)
    sigma = np.median(model) / snr * np.sqrt(sky / 2.0)
    flux = model + rng.normal(0.0, 1.0, wave.size) * sigma
    ivar = 1.0 / sigma ** 2
    mask = np.full(wave.size, fibre_bits, dtype=np.int64)
    mask[sky > 10.0] |= SpPixMask.BRIGHTSKY
    # As in real coadds: the first pixels carry no data.
    mask[:3] |= SpPixMask.NODATA
    ivar[:3] = 0.0
    flux[:3] = 0.0
    wdisp = np.full(wave.size, 1.0)
    return Spectrum(loglam=loglam, flux=flux.astype(np.float32), ivar=ivar.astype(np.float32), mask=mask,
                    meta=dict(sky=sky.astype(np.float32), wdisp=wdisp.astype(np.float32),
                              model=model.astype(np.float32), **meta))


def quasar(loglam: np.ndarray, z: float, snr: float, rng: np.random.Generator, **meta) -> Spectrum:
    """Power law f_nu ~ nu^-0.44 with CIV (EW 37 A) and MgII (EW 40 A) at (1 + z) x rest wavelength."""
    wave = 10.0 ** loglam
    cont = 5.0 * (wave / 5000.0) ** (-2.0 + 0.44)
    model = cont.copy()
    for rest, ew, fwhm in ((CIV, 37.0, 5000.0), (MGII, 40.0, 4000.0)):
        centre = (1 + z) * rest
        model += _gauss(wave, centre, fwhm, ew * (1 + z) * 5.0 * (centre / 5000.0) ** (-1.56))
    spec = _finish(loglam, model, snr, rng, **meta)
    spec.z, spec.cls = z, "qso"
    return spec


def galaxy(loglam: np.ndarray, z: float, snr: float, rng: np.random.Generator, **meta) -> Spectrum:
    """A cartoon star-forming galaxy: 4000 A break, Ca H&K absorption, H-alpha and [OIII] emission."""
    wave = 10.0 ** loglam
    rest = wave / (1 + z)
    model = np.where(rest < 4000.0, 6.0, 10.0) * (rest / 5000.0) ** 0.3
    for line, depth in ((3934.8, 0.3), (3969.6, 0.25)):
        model *= 1 - depth * np.exp(-0.5 * ((rest - line) / 4.0) ** 2)
    for line, area in ((6564.6, 150.0), (5008.2, 40.0), (4862.7, 40.0)):
        model += _gauss(wave, line * (1 + z), 200.0, area)
    # Legacy files often carry a fibre-level bit on every pixel of a good fibre (see masks.py).
    spec = _finish(loglam, model, snr, rng, fibre_bits=int(SpPixMask.MANYBADCOLUMNS), **meta)
    spec.z, spec.cls = z, "galaxy"
    return spec


def _ids(plate: int, mjd: int, fiberid: int) -> dict:
    return dict(plate=plate, mjd=mjd, fiberid=fiberid)


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _spec_lite_bytes(spectrum: Spectrum, **kwargs) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.fits"
        write_spec_lite(spectrum, path, **kwargs)
        return path.read_bytes()


def make_good(outdir: Path, rng: np.random.Generator) -> list[Path]:
    out = outdir / "sdss"
    written = []
    # BOSS spec-lite, full range, EXTNAMEs and lower-case columns (as DR14+ files).
    qso = quasar(sdss_grid(3600.0, 10400.0), QSO_Z, 5.0, rng, run2d="v5_13_0", subclass="BROADLINE",
                 **_ids(*BOSS_QSO))
    written.append(write_spec_lite(qso, out / spec_filename(*BOSS_QSO)))
    # The same kind of object in the older BOSS layout without EXTNAMEs (upper-case columns); short range
    # around CIV only.
    qso2 = quasar(sdss_grid(4950.0, 5300.0), QSO_Z, 8.0, rng, run2d="v5_13_0", **_ids(*BOSS_QSO_NO_EXTNAME))
    written.append(write_spec_lite(qso2, out / spec_filename(*BOSS_QSO_NO_EXTNAME), extname=False))
    # SDSS-I/II legacy range, SPECOBJ label HDU, gzipped.
    gal = galaxy(sdss_grid(3800.0, 9200.0), GALAXY_Z, 15.0, rng, run2d="26", subclass="STARFORMING",
                 **_ids(*LEGACY_GALAXY))
    written.append(write_spec_lite(gal, out / (spec_filename(*LEGACY_GALAXY) + ".gz"), label_extname="SPECOBJ"))
    # Old BOSS image layout: no fibre number, no label.
    img = quasar(sdss_grid(5000.0, 5250.0), QSO_Z, 6.0, rng, run2d="v5_7_0", plate=IMAGE_PLATE_MJD[0],
                 mjd=IMAGE_PLATE_MJD[1])
    img.z, img.cls = float("nan"), None
    written.append(write_image_spectrum(img, out / IMAGE_FILE))

    rows = [
        dict(SDSS_NAME="120000.00+300000.0", RA=180.0, DEC=30.0, **dict(zip(("PLATE", "MJD", "FIBERID"), BOSS_QSO)),
             Z=QSO_Z, Z_VI=QSO_Z, Z_PIPE=QSO_Z + 0.0005, Z_PCA=QSO_Z - 0.001, Z_QN=QSO_Z + 0.001,
             CLASS_PERSON=3, BAL_PROB=0.0, SN_MEDIAN_ALL=5.0, ZWARNING=0, OBJ_CLASS="QSO"),
        dict(SDSS_NAME="120001.00+300000.0", RA=180.004, DEC=30.0,
             **dict(zip(("PLATE", "MJD", "FIBERID"), BOSS_QSO_NO_EXTNAME)),
             Z=QSO_Z, Z_VI=-1.0, Z_PIPE=QSO_Z, Z_PCA=-1.0, Z_QN=QSO_Z, CLASS_PERSON=0, BAL_PROB=0.1,
             SN_MEDIAN_ALL=8.0, ZWARNING=0, OBJ_CLASS="QSO"),
        dict(SDSS_NAME="094744.20-004013.4", RA=146.934, DEC=-0.670,
             **dict(zip(("PLATE", "MJD", "FIBERID"), LEGACY_GALAXY)),
             Z=GALAXY_Z, Z_VI=GALAXY_Z, Z_PIPE=GALAXY_Z, CLASS_PERSON=4, SN_MEDIAN_ALL=15.0, ZWARNING=0,
             OBJ_CLASS="GALAXY"),
        # A catalogue row whose spectrum file is not there.
        dict(SDSS_NAME="120002.00+300000.0", RA=180.008, DEC=30.0, **dict(zip(("PLATE", "MJD", "FIBERID"), MISSING)),
             Z=1.5, Z_VI=1.5, Z_PIPE=1.5, CLASS_PERSON=3, SN_MEDIAN_ALL=3.0, ZWARNING=0, OBJ_CLASS="QSO"),
    ]
    written.append(write_catalog(rows, out / "dr16q-mini.fits"))
    return written


def make_bad(outdir: Path, rng: np.random.Generator) -> list[Path]:
    """Files that are not usable spectra, one per error the reader reports."""
    from astropy.io import fits

    out = outdir / "sdss-bad"
    loglam = sdss_grid(5000.0, 5060.0)
    n = loglam.size

    def small(**changes) -> Spectrum:
        spec = quasar(loglam, QSO_Z, 5.0, rng, run2d="v5_13_0", **_ids(7003, 57003, 1))
        for key, value in changes.items():
            setattr(spec, key, value)
        return spec

    written = []
    good = _spec_lite_bytes(small())
    # Cut inside the COADD table's data: headers of HDU0 and HDU1 (one block each) plus part of the rows.
    path = out / "bad-truncated.fits"
    _write_bytes(path, good[: 2 * 2880 + 16 * n])
    written.append(path)
    path = out / "bad-not-fits.fits"
    _write_bytes(path, b"SIMPLE? no: this is a text file that someone named .fits\n")
    written.append(path)
    path = out / "bad-empty.fits"
    _write_bytes(path, b"")
    written.append(path)
    path = out / "bad-no-tables.fits"
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU()]).writeto(tmp, overwrite=True)
    written.append(path)
    written.append(write_spec_lite(small(flux=np.full(n, np.nan, dtype=np.float32)), out / "bad-nan-flux.fits"))
    written.append(write_spec_lite(small(ivar=np.zeros(n, dtype=np.float32)), out / "bad-ivar-zero.fits"))
    written.append(write_spec_lite(small(loglam=loglam[::-1].copy()), out / "bad-loglam-decreasing.fits"))
    # A COADD table without a flux column.
    path = out / "bad-no-flux-column.fits"
    coadd = fits.BinTableHDU.from_columns([
        fits.Column(name="loglam", format="E", array=loglam.astype(np.float32)),
        fits.Column(name="ivar", format="E", array=np.ones(n, dtype=np.float32)),
    ], name="COADD")
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), coadd]).writeto(tmp, overwrite=True)
    written.append(path)
    # Image layout whose ivar HDU is shorter than the flux.
    path = out / "bad-lengths.fits"
    img = small()
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        write_image_spectrum(img, Path(tmp) / "x.fits", with_loglam=False, with_good_pixel=False)
        with fits.open(Path(tmp) / "x.fits") as hdul:
            hdul[1].data = hdul[1].data[:-5]
            hdul.writeto(buf)
    _write_bytes(path, buf.getvalue())
    written.append(path)
    return written


def make_fixtures(outdir: Path) -> list[Path]:
    rng = np.random.default_rng(SEED)
    return make_good(Path(outdir), rng) + make_bad(Path(outdir), rng)


def create_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", nargs="?", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "data",
                        help="folder to write sdss/ and sdss-bad/ into (default: tests/data)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = create_parser().parse_args(argv)
    paths = make_fixtures(args.outdir)
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} files, {total / 1024:.0f} KiB, under {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
