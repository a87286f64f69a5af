"""Networks: the paper's 1D CNN, its output heads, and FFT convolution for long kernels."""
from .cnn import CNN, CNNConfig, Network, he_uniform_
from .fftconv import FFTConv1d, fft_conv1d
from .heads import BinnedRegressionHead, ClassificationHead, RegressionHead

__all__ = [
    "CNN",
    "CNNConfig",
    "Network",
    "he_uniform_",
    "FFTConv1d",
    "fft_conv1d",
    "RegressionHead",
    "ClassificationHead",
    "BinnedRegressionHead",
]
