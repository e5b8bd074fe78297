"""A GPU check for tokbench (issue 19, item 3): stage throughput, peak memory, TF32/autocast, determinism.

To be run by a user with a CUDA device::

    python benchmarks/gpu_check.py                      # cuda:0, 256 images, batch 32
    python benchmarks/gpu_check.py --images 1024 --batch-size 64 --device cuda:1
    python benchmarks/gpu_check.py --model prefix-dct:num_tokens=256   # wrap a registered tokenizer
    python benchmarks/gpu_check.py --cpu --images 16    # the same checks on the CPU, labelled as such

Without CUDA (and without ``--cpu``) it says so and exits 0. What it measures, on 256×256 PNGs made by
``benchmarks/make_images.py`` (crops of tokbench's embedded photos, written once under ``--root``):

1. **Stages**, each on its own, the device synchronised around it: *decode* (PNG files → uint8
   tensors on the host, tokbench's folder reader), *model* (the probe tokenizer: encode + decode on
   the device), *judges* (TF-Inception pool3 at TF1-bilinear 299 px, LPIPS-AlexNet), *metrics* (PSNR,
   SSIM, MS-SSIM per image, FID state update): images/s and peak device memory of each.
2. **End to end**: ``tokbench.evaluate(probe, suite="recon", device=...)`` twice, with TF32 and
   autocast switched *on* by the caller beforehand; the probe model reads
   ``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32`` and
   ``torch.is_autocast_enabled`` inside every call (the measured region), which must all be False.
   The two runs must give identical metrics (determinism); images/s and peak device memory are
   reported for each.

The report is printed (Markdown) and written as JSON to ``--output`` (default under ``--root``).
The exit status is 1 if TF32/autocast were seen on or the two runs differ, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tokbench.adapters.base import Encoded, Tokenizer

HERE = Path(__file__).resolve().parent
PROBE_WIDTH = 64


class ProbeTokenizer(Tokenizer):
    """A deterministic conv autoencoder (seeded random weights; or a wrapped registered tokenizer)
    that records the TF32 and autocast flags every time tokbench calls it."""

    def __init__(self, inner: Tokenizer | None = None) -> None:
        self.inner = inner
        generator = torch.Generator().manual_seed(0)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, PROBE_WIDTH, 4, stride=4), nn.GELU(), nn.Conv2d(PROBE_WIDTH, 16, 3, padding=1)
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(16, PROBE_WIDTH, 3, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(PROBE_WIDTH, 3, 4, stride=4),
        )
        with torch.no_grad():
            for parameter in [*self.encoder.parameters(), *self.decoder.parameters()]:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
        self.flags: list[dict[str, Any]] = []

    def to(self, device: torch.device) -> ProbeTokenizer:
        """Move the probe network (or the wrapped tokenizer) to ``device``."""
        self.encoder.to(device)
        self.decoder.to(device)
        if self.inner is not None:
            self.inner.to(device)
        return self

    def _probe(self, images: torch.Tensor) -> None:
        device_type = images.device.type
        self.flags.append(
            {
                "device": str(images.device),
                "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                "float32_matmul_precision": torch.get_float32_matmul_precision(),
                "autocast": torch.is_autocast_enabled(device_type),
                "dtype": str(images.dtype),
            }
        )

    def encode(self, images: torch.Tensor) -> Encoded:
        """Encode (probing the flags first)."""
        self._probe(images)
        if self.inner is not None:
            return self.inner.encode(images)
        latents = self.encoder(images * 2 - 1)
        bits = torch.full((images.shape[0],), 32.0 * latents[0].numel(), device=images.device)
        return Encoded(payload=latents, bits=bits)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        """Decode (probing the flags first)."""
        payload = encoded.payload
        self._probe(payload if isinstance(payload, torch.Tensor) else torch.zeros(1))
        if self.inner is not None:
            return self.inner.decode(encoded)
        return (torch.tanh(self.decoder(payload)) + 1) / 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _timed(device: torch.device, work: Any) -> tuple[float, float | None, Any]:
    """Seconds (device synchronised), peak device memory (MB) and the result of ``work()``."""
    _sync(device)
    _reset_peak(device)
    started = time.perf_counter()
    result = work()
    _sync(device)
    return time.perf_counter() - started, _peak_mb(device), result


def stages(folder: Path, device: torch.device, batch: int, probe: ProbeTokenizer) -> dict[str, dict]:
    """Each stage alone over all images in batches: images/s and peak device memory."""
    from tokbench.data.folder import FolderDataset
    from tokbench.judges.inception import InceptionV3TF
    from tokbench.judges.lpips import LpipsAlex
    from tokbench.metrics.fid import FrechetInceptionDistance
    from tokbench.metrics.psnr import psnr_per_image
    from tokbench.metrics.ssim import ms_ssim_per_image, ssim_per_image
    from tokbench.tensors import quantize_uint8

    items = FolderDataset(folder).items()
    count = len(items)

    def decode() -> list[torch.Tensor]:
        batches = []
        for start in range(0, count, batch):
            arrays = [np.asarray(item.load().convert("RGB")) for item in items[start : start + batch]]
            batches.append(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous())
        return batches

    results: dict[str, dict] = {}
    seconds, peak, host = _timed(torch.device("cpu"), decode)
    results["decode (host)"] = {"seconds": seconds, "peak_mb": None}
    originals = [images.to(device) for images in host]

    def model() -> list[torch.Tensor]:
        with torch.inference_mode():
            return [quantize_uint8(probe.decode(probe.encode(x.float() / 255))) for x in originals]

    seconds, peak, reconstructions = _timed(device, model)
    results["model (probe encode+decode)"] = {"seconds": seconds, "peak_mb": peak}
    inception = InceptionV3TF("tf1-bilinear", device=device)
    lpips = LpipsAlex().to(device)

    def judge_inception() -> list[torch.Tensor]:
        with torch.inference_mode():
            return [inception(x)["pool3"] for x in originals + reconstructions]

    seconds, peak, features = _timed(device, judge_inception)
    results["judge: inception (orig + recon)"] = {"seconds": seconds, "peak_mb": peak, "images": 2 * count}

    def judge_lpips() -> None:
        with torch.inference_mode():
            for x, y in zip(originals, reconstructions, strict=True):
                lpips.distance(x, y)

    seconds, peak, _ = _timed(device, judge_lpips)
    results["judge: lpips (pairs)"] = {"seconds": seconds, "peak_mb": peak}

    def metrics() -> None:
        fid = FrechetInceptionDistance()
        for x, y in zip(originals, reconstructions, strict=True):
            psnr_per_image(x, y)
            ssim_per_image(x, y)
            ms_ssim_per_image(x, y)
        half = len(features) // 2
        for real, fake in zip(features[:half], features[half:], strict=True):
            fid.update_real(real)
            fid.update_fake(fake)
        fid.compute()

    seconds, peak, _ = _timed(device, metrics)
    results["metrics (psnr, ssim, ms-ssim, fid)"] = {"seconds": seconds, "peak_mb": peak}
    for entry in results.values():
        entry["images_per_second"] = entry.get("images", count) / entry["seconds"]
    return results


def end_to_end(folder: Path, device: torch.device, batch: int, probe: ProbeTokenizer) -> list[dict]:
    """Two recon runs through ``tokbench.evaluate`` with TF32 and autocast turned on by the caller."""
    import inspect

    import tokbench

    extra = {}
    if "num_workers" in inspect.signature(tokbench.evaluate).parameters:
        extra["num_workers"] = max(1, min(8, (os.cpu_count() or 2) - 1))
    runs = []
    for _ in range(2):
        probe.flags.clear()
        torch.backends.cuda.matmul.allow_tf32 = True  # what a user's training script may have left on
        torch.backends.cudnn.allow_tf32 = True
        with torch.autocast(device.type, enabled=True, dtype=torch.bfloat16):
            probe._probe(torch.zeros(1, device=device))  # control: the probe sees them on out here
            control = probe.flags.pop()
            seconds, peak, result = _timed(
                device,
                lambda: tokbench.evaluate(
                    probe,
                    suite="recon",
                    data=f"folder:{folder}",
                    device=str(device),
                    batch_size=batch,
                    cache_features=False,
                    **extra,
                ),
            )
        seen = {
            key: sorted({str(flags[key]) for flags in probe.flags})
            for key in ("cuda.matmul.allow_tf32", "cudnn.allow_tf32", "autocast", "float32_matmul_precision")
        }
        runs.append(
            {
                "seconds": seconds,
                "peak_mb": peak,
                "metrics": dict(result.metrics),
                "calls_probed": len(probe.flags),
                "flags_seen_inside": seen,
                "flags_seen_outside": control,
                "after_run": {
                    "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                    "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                },
                **extra,
            }
        )
    return runs


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "CPU"


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def render(data: dict[str, Any]) -> str:
    lines = [
        f"# tokbench GPU check — {data['label']}",
        "",
        f"- device: {data['device_name']}; torch {data['torch']}; CUDA {data['cuda']}; cuDNN {data['cudnn']}",
        f"- host: {data['host']}; 1-minute load average {data['load_before']:.2f} before, "
        f"{data['load_after']:.2f} after",
        f"- {data['images']} images 256×256, batch {data['batch']}, model: {data['model']}",
        "",
        "| stage | seconds | images/s | peak device memory (MB) |",
        "|---|---|---|---|",
    ]
    for name, entry in data["stages"].items():
        lines.append(
            f"| {name} | {entry['seconds']:.2f} | {entry['images_per_second']:.3g} | "
            f"{_fmt(entry['peak_mb'], '.0f')} |"
        )
    lines += ["", "| end-to-end recon run | seconds | images/s | peak device memory (MB) | probed calls |"]
    lines.append("|---|---|---|---|---|")
    for index, run in enumerate(data["runs"], 1):
        lines.append(
            f"| {index} | {run['seconds']:.2f} | {data['images'] / run['seconds']:.3g} | "
            f"{_fmt(run['peak_mb'], '.0f')} | {run['calls_probed']} |"
        )
    first = data["runs"][0]
    lines += [
        "",
        "Inside the measured region (set on by the caller, read by the probe model in every call): "
        + "; ".join(f"{key} = {', '.join(values)}" for key, values in first["flags_seen_inside"].items()),
        "Control, read by the same probe just outside `tokbench.evaluate`: "
        + "; ".join(f"{key} = {first['flags_seen_outside'][key]}" for key in first["flags_seen_inside"]),
        f"- TF32 and autocast off during measurement: **{'PASS' if data['flags_ok'] else 'FAIL'}**",
        "- determinism (two runs, identical metrics; timings excluded): "
        f"**{'PASS' if data['deterministic'] else 'FAIL'}**"
        + ("" if data["deterministic"] else f" — differing: {', '.join(data['differing'])}"),
        "",
        "Metrics (run 1): "
        + ", ".join(f"{k} {v:.6g}" for k, v in first["metrics"].items() if "ci95" not in k),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--cpu", action="store_true", help="no GPU: run the checks on the CPU (labelled)")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", help="a registered tokenizer spec to wrap (default: the probe network)")
    parser.add_argument("--root", type=Path, default=Path("/tmp/tokbench-bench"))
    parser.add_argument("--output", type=Path, help="JSON report (default: ROOT/gpu_check-<device>.json)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    if args.cpu:
        device, label = torch.device("cpu"), "CPU (no CUDA: not a GPU measurement)"
    elif not torch.cuda.is_available():
        print(
            f"No CUDA device here (torch {torch.__version__}, cuda available: False): this check is for "
            "machines with a GPU. Nothing measured; use --cpu to run the same checks on the CPU."
        )
        return 0
    else:
        device = torch.device(args.device)
        label = f"GPU {torch.cuda.get_device_name(device)}"
    sys.path.insert(0, str(HERE))
    from recon_pipeline import images_folder

    folder = images_folder(args.root.resolve(), args.images, quick=False)
    inner = None
    if args.model:
        from tokbench.adapters.registry import build_model

        inner = build_model(args.model).adapter
    probe = ProbeTokenizer(inner).to(device)
    load_before = os.getloadavg()[0]
    stage_results = stages(folder, device, args.batch_size, probe)
    runs = end_to_end(folder, device, args.batch_size, probe)
    flags_ok = all(
        values == ["False"]
        for run in runs
        for key, values in run["flags_seen_inside"].items()
        if key != "float32_matmul_precision"
    ) and all(run["calls_probed"] > 0 and run["flags_seen_outside"]["autocast"] for run in runs)
    differing = [  # timings (encode/decode seconds per image) are not results
        key
        for key, value in runs[0]["metrics"].items()
        if "seconds" not in key and value != runs[1]["metrics"].get(key)
    ]
    data = {
        "label": label,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "host": f"{platform.node()}, {os.cpu_count()} CPUs, peak RSS {_peak_rss_mb():.0f} MB",
        "images": args.images,
        "batch": args.batch_size,
        "model": args.model or f"probe conv autoencoder (width {PROBE_WIDTH}, seeded random weights)",
        "stages": stage_results,
        "runs": runs,
        "flags_ok": flags_ok,
        "deterministic": not differing,
        "differing": differing,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    output = args.output or args.root / f"gpu_check-{device.type}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(data, indent=1, default=str) + "\n")
    print(render(data))
    print(f"JSON report: {output}")
    return 0 if flags_ok and not differing else 1


if __name__ == "__main__":
    sys.exit(main())
