"""Gravitational-wave strain: G2Net-like simulation, readers, whitening, prepared sets, matched-filter reference.

A strain sample is ``strain`` of shape (3, 4096): H1, L1, V1, 2 s at ``sample_rate`` = 2048 Hz.

    from astrocnn.gw.simulate import simulate_g2net, simulate_sample      # needs lalsuite
    from astrocnn.gw.readers import read_g2net, load_g2net_sample, read_gwosc, gwosc_network
    from astrocnn.gw.transforms import Whitener, Normalize, whiten_long_segment, sliding_windows
    from astrocnn.gw.store import prepare_g2net, StrainSet
    from astrocnn.gw.matched_filter import make_template_bank, matched_filter_scores, baseline_metrics
    from astrocnn.gw.roc import roc_auc, roc_curve, tpr_at_fpr, bootstrap_auc
    from astrocnn.gw.apply import predict_gwosc, predict_g2net_dir                 # score raw strain with a run

The submodules are imported on demand: readers, transforms, store and roc work without lalsuite.
"""
DETECTORS = ("H1", "L1", "V1")
SAMPLE_RATE = 2048.0
N_SAMPLES = 4096
