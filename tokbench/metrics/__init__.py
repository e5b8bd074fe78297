"""Streaming, mergeable metrics (no I/O) and their registry of lazily imported built-ins."""

from tokbench.metrics.base import MeanMetric, Metric
from tokbench.registry import Registry

METRICS: Registry[type[Metric]] = Registry("metric", base=Metric, entry_point_group="tokbench.metrics")
for _key, _target in {
    "psnr": "tokbench.metrics.psnr:PeakSignalNoiseRatio",
    "ssim": "tokbench.metrics.ssim:StructuralSimilarity",
    "ms-ssim": "tokbench.metrics.ssim:MultiScaleStructuralSimilarity",
    "bits-per-pixel": "tokbench.metrics.rate:BitsPerPixel",
    "bytes-per-image": "tokbench.metrics.rate:BytesPerImage",
    "lpips": "tokbench.metrics.lpips:LearnedPerceptualImagePatchSimilarity",
    "fid": "tokbench.metrics.fid:FrechetInceptionDistance",
    "fvd": "tokbench.metrics.fvd:FrechetVideoDistance",
    "kid": "tokbench.metrics.kid:KernelInceptionDistance",
    # video clips (uint8 N×T×3×H×W): image metrics per frame, rate per frame, temporal consistency
    "video-psnr": "tokbench.metrics.video:VideoPeakSignalNoiseRatio",
    "video-ssim": "tokbench.metrics.video:VideoStructuralSimilarity",
    "video-lpips": "tokbench.metrics.video:VideoLearnedPerceptualImagePatchSimilarity",
    "video-bits-per-pixel": "tokbench.metrics.video:VideoBitsPerPixel",
    "temporal-difference-error": "tokbench.metrics.video:TemporalDifferenceError",
    "video-tlp": "tokbench.metrics.video:TemporalLpips",
    "precision-recall": "tokbench.metrics.precision_recall:PrecisionRecall",
    "inception-score": "tokbench.metrics.inception_score:InceptionScore",
    "clip-cosine": "tokbench.metrics.semantic:ClipEmbeddingCosine",
    "fd-clip": "tokbench.metrics.semantic:FrechetClipDistance",
    "zero-shot": "tokbench.metrics.semantic:ZeroShotAccuracy",
    "clip-score": "tokbench.metrics.semantic:ClipScore",
    "text-fidelity": "tokbench.metrics.text_face:TextFidelity",
    "face-fidelity": "tokbench.metrics.text_face:FaceFidelity",
    # VLM benchmarks of the prune suite: answers in, official scores out
    "gqa": "tokbench.pruning.benchmark_metrics:GqaScore",
    "mmb": "tokbench.pruning.benchmark_metrics:MmbenchScore",
    "mme": "tokbench.pruning.benchmark_metrics:MmeScore",
    "pope": "tokbench.pruning.benchmark_metrics:PopeScore",
    "sqa": "tokbench.pruning.benchmark_metrics:ScienceQaScore",
    "textvqa": "tokbench.pruning.benchmark_metrics:TextVqaScore",
}.items():
    METRICS.register(_key, _target)

__all__ = ["METRICS", "MeanMetric", "Metric"]
