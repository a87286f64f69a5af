"""Networks: the paper's 1D CNN, its output heads, and FFT convolution for long kernels.

Core layer (the models): knows no domain, no task and no trainer.
"""
from astrocnn.models.cnn import CNN, CNNConfig, Network, he_uniform_
from astrocnn.models.fftconv import FFTConv1d, fft_conv1d
from astrocnn.models.heads import BinnedRegressionHead, ClassAndBinsHead, ClassificationHead, ScalarHead

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
]
