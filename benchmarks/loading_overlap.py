"""Overlap of decoding with the model (issue 19): wall time of a track's loop with DataLoader workers
÷ the sequential loop's, with a model that takes as long per batch as decoding the batch does.

The loop is the one every image track runs (``RunContext.load`` → ``usable`` → ``to_device`` →
``call_model``) over ImageNet-like JPEGs (500×375, quality 90, made once from ``make_images.py``'s
originals), decoded and center-cropped to 256² by ``imagenet-center-crop`` (``LoadPreprocessed``).
The "model" stands for a GPU: it holds the batch for as long as decoding that batch took in process
(measured first, median of the calibration passes) and leaves the host's cores free, as a device
does. Target: ``num_workers >= 1`` at most 0.6× the ``num_workers=0`` wall time (perfect overlap:
0.5×). Runs are interleaved over rounds; the 1-minute load average is written beside every number.

``--main-threads`` sets the main process's torch threads (``torch.set_num_threads``) per
configuration: torch's default is one per core, so the main process's parallel operations (stacking
a batch, copying it) share a core with a decoding worker and wait for their descheduled thread;
with ``cores - workers`` threads they do not.

Usage: ``python benchmarks/loading_overlap.py [--images 1024] [--rounds 3] [--main-threads 2 1]``
→ ``benchmarks/results/loading_overlap.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from recon_pipeline import images_folder, machine  # noqa: E402

BATCH = 32
JPEG_SIZE = (500, 375)  # ImageNet-val's most common size


def jpeg_folder(root: Path, count: int) -> Path:
    """``count`` 500×375 quality-90 JPEGs upscaled from the benchmark's 256² PNG originals (made once)."""
    from PIL import Image

    target = root / "loading-overlap" / f"jpeg-{count}"
    if target.is_dir() and len(list(target.glob("*.jpg"))) == count:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for png in sorted(images_folder(root, count, quick=False).glob("*.png")):
        with Image.open(png) as image:
            image.convert("RGB").resize(JPEG_SIZE, Image.BICUBIC).save(target / f"{png.stem}.jpg", quality=90)
    return target


def run_loop(folder: Path, workers: int, model_seconds: float) -> tuple[float, list[float]]:
    """Wall seconds of the loop over ``folder`` and the seconds each batch's loading took in it."""
    import torch

    from tokbench.data.folder import FolderDataset
    from tokbench.data.preprocess import build_preprocess
    from tokbench.distributed import Distributed
    from tokbench.tracks.base import RunContext, RunOptions
    from tokbench.tracks.images import LoadPreprocessed

    items = FolderDataset(folder).items()
    prepare = LoadPreprocessed(build_preprocess("imagenet-center-crop", resolution=256))
    run = RunContext(
        RunOptions(batch_size=BATCH, num_workers=workers, progress=False), torch.device("cpu"), Distributed()
    )
    waits = []
    started = time.perf_counter()
    batches = iter(run.load(list(enumerate(items)), prepare))
    while True:
        asked = time.perf_counter()
        batch = next(batches, None)
        waits.append(time.perf_counter() - asked)
        if batch is None:
            break
        usable = run.usable(batch)
        images = run.to_device([entry.value for entry in usable])
        ids = [entry.item.id for entry in usable]
        run.call_model("encode", ids, time.sleep, model_seconds * len(ids) / BATCH)
        del images
    if run.shard.skipped:
        raise RuntimeError(f"{len(run.shard.skipped)} images did not load: {run.shard.skipped[:3]}")
    return time.perf_counter() - started, waits


def torch_threads(count: int | None = None) -> int:
    """The main process's torch threads, after setting them to ``count`` if given."""
    import torch

    if count is not None:
        torch.set_num_threads(count)
    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--main-threads", type=int, nargs="+", default=[torch_threads()])
    parser.add_argument("--root", type=Path, default=Path("/tmp/tokbench-bench"))
    parser.add_argument("--output", type=Path, default=HERE / "results" / "loading_overlap.md")
    args = parser.parse_args()
    info = machine()  # before the runs change the main process's threads
    folder = jpeg_folder(args.root, args.images)
    calibration = [run_loop(folder, 0, 0.0) for _ in range(2)]
    batch_seconds = statistics.median(s for _, waits in calibration for s in waits[:-1])
    runs: list[dict[str, Any]] = []
    order = [(threads, workers) for threads in args.main_threads for workers in [0, *args.workers]]
    for round_index in range(args.rounds):
        for threads, workers in order if round_index % 2 == 0 else order[::-1]:  # interleaved
            torch_threads(threads)
            load_before = os.getloadavg()[0]
            seconds, _ = run_loop(folder, workers, batch_seconds)
            runs.append(
                {
                    "round": round_index + 1,
                    "main_threads": threads,
                    "workers": workers,
                    "seconds": seconds,
                    "load_before": load_before,
                    "load_after": os.getloadavg()[0],
                }
            )
            print(f"round {round_index + 1} threads {threads} workers {workers}: {seconds:.2f} s", flush=True)
    _write(args, info, batch_seconds, runs)


def _write(
    args: argparse.Namespace, info: dict[str, str], batch_seconds: float, runs: list[dict[str, Any]]
) -> None:

    def median(threads: int, workers: int) -> float:
        return statistics.median(
            r["seconds"] for r in runs if r["main_threads"] == threads and r["workers"] == workers
        )

    threads_flag = " ".join(map(str, args.main_threads))
    lines = [
        "# Loading overlapped with the model (issue 19)",
        "",
        f"- machine: {info['cpu']}, {info['cores']} logical CPUs, torch {info['torch']}; {info['date']}",
        f"- command: `python benchmarks/loading_overlap.py --images {args.images} --rounds {args.rounds} "
        f"--main-threads {threads_flag}`",
        f"- data: {args.images} JPEGs {JPEG_SIZE[0]}×{JPEG_SIZE[1]} (quality 90), "
        f"`imagenet-center-crop` 256, batch {BATCH}; decoding a batch in process: "
        f"{batch_seconds * 1000:.0f} ms (median), so the model holds each batch that long without using "
        "the host's cores (a GPU)",
        "- ratio: seconds ÷ the median `num_workers=0` run with the same main-process threads",
        "",
        "| round | main threads | num_workers | seconds | ratio | load before → after |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run['round']} | {run['main_threads']} | {run['workers']} | {run['seconds']:.2f} | "
            f"{run['seconds'] / median(run['main_threads'], 0):.2f} | "
            f"{run['load_before']:.2f} → {run['load_after']:.2f} |"
        )
    lines += ["", "Medians (target: ≤ 0.6× the sequential loop; perfect overlap 0.5×):", ""]
    for threads in args.main_threads:
        for workers in [0, *args.workers]:
            seconds = median(threads, workers)
            lines.append(
                f"- main threads {threads}, num_workers={workers}: {seconds:.2f} s = "
                f"**{seconds / median(threads, 0):.2f}×**"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    summary = {"batch_seconds": batch_seconds, "images": args.images, "runs": runs}
    args.output.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
