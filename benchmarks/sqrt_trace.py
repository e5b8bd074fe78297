"""Time tr √(Σ₁Σ₂) on 2048×2048 covariances of realistic features, and check FID agreement.

Features are synthetic but shaped like Inception pool-3 activations: non-negative (ReLU of a
correlated Gaussian whose mixing matrix has a power-law spectrum), 2048-d. Two cases: n = 512 per set
(rank-deficient covariances, the embedded-set regime) and n = 3000 (full rank). Each method is timed
on the square-root step only (median of ``--repeats`` runs) and its FID is compared with
``scipy.linalg.sqrtm`` (what clean-fid / pytorch-fid / the ADM evaluator use) and with the exact value
(the cross-Gram nuclear norm of the centred features, which never forms a covariance).

Usage: ``python benchmarks/sqrt_trace.py [--repeats 3] [--output benchmarks/results/sqrt_trace.md]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg
import torch

from tokbench.metrics.frechet import (
    FeatureStatistics,
    psd_factor,
    statistics_from_features,
    trace_sqrt_product,
)

DIM = 2048
LOAD_BEFORE = os.getloadavg()[0]


def realistic_features(n: int, seed: int, shift: float = 0.0, noise: float = 0.0) -> np.ndarray:
    """Non-negative, correlated 2048-d float32 features with a power-law covariance spectrum."""
    mixer_rng = np.random.default_rng(1)
    left, _ = np.linalg.qr(mixer_rng.standard_normal((DIM, DIM)))
    right, _ = np.linalg.qr(mixer_rng.standard_normal((DIM, DIM)))
    mixer = (left * np.arange(1, DIM + 1) ** -0.8) @ right
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)) @ mixer * 3.0 + 0.2 + shift
    if noise:
        x += noise * rng.standard_normal((n, DIM)) @ mixer
    return np.maximum(x, 0.0).astype(np.float32)


def _torch_sum_sqrt_eigenvalues(symmetric: np.ndarray) -> float:
    values = torch.linalg.eigvalsh(torch.from_numpy((symmetric + symmetric.T) / 2))
    return float(values.clamp(min=0).sqrt().sum())


def cholesky_torch_eigvalsh(a: FeatureStatistics, b: FeatureStatistics) -> float:
    fa, fb = psd_factor(a.covariance), psd_factor(b.covariance)
    cross = fb.T @ fa
    gram = cross @ cross.T if cross.shape[0] <= cross.shape[1] else cross.T @ cross
    return _torch_sum_sqrt_eigenvalues(gram)


def symmetric_eigh_torch(a: FeatureStatistics, b: FeatureStatistics) -> float:
    ta, tb = torch.from_numpy(a.covariance.copy()), torch.from_numpy(b.covariance.copy())
    values, vectors = torch.linalg.eigh(ta)
    root = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    product = root @ tb @ root
    return float(torch.linalg.eigvalsh((product + product.T) / 2).clamp(min=0).sqrt().sum())


def eigvals_product_numpy(a: FeatureStatistics, b: FeatureStatistics) -> float:
    """torch-fidelity's form: Σ √eig(Σ₁Σ₂) of the non-symmetric product."""
    product = a.covariance @ b.covariance
    return float(np.sqrt(np.linalg.eigvals(product).astype(np.complex128)).real.sum())


def _method(name: str) -> Callable[[FeatureStatistics, FeatureStatistics], float]:
    return lambda a, b: trace_sqrt_product(a, b, name)


METHODS: dict[str, Callable[[FeatureStatistics, FeatureStatistics], float]] = {
    "tokbench `cholesky` (pivoted Cholesky + numpy eigvalsh) — default": _method("cholesky"),
    "pivoted Cholesky + torch.linalg.eigvalsh": cholesky_torch_eigvalsh,
    "tokbench `symmetric-eigh` (numpy eigh, √Σ₁Σ₂√Σ₁)": _method("symmetric-eigh"),
    "symmetric √Σ₁Σ₂√Σ₁ with torch.linalg.eigh": symmetric_eigh_torch,
    "eigenvalues of Σ₁Σ₂ (numpy eigvals, torch-fidelity)": eigvals_product_numpy,
    "`scipy.linalg.sqrtm(Σ₁Σ₂)` (clean-fid, ADM)": _method("sqrtm"),
}
SQRTM = "`scipy.linalg.sqrtm(Σ₁Σ₂)` (clean-fid, ADM)"


