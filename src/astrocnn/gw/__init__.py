"""Gravitational-wave strain: G2Net-like simulation, readers, whitening, prepared strain sets, the
matched-filter reference and figures.

Domain layer, on the core (:mod:`astrocnn.core`); it knows nothing of spectra, tasks or training. A strain
sample is ``strain`` of shape (3, 4096): H1, L1, V1, 2 s at ``sample_rate`` = 2048 Hz. Where data flow: a
G2Net ``.npy`` sample or a GWOSC file (:mod:`~astrocnn.gw.readers`) -> whitened, band-passed and normalised
(:mod:`~astrocnn.gw.whitening`) -> rows of a :class:`~astrocnn.gw.dataset.StrainSet`
(:func:`~astrocnn.gw.prepare.prepare_g2net`).

    from astrocnn.gw.simulate import simulate_g2net, simulate_sample      # needs lalsuite (the gw extra)
    from astrocnn.gw.noise_variation import VariationPrior                # noise="varied": a PSD per sample
    from astrocnn.gw.readers import read_g2net, load_g2net_sample, read_gwosc, gwosc_network
    from astrocnn.gw.whitening import Whitener, Normalize, whiten_running, sliding_windows, whitened_snr
    from astrocnn.gw.psd import folder_psd                                # label-free PSD of a folder
    from astrocnn.gw.prepare import prepare_g2net
    from astrocnn.gw.dataset import StrainSet
    from astrocnn.gw.matched_filter import make_template_bank, matched_filter_scores
    from astrocnn.gw.baseline import baseline_metrics, paired_comparison

Scoring raw strain with a trained run is an application: :mod:`astrocnn.apps.gwscan`. The submodules are
imported on demand; only the simulator and the template bank need lalsuite.
"""
DETECTORS = ("H1", "L1", "V1")
SAMPLE_RATE = 2048.0
N_SAMPLES = 4096
