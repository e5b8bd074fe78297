"""Streaming, mergeable metrics (no I/O) and their registry of lazily imported built-ins."""

from tokbench.metrics.base import MeanMetric, Metric
from tokbench.registry import Registry

METRICS: Registry[type[Metric]] = Registry("metric", base=Metric)
for _key, _target in {
    "psnr": "tokbench.metrics.psnr:PeakSignalNoiseRatio",
    "ssim": "tokbench.metrics.ssim:StructuralSimilarity",
    "ms-ssim": "tokbench.metrics.ssim:MultiScaleStructuralSimilarity",
    "bits-per-pixel": "tokbench.metrics.rate:BitsPerPixel",
    "bytes-per-image": "tokbench.metrics.rate:BytesPerImage",
}.items():
    METRICS.register(_key, _target)

__all__ = ["METRICS", "MeanMetric", "Metric"]
