"""Peak RSS of ``recon`` and ``gen`` at 1,000 and 10,000 images (issue 19: flat within 10%).

Each run is a fresh process (``recon_pipeline.run_job``: ``wait4``'s ``ru_maxrss``, which covers the
process and, after they exit, its DataLoader workers; each worker's own peak is not added):

- **recon**: ``jpeg:quality=50`` on ``folder:`` N 256×256 PNGs (``make_images``, the images of
  ``recon_pipeline.py``), the full ``recon`` suite (PSNR, SSIM, MS-SSIM, LPIPS, rFID, KID), batch 32;
- **gen**: a fake generator (each sample a seeded smooth colour field, 256×256; no network) and the
  ``gen`` suite with the classifier-free judge outputs available offline: pool3 only, so gFID and
  precision/recall (k = 3) against a reference made by ``tokbench stats`` from the first 1,000
  originals (the Inception Score needs the classifier weights, which do not ship in a PyPI package).

Every run starts cold: an empty feature cache (the converted weights shared) and, for gen, an empty
work folder (no shards to resume). Peak RSS is independent of other jobs' CPU load, so this may run
on a shared machine; wall times are given for scale only. ``KID`` keeps every feature (2 × 2,048
float32 per image, as torch-fidelity does) and precision/recall every sample's feature: their growth
is expected and reported.

Usage: ``python benchmarks/memory_scaling.py [--sizes 1000 10000] [--tracks recon gen]``
→ ``benchmarks/results/memory_scaling.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from recon_pipeline import images_folder, machine, run_job  # noqa: E402

GEN_SUITE = """name: gen-memory
version: "1"
kind: generator
track: gen
settings: {{num_samples: 1000, num_classes: 10, class_order: round-robin, shard_size: 1000,
  reference: {reference}}}
judges:
  inception: {{name: inception-v3-tf, options: {{resize: tf1-bilinear, outputs: [pool3]}}}}
metrics:
  - {{name: fid, judge: inception, key: gfid}}
  - {{name: precision-recall, judge: inception, options: {{k: 3}}}}
primary: gfid
"""


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    import tokbench

    if spec["kind"] == "recon":
        result = tokbench.evaluate(
            "jpeg:quality=50",
            suite="recon",
            data=f"folder:{spec['originals']}",
            batch_size=32,
            progress=False,
        )
    else:
        result = tokbench.evaluate(
            _fake_generator(),
            suite=spec["suite"],
            reference=spec["reference"],
            num_samples=spec["images"],
            work_dir=spec["work_dir"],
            batch_size=32,
            progress=False,
        )
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}
    return {"metrics": metrics, "done": time.time()}


def _fake_generator():
    """A generator without a network: sample i is a smooth colour field drawn from seeds[i]."""
    import torch

    from tokbench.adapters.base import Generator

    class SmoothFields(Generator):
        @property
        def num_classes(self) -> int:
            return 10

        def sample(self, conditions: list, seeds: list[int]) -> torch.Tensor:
            fields = []
            for seed in seeds:
                coarse = torch.rand((1, 3, 8, 8), generator=torch.Generator().manual_seed(seed))
                fields.append(torch.nn.functional.interpolate(coarse, size=(256, 256), mode="bilinear")[0])
            return torch.stack(fields)

    return SmoothFields()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--tracks", nargs="+", default=["recon", "gen"], choices=["recon", "gen"])
    parser.add_argument("--root", type=Path, default=Path("/tmp/tokbench-bench"))
    parser.add_argument("--output", type=Path, default=HERE / "results" / "memory_scaling.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(_worker(json.loads(args.worker))), flush=True)
        return
    work = args.root / "memory-scaling"
    work.mkdir(parents=True, exist_ok=True)
    env = {"TOKBENCH_STORE": str(work / "store")}
    runs = []
    for track in args.tracks:
        for size in args.sizes:
            spec = {"kind": track, "label": f"{track}-{size}", "images": size}
            if track == "recon":
                spec["originals"] = str(images_folder(args.root, size, quick=False))
            else:
                spec.update(_gen_inputs(args.root, work, size, min(1000, *args.sizes)))
            print(f"[{time.strftime('%H:%M:%S')}] {spec['label']}", flush=True)
            cache = _fresh_cache(work / "cache" / spec["label"])
            shutil.rmtree(spec.get("work_dir", work / "none"), ignore_errors=True)  # no resumed shards
            job_env = {**env, "TOKBENCH_CACHE": str(cache)}
            runs.append({**run_job(spec, work, job_env, script=Path(__file__)), "images": size})
            _write(args, runs)
    print(args.output.read_text())


def _fresh_cache(path: Path) -> Path:
    """An empty tokbench cache (no judge features) sharing the converted weights of the user's cache."""
    from tokbench.judges.weights import cache_dir

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    shared = cache_dir() / "weights"
    shared.mkdir(parents=True, exist_ok=True)  # the first run converts into it on a new machine
    (path / "weights").symlink_to(shared, target_is_directory=True)
    return path


def _gen_inputs(root: Path, work: Path, size: int, count: int) -> dict[str, str]:
    """The suite, a reference of ``count`` originals (made once) and a work folder for ``size`` samples."""
    reference = work / f"reference-{count}.npz"
    if not reference.is_file():
        originals = images_folder(root, count, quick=False)
        command = [str(Path(sys.executable).parent / "tokbench"), "stats", str(originals)]
        command += ["--out", str(reference), "--subsample", str(count)]
        subprocess.run(command, check=True, env={**os.environ, "TOKBENCH_OFFLINE": "1"})
    suite = work / "gen-memory.yaml"
    suite.write_text(GEN_SUITE.format(reference=reference.name))
    return {"suite": str(suite), "reference": str(reference), "work_dir": str(work / f"gen-{size}")}


def _write(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    info = machine()
    lines = [
        "# Peak RSS from 1,000 to 10,000 images (issue 19)",
        "",
        f"- machine: {info.get('cpu', '?')}, {os.cpu_count()} logical CPUs, shared with other jobs "
        "(load average beside each run; peak RSS does not depend on it)",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: "
        f"`python benchmarks/memory_scaling.py --sizes {' '.join(map(str, args.sizes))} "
        f"--tracks {' '.join(args.tracks)}`",
        "- see the module docstring for what each run does",
        "",
        "| run | images | seconds | peak RSS (MB) | vs smallest | load before → after |",
        "|---|---|---|---|---|---|",
    ]
    smallest: dict[str, float] = {}
    for run in runs:
        track = run["label"].split("-")[0]
        base = smallest.setdefault(track, run["max_rss_mb"])
        lines.append(
            f"| {run['label']} | {run['images']:,} | {run['seconds']:.0f} | {run['max_rss_mb']:.0f} | "
            f"{run['max_rss_mb'] / base - 1:+.1%} | {run['load_before']:.2f} → {run['load_after']:.2f} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    args.output.with_suffix(".json").write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
