"""Rate–quality figures: Pareto front, one curve per sweep, codecs on the bytes axis only."""

from __future__ import annotations

import math

import pytest

from tokbench.errors import ConfigError
from tokbench.report.rate_quality import (
    has_token_sweeps,
    pareto_front,
    rate_quality_curves,
    rate_quality_figure,
    record_bytes,
)


def record(name: str, spec: str, **metrics: float) -> dict:
    return {"model": {"name": name, "spec": spec, "arguments": {}}, "metrics": metrics}


def test_pareto_front_higher_is_better() -> None:
    points = [(8, 20.0), (16, 19.0), (16, 22.0), (32, 22.0), (64, 25.0), (4, 10.0), (64, 25.0)]
    assert pareto_front(points, higher_is_better=True) == [5, 0, 2, 4]


def test_pareto_front_lower_is_better_and_edge_cases() -> None:
    assert pareto_front([(1, 0.5), (2, 0.6), (3, 0.2), (3, 0.1)], higher_is_better=False) == [0, 3]
    assert pareto_front([], higher_is_better=True) == []
    assert pareto_front([(5, 1.0)], higher_is_better=False) == [0]


def test_pareto_front_brute_force_agreement() -> None:
    import random

    rng = random.Random(0)
    points = [(rng.randint(1, 20), rng.randint(0, 20)) for _ in range(200)]
    front = set(pareto_front(points, higher_is_better=True))
    for i, (x, y) in enumerate(points):
        dominated = any(
            (a <= x and b >= y and (a, b) != (x, y)) or ((a, b) == (x, y) and j < i)
            for j, (a, b) in enumerate(points)
        )
        assert (i in front) == (not dominated), (i, x, y)


def sweep_records() -> list[dict]:
    records = [
        record(
            "prefix-dct",
            f"prefix-dct:levels=16,num_tokens={k},resolution=256",
            num_tokens=k,
            bytes_per_image=k * 1.5,
            psnr=15 + math.log2(k),
            lpips=0.8 - 0.05 * math.log2(k),
        )
        for k in (8, 16, 32, 64, 128)
    ]
    records += [
        record(
            "prefix-dct",
            f"prefix-dct:levels=8,num_tokens={k},resolution=256",
            num_tokens=k,
            bytes_per_image=k * 9 / 8,
            psnr=14 + math.log2(k),
        )
        for k in (8, 64)
    ]
    records += [
        record(
            "jpeg", f"jpeg:quality={q},subsampling=4:2:0", bytes_per_image=2000.0 + 30 * q, psnr=20 + q / 10
        )
        for q in (10, 50, 90)
    ]
    return records


def test_one_curve_per_sweep_named_by_the_differing_arguments() -> None:
    curves, excluded = rate_quality_curves(sweep_records(), "num_tokens", "psnr")
    assert [(c.name, len(c.points)) for c in curves] == [
        ("prefix-dct (levels=16)", 5),
        ("prefix-dct (levels=8)", 2),
    ]
    assert [p.x for p in curves[0].points] == [8, 16, 32, 64, 128]
    assert excluded == {"without num_tokens": 3}  # the codecs have no tokens
    curves, excluded = rate_quality_curves(sweep_records(), "bytes_per_image", "psnr")
    assert {c.name: len(c.points) for c in curves} == {
        "jpeg": 3,
        "prefix-dct (levels=16)": 5,
        "prefix-dct (levels=8)": 2,
    }
    assert not excluded


def test_bytes_are_derived_from_a_codebook_size_only_when_not_measured() -> None:
    reported = record("TiTok-L-32", "TiTok-L-32", num_tokens=32, rfid=2.21)
    reported["model"]["arguments"] = {"codebook_size": 4096}
    assert record_bytes(reported) == (48.0, True)
    reported["model"]["arguments"] = {"codebook_size": "continuous c16"}
    assert record_bytes(reported) == (None, False)
    assert record_bytes(record("x", "x", bytes_per_image=10.0, num_tokens=4)) == (10.0, False)


def test_figure_has_tokens_and_bytes_columns_and_a_front() -> None:
    figure = rate_quality_figure(sweep_records())
    traces = [(t.name, t.xaxis, len(t.x)) for t in figure.data]
    names = {name for name, _, _ in traces}
    assert {"jpeg", "prefix-dct (levels=16)", "prefix-dct (levels=8)", "Pareto front"} <= names
    psnr_tokens = [t for t in figure.data if t.xaxis == "x" and t.name == "prefix-dct (levels=16)"]
    assert len(psnr_tokens) == 1 and list(psnr_tokens[0].x) == [8, 16, 32, 64, 128]
    assert not [t for t in figure.data if t.xaxis == "x" and t.name == "jpeg"]
    front = next(t for t in figure.data if t.xaxis == "x2" and t.name == "Pareto front")
    assert list(front.x) == [9.0, 12.0, 24.0, 48.0, 96.0, 192.0, 3500.0, 4700.0]
    assert figure.layout.xaxis.type == "log"


def test_figure_escapes_names_and_needs_a_quality_metric() -> None:
    hostile = [record("<b>x</b>", "<b>x</b>", num_tokens=k, psnr=float(k)) for k in (1, 2)]
    figure = rate_quality_figure(hostile)
    assert all("<b>" not in (t.name or "") for t in figure.data)
    assert has_token_sweeps(hostile)
    assert not has_token_sweeps([record("x", "x", num_tokens=2, ssim=0.5)] * 2)
    with pytest.raises(ConfigError, match="no record has a quality metric"):
        rate_quality_figure([record("x", "x", num_tokens=2, ssim=0.5)])
    with pytest.raises(ConfigError, match="x must be one of"):
        rate_quality_curves(hostile, "bits_per_pixel", "psnr")
