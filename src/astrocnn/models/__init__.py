"""Networks: the paper's 1D CNN, its output heads, FFT convolution for long kernels, and a network's layer
table (:func:`~astrocnn.models.summary.layer_table`).

Core layer (the models): knows no domain, no task and no trainer.
"""
from astrocnn.models.cnn import CNN, CNNConfig, Network, he_uniform_
from astrocnn.models.fftconv import FFTConv1d, fft_conv1d
from astrocnn.models.heads import BinnedRegressionHead, ClassAndBinsHead, ClassificationHead, ScalarHead
from astrocnn.models.summary import LayerRow, layer_table

__all__ = [
    "CNN",
    "CNNConfig",
    "Network",
    "he_uniform_",
    "FFTConv1d",
    "fft_conv1d",
    "ScalarHead",
    "ClassificationHead",
    "BinnedRegressionHead",
    "ClassAndBinsHead",
    "LayerRow",
    "layer_table",
]
