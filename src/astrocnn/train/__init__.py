"""The trainer: any task, on any prepared set, with PyTorch Lightning; run folders; inference.

Trainer layer: above the tasks (it knows them only through :class:`~astrocnn.tasks.base.Task`), below the
applications. Modules: :mod:`~astrocnn.train.fit` (:func:`train`), :mod:`~astrocnn.train.runs` (the run
folder: weights, history, results), :mod:`~astrocnn.train.loader` (batches for one or several processes),
:mod:`~astrocnn.train.module` (the Lightning module), :mod:`~astrocnn.train.callbacks` and
:mod:`~astrocnn.train.resume` (resumable state), :mod:`~astrocnn.train.inference` (networks applied).

    from astrocnn.core.config import default_config
    from astrocnn.train import train, load_run, evaluate, predict_set, predict_arrays

    result = train("redshift", "survey.h5", "runs/z", default_config("redshift", train={"max_epochs": 20}))
    model, task, config = load_run("runs/z")
    scores = evaluate("runs/z", "other_survey.h5")
    out = predict_arrays("runs/z", flux, ivar)          # {"z": ..., "z_conf": ...}

    # gravitational-wave detection on a prepared strain set (astrocnn.gw.prepare.prepare_g2net)
    result = train("detect", "g2net_train.h5", "runs/gw", default_config("detect"))
    scores = evaluate("runs/gw", "g2net_test.h5")      # roc_auc, its bootstrap interval, tpr_at_fpr_0.01, per SNR
    # raw strain: astrocnn.apps.gwscan.predict_gwosc / predict_g2net_dir
"""
from astrocnn.train.fit import train
from astrocnn.train.inference import (evaluate, network_outputs, predict_arrays, predict_rows, predict_set,
                                      run_network)
from astrocnn.train.runs import (RESUME_FILE, RunResult, build_network, load_input_transform, load_preprocess,
                                 load_run, read_history, save_weights)

__all__ = ["train", "evaluate", "predict_arrays", "predict_rows", "predict_set", "run_network", "network_outputs", "RESUME_FILE",
           "RunResult", "build_network", "load_input_transform", "load_preprocess", "load_run", "read_history",
           "save_weights"]
