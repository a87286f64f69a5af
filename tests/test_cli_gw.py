"""The GW command line: simulate -> prepare -> matched-filter baseline, as a user runs them."""
import json

import numpy as np

from astrocnn.cli import main
from astrocnn.gw.readers import read_g2net
from astrocnn.gw.store import StrainSet


def test_simulate_prepare_baseline(tmp_path, capsys):
    train, test = tmp_path / "train", tmp_path / "test"
    assert main(["-q", "simulate", "gw", "--n", "24", "--seed", "1", "--out", str(train)]) == 0
    # loud signals, so the reference must separate them well
    assert main(["-q", "simulate", "gw", "--n", "12", "--seed", "2", "--out", str(test), "--snr-median", "40",
                 "--snr-sigma", "0.1"]) == 0
    index = read_g2net(test)
    assert len(index.ids) == 12 and set(np.unique(index.target)) <= {0, 1}
    assert main(["-q", "prepare", "g2net", str(train), "--out", str(tmp_path / "train.h5")]) == 0
    ds = StrainSet(tmp_path / "train.h5")
    assert len(ds) == 24 and ds.read([0])["strain"].shape == (1, 3, 4096)
    out = tmp_path / "mf.json"
    assert main(["-q", "baseline", "gw", "--data", str(test), "--psd-from", str(tmp_path / "train.h5"),
                 "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["n"] == 12 and m["roc_auc"] > 0.95
    # an evaluation set is whitened with the training set's noise spectrum (its own would leak labels)
    assert main(["-q", "prepare", "g2net", str(test), "--out", str(tmp_path / "test.h5"),
                 "--whitener", str(tmp_path / "train.h5")]) == 0
    np.testing.assert_allclose(StrainSet(tmp_path / "test.h5").whitener().psd, ds.whitener().psd)
