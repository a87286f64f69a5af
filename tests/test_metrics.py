"""Metric functions against values worked out by hand."""
import math

import numpy as np
import pytest

from astrocnn.core.metrics import C_KMS, classification_metrics, confusion_matrix, dv_kms, redshift_metrics


def test_dv_kms_definition():
    # dz = 0.02 at z = 1: c * 0.02 / 2 = 2997.92458 km/s
    assert dv_kms(1.02, 1.0) == pytest.approx(2997.92458)
    assert dv_kms(np.array([0.0]), np.array([0.01]))[0] == pytest.approx(-C_KMS * 0.01 / 1.01)


def test_redshift_metrics_by_hand():
    z_true = np.array([1.0, 1.0, 1.0, 1.0, 3.0])
    # relative errors dz/(1+z): 0, 0.01, -0.03, 0.05, 0.001
    z_pred = np.array([1.0, 1.02, 0.94, 1.10, 3.004])
    m = redshift_metrics(z_pred, z_true, bins=[0, 2, 5.5])
    rel = np.array([0.0, 0.01, -0.03, 0.05, 0.001])
    adv = np.abs(rel) * C_KMS  # 0, 2998, 8994, 14990, 300 km/s
    assert m["n"] == 5
    assert m["frac_dv_lt_6000"] == pytest.approx(3 / 5)  # 0, 2998, 300
    assert m["frac_dv_lt_12000"] == pytest.approx(4 / 5)
    assert m["median_abs_dv_kms"] == pytest.approx(0.01 * C_KMS)
    # median of rel: sorted -0.03, 0, 0.001, 0.01, 0.05 -> 0.001
    assert m["bias"] == pytest.approx(0.001)
    # |rel - 0.001| = 0.001, 0.009, 0.031, 0.049, 0 -> median 0.009
    assert m["nmad"] == pytest.approx(1.4826 * 0.009)
    assert np.isclose(np.median(adv), m["median_abs_dv_kms"])
    low, high = m["per_bin"]
    assert (low["z_lo"], low["z_hi"], low["n"]) == (0.0, 2.0, 4)
    assert low["frac_dv_lt_6000"] == pytest.approx(2 / 4)
    assert high["n"] == 1 and high["frac_dv_lt_6000"] == 1.0
    assert high["bias"] == pytest.approx(0.001)


def test_redshift_metrics_edges_and_invalid():
    m = redshift_metrics([0.5, np.nan, 5.5], [0.5, 1.0, 5.5])
    assert m["n"] == 2 and m["n_invalid"] == 1
    # the last bin includes its upper edge
    assert m["per_bin"][-1]["n"] == 1
    assert sum(b["n"] for b in m["per_bin"]) == 2
    empty = [b for b in m["per_bin"] if b["n"] == 0][0]
    assert math.isnan(empty["frac_dv_lt_6000"])


def test_confusion_and_classification_by_hand():
    names = ["qso", "galaxy", "star"]
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 0, 2])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    m = classification_metrics(y_true, y_pred, names)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == {"classes": names, "matrix": [[2, 1, 0], [1, 1, 0], [0, 0, 1]]}
    assert m["completeness"] == pytest.approx({"qso": 2 / 3, "galaxy": 1 / 2, "star": 1.0})
    assert m["purity"] == pytest.approx({"qso": 2 / 3, "galaxy": 1 / 2, "star": 1.0})


def test_classification_class_never_predicted_has_nan_purity():
    m = classification_metrics([0, 1, 1], [0, 0, 0], ["qso", "galaxy"])
    assert m["purity"]["qso"] == pytest.approx(1 / 3)
    assert math.isnan(m["purity"]["galaxy"])
    assert m["completeness"]["galaxy"] == 0.0


# ---------------------------------------------------------------------------------------------- paired AUC

def _delong_difference_std(y, a, b):
    """DeLong, DeLong & Clarke-Pearson (1988): the standard error of AUC_a - AUC_b on paired samples, from the
    structural components (placement values) of each detector; an independent, analytic reference."""
    y = np.asarray(y, bool)

    def placements(s):
        pos, neg = s[y], s[~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(axis=1), psi.mean(axis=0)  # V10 (per positive), V01 (per negative)

    v10a, v01a = placements(a)
    v10b, v01b = placements(b)
    s10 = np.cov(np.stack([v10a, v10b]))
    s01 = np.cov(np.stack([v01a, v01b]))
    var = ((s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / y.sum()
           + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / (~y).sum())
    return math.sqrt(var)


def test_paired_auc_difference_point_estimate_is_sklearns():
    from sklearn.metrics import roc_auc_score

    from astrocnn.core.roc import paired_bootstrap_auc_difference

    rng = np.random.default_rng(5)
    y = rng.random(300) < 0.4
    a = np.round(rng.normal(y * 1.0, 1.0), 1)  # rounded: many ties, counted one half as scikit-learn does
    b = np.round(rng.normal(y * 0.6, 1.0), 1)
    d = paired_bootstrap_auc_difference(y, a, b, n_boot=50)
    assert d["auc_a"] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert d["auc_b"] == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert d["diff"] == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)


def test_paired_auc_difference_identical_rankings_have_zero_width():
    from astrocnn.core.roc import paired_bootstrap_auc_difference

    rng = np.random.default_rng(6)
    y = rng.random(200) < 0.5
    a = rng.normal(y * 1.0, 1.0)
    for b in (a.copy(), np.exp(3 * a) + 7):  # the same scores, and a monotone transform of them: same ranks
        d = paired_bootstrap_auc_difference(y, a, b, n_boot=300)
        assert d["diff"] == 0.0 and d["low"] == 0.0 and d["high"] == 0.0 and d["std"] == 0.0
        assert d["frac_not_better"] == 1.0


def test_paired_auc_difference_interval_matches_delong():
    """Two correlated detectors (shared per-sample noise, as a network and a filter share which samples are hard):
    the bootstrap spread of the difference matches DeLong's analytic standard error, and pairing makes it much
    narrower than two independent intervals would suggest."""
    from astrocnn.core.roc import bootstrap_auc, paired_bootstrap_auc_difference

    rng = np.random.default_rng(7)
    n = 600
    y = np.r_[np.ones(n // 2, bool), np.zeros(n // 2, bool)]
    shared = rng.normal(0, 1, n)
    a = 1.2 * y + shared + 0.4 * rng.normal(0, 1, n)
    b = 1.0 * y + shared + 0.4 * rng.normal(0, 1, n)
    d = paired_bootstrap_auc_difference(y, a, b, n_boot=2000, seed=1)
    se = _delong_difference_std(y, a, b)
    # 2000 replicates: the bootstrap std is good to ~1.6%; bootstrap and DeLong differ by O(1/n) besides
    assert d["std"] == pytest.approx(se, rel=0.1)
    # a normal interval of DeLong's width and the percentile interval agree to a fraction of that width
    assert d["low"] == pytest.approx(d["diff"] - 1.96 * se, abs=0.3 * se)
    assert d["high"] == pytest.approx(d["diff"] + 1.96 * se, abs=0.3 * se)
    unpaired = math.hypot(bootstrap_auc(y, a, n_boot=500)["std"], bootstrap_auc(y, b, n_boot=500)["std"])
    assert d["std"] < 0.5 * unpaired
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap_auc_difference(y, a, b[:-1])
