"""Latency per image of CLIP ViT-B-32 with patch tokens reduced after block 4 (random weights, CPU).

Run: ``python benchmarks/semantic_vit_latency.py``; prints the median seconds per image of 5 interleaved
repetitions on a batch of 8 random 224×224 inputs, per pruner and tokens kept, and open_clip's own
fused ``visual(x)`` for comparison. Results: ``benchmarks/results/semantic.md``.
"""

from __future__ import annotations

import json
import statistics
import time

import torch

from tokbench.adapters.registry import build_model
from tokbench.judges.clip import ClipJudge
from tokbench.semantic.vit_reduction import encode_image_reduced

BATCH, REPEATS, LAYER = 8, 5, 4


def main() -> None:
    """Time every case and print a JSON table."""
    visual = ClipJudge("ViT-B-32", "laion2b_s34b_b79k", weights="random").model.visual
    pixels = torch.randn(BATCH, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    cases = [("full", None, 49)] + [
        (name, build_model(f"{name}:budget={keep}").adapter, keep)
        for name in ("random", "cls-attn", "tome")
        for keep in (37, 25, 13, 7)
    ]
    times: dict[str, list[float]] = {f"{name}:{keep}": [] for name, _, keep in cases}
    with torch.inference_mode():
        encode_image_reduced(visual, pixels)  # warm-up
        for _ in range(REPEATS):
            for name, pruner, keep in cases:
                generator = torch.Generator().manual_seed(0)
                started = time.perf_counter()
                encode_image_reduced(visual, pixels, pruner, keep if pruner else None, LAYER, generator)
                times[f"{name}:{keep}"].append((time.perf_counter() - started) / BATCH)
        started = time.perf_counter()
        visual(pixels)
        fused = (time.perf_counter() - started) / BATCH
    result = {case: statistics.median(values) for case, values in times.items()}
    result["open_clip visual(x) fused"] = fused
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
