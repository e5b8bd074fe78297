"""Shared hub helpers: offline detection, hub cache layout, and model-folder resolution."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import NoReturn

import pytest

from tokbench import hub
from tokbench.errors import ConfigError, WeightsError

MODEL = hub.HubModel("fam var", "org/repo", "sub", "Supply it with --weights PATH.")


def test_offline_flags_and_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HF_HUB_OFFLINE",
        "TOKBENCH_OFFLINE",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.offline_reason() == "HF_HUB_OFFLINE is set"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    start = time.monotonic()
    assert hub.offline_reason() == "127.0.0.1 is unreachable"
    assert time.monotonic() - start < hub.HUB_PROBE_SECONDS + 1
    assert not hub.reachable("", 0.1)


def test_probe_connects_to_the_host_and_default_port() -> None:
    calls: list[tuple[tuple[str, int], float]] = []

    def connect(address: tuple[str, int], timeout: float) -> contextlib.nullcontext[None]:
        calls.append((address, timeout))
        return contextlib.nullcontext()

    assert hub.reachable("https://hub.example", 0.5, connect=connect)
    assert hub.reachable("http://hub.example", 0.5, connect=connect)
    assert hub.reachable("proxy.example:3128", 0.5, connect=connect)
    assert calls == [(("hub.example", 443), 0.5), (("hub.example", 80), 0.5), (("proxy.example", 3128), 0.5)]


def test_a_hanging_probe_is_bounded_and_its_thread_ends_when_released() -> None:
    started, released = threading.Event(), threading.Event()
    probes: list[threading.Thread] = []

    def hang(address: tuple[str, int], timeout: float) -> NoReturn:
        probes.append(threading.current_thread())
        started.set()
        released.wait()
        raise OSError("no answer")

    start = time.monotonic()
    try:
        assert not hub.reachable("https://hub.example", 0.2, connect=hang)
        assert time.monotonic() - start < 2
        assert started.wait(timeout=5) and probes[0].is_alive()  # returned while the lookup hangs
    finally:
        released.set()
        for probe in probes:
            probe.join(timeout=5)
    assert not probes[0].is_alive()


def test_cache_layout_helpers(tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--org--repo"
    repo.mkdir(parents=True)
    assert hub.hub_cache_root(tmp_path, "org/repo") == tmp_path / "hub"  # an HF_HOME
    assert hub.hub_cache_root(tmp_path / "hub", "org/repo") == tmp_path / "hub"  # a hub cache
    assert hub.hub_cache_root(repo, "org/repo") == tmp_path / "hub"  # the repository folder
    assert hub.hub_cache_root(tmp_path / "elsewhere", "org/repo") is None
    commit = "a" * 40
    assert hub.snapshot_commit(repo / "snapshots" / commit / "sub" / "w.safetensors") == commit
    assert hub.snapshot_commit(tmp_path / "w.safetensors") is None


def test_files_and_folders(tmp_path: Path) -> None:
    weights = tmp_path / "plain" / "sub" / hub.DIFFUSERS_WEIGHT_FILENAMES[0]
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"x")
    (weights.parent / hub.CONFIG_NAME).write_text("{}")
    found = hub.resolve_model_folder(MODEL, tmp_path / "plain", None)  # the subfolder is looked into
    assert (found.files, found.config_file) == ((weights,), weights.parent / hub.CONFIG_NAME)
    assert hub.resolve_model_folder(MODEL, weights, None).source == f"file:{weights}"
    with pytest.raises(ConfigError, match="fam: revision='v1' applies to hub downloads"):
        hub.resolve_model_folder(MODEL, weights, "v1")
    with pytest.raises(WeightsError, match=r"fam var: no weights in .*--weights PATH"):
        hub.resolve_model_folder(MODEL, tmp_path, None)
    with pytest.raises(WeightsError, match="neither a file nor a directory"):
        hub.resolve_model_folder(MODEL, tmp_path / "absent", None)