def fid_from_trace(a: FeatureStatistics, b: FeatureStatistics, trace_sqrt: float) -> float:
    difference = a.mean - b.mean
    return float(difference @ difference + np.trace(a.covariance) + np.trace(b.covariance) - 2 * trace_sqrt)


def time_median(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    times, value = [], 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def run_case(n: int, repeats: int) -> list[dict[str, float | str]]:
    real = realistic_features(n, seed=10)
    fake = realistic_features(n, seed=11, shift=0.05, noise=0.5)
    a = statistics_from_features(real, "real", keep_features=True)
    b = statistics_from_features(fake, "fake", keep_features=True)
    exact = fid_from_trace(a, b, trace_sqrt_product(a, b, "gram"))
    rows: list[dict[str, float | str]] = []
    for name, method in METHODS.items():
        seconds, trace = time_median(lambda method=method: method(a, b), repeats)
        rows.append({"method": name, "seconds": seconds, "fid": fid_from_trace(a, b, trace)})
        print(f"n={n} {name}: {seconds:.2f} s, FID {rows[-1]['fid']:.10f}", flush=True)
    reference = next(row for row in rows if row["method"] == SQRTM)
    for row in rows:
        row["speedup"] = float(reference["seconds"]) / float(row["seconds"])
        row["rel_vs_sqrtm"] = abs(float(row["fid"]) - float(reference["fid"])) / abs(float(reference["fid"]))
        row["rel_vs_exact"] = abs(float(row["fid"]) - exact) / abs(exact)
    rows.append({"method": "exact (cross-Gram nuclear norm of the features)", "fid": exact})
    return rows


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown"
    return f"{model}, {os.cpu_count()} logical CPUs"


def render(results: dict[int, list[dict[str, float | str]]], repeats: int, command: str) -> str:
    lines = [
        "# tr √(Σ₁Σ₂) on 2048×2048 covariances",
        "",
        f"- machine: {machine()} (`lscpu | grep 'Model name'`); shared with other jobs: times vary",
        f"- software: Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
        f"- command: `{command}`",
        f"- timing: median of {repeats} runs of the square-root step alone (statistics precomputed); "
        f"1-minute load average before the run: {LOAD_BEFORE:.2f}",
        "- features: synthetic, Inception-like (non-negative ReLU of a correlated Gaussian, power-law "
        "spectrum), "
        "2048-d; fake = shifted + noisier copy of the same distribution",
        "- relative differences are in FID; `exact` = ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2‖A Bᵀ‖_* with A, B the "
        "centred features / √(n−1)",
        "",
    ]
    for n, rows in results.items():
        exact = rows[-1]["fid"]
        lines += [
            f"## n = {n} images per set ({'rank-deficient' if n <= DIM else 'full-rank'} covariances), "
            f"exact FID {float(exact):.10f}",
            "",
            "| method | seconds | speed-up vs sqrtm | FID | rel. diff vs sqrtm | rel. diff vs exact |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows[:-1]:
            lines.append(
                f"| {row['method']} | {float(row['seconds']):.2f} | {float(row['speedup']):.1f}× | "
                f"{float(row['fid']):.10f} | {float(row['rel_vs_sqrtm']):.1e} | "
                f"{float(row['rel_vs_exact']):.1e} |"
            )
        lines.append("")
    lines += ["## Summary", ""]
    for n, rows in results.items():
        default, sqrtm = rows[0], next(row for row in rows if row["method"] == SQRTM)
        lines.append(
            f"- n = {n}: default `cholesky` {float(default['speedup']):.1f}× faster than sqrtm; FID "
            f"differs from sqrtm by {float(default['rel_vs_sqrtm']):.1e} and from the exact value by "
            f"{float(default['rel_vs_exact']):.1e} (sqrtm itself: {float(sqrtm['rel_vs_exact']):.1e} "
            "from exact)."
        )
    lines += [
        "- With n < d every method that takes square roots of a d×d spectrum (sqrtm, eigenvalues of Σ₁Σ₂, "
        "√Σ₁Σ₂√Σ₁) sums square roots of round-off in the null space and lands below the exact FID; the "
        "rank-revealing Cholesky factors drop that null space, so agreement with sqrtm there is limited by "
        "sqrtm's own error, not by ours.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 3000])
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "sqrt_trace.md")
    args = parser.parse_args()
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    results = {n: run_case(n, args.repeats) for n in args.sizes}
    text = render(results, args.repeats, command)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
