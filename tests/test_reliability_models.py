"""Reliability of model calls (issue 21.1-21.3, 21.11; issue 17.5): a plugin is its code, not its path;
a generator that ignores its seeds is found and never mixed into a resumed run; an exception raised
inside a model is counted per item under ``skip`` and named on one line under ``fail``; a hanging model
is stopped by ``--timeout``; ``fail`` never returns a record that skipped items; a bare tensor from
``encode`` is accepted and a model that breaks its contract on every item stops at the first batch.

Everything runs on tiny in-test models: a PSNR-only recon suite on four 64×64 PNGs, and a gen suite of
8 samples judged by a 16-wide pooling judge against a 16-wide reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import tokbench
from tokbench import Encoded, Generator, Tokenizer
from tokbench.errors import AdapterOutputError, ConfigError, ModelCallError, ModelTimeoutError
from tokbench.judges.base import Judge
from tokbench.suites import SUITE_PATH_ENV

RECON_SUITE = """
name: relrecon
version: "1"
kind: tokenizer
dataset: embedded
preprocess: {name: imagenet-center-crop, resolution: 64}
metrics:
  - name: psnr
primary: psnr
"""

GEN_SUITE = """
name: relgen
version: "1"
kind: generator
track: gen
settings: {num_samples: 8, num_classes: 4, shard_size: 4}
judges:
  tiny: {name: rel-pool}
metrics:
  - {name: fid, judge: tiny, key: gfid}
"""

#: Four solid-ish images; the red one is where the in-test models fail.
COLOURS = {"blue.png": (20, 40, 200), "green.png": (30, 190, 60), "grey.png": (128, 128, 128)}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The two suites on the suite path, an isolated cache, and a folder of four 64×64 images."""
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "relrecon.yaml").write_text(RECON_SUITE)
    (suites / "relgen.yaml").write_text(GEN_SUITE)
    monkeypatch.setenv(SUITE_PATH_ENV, str(suites))
    monkeypatch.setenv("TOKBENCH_CACHE", str(tmp_path / "cache"))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, colour in {**COLOURS, "red.png": (250, 10, 10)}.items():
        pixels = np.clip(np.array(colour) + rng.integers(-5, 6, (64, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / name)
    return tmp_path


def _recon(env: Path, model: Any, **options: Any) -> tokbench.RunResult:
    return tokbench.evaluate(model, "relrecon", f"folder:{env / 'images'}", **options)


def _is_red(images: torch.Tensor) -> bool:
    return bool(((images[:, 0].mean(dim=(1, 2)) > 0.9) & (images[:, 1].mean(dim=(1, 2)) < 0.1)).any())


class Passthrough(Tokenizer):
    """Returns its input; counts ``encode`` calls."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, images: torch.Tensor) -> Encoded:
        self.calls += 1
        return Encoded(payload=images)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        return encoded.payload


class OutOfMemoryInEncode(Passthrough):
    def encode(self, images: torch.Tensor) -> Encoded:
        if _is_red(images):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\n(a second line)")
        return super().encode(images)


class FailingDecode(Passthrough):
    def decode(self, encoded: Encoded) -> torch.Tensor:
        if _is_red(encoded.payload):
            raise ValueError("decoder exploded")
        return encoded.payload


# ---------------------------------------------------------------- 21.3 raising encode / decode


@pytest.mark.parametrize(
    "model,call,message",
    [
        (OutOfMemoryInEncode, "encode", "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"),
        (FailingDecode, "decode", "ValueError: decoder exploded"),
    ],
)
def test_a_raising_model_call_is_counted_per_item_under_skip(
    env: Path, model, call: str, message: str
) -> None:
    result = _recon(env, model(), batch_size=4)
    dataset = result.record["dataset"]
    assert (dataset["items_used"], dataset["items_skipped"]) == (3, 1)
    (skipped,) = result.record["skipped"]
    assert skipped["item"] == "red.png"
    assert f"{call}() raised {message}" in skipped["reason"] and model.__name__ in skipped["reason"]
    assert "test_reliability_models.py line" in skipped["reason"] and "\n" not in skipped["reason"]


@pytest.mark.parametrize("model,call", [(OutOfMemoryInEncode, "encode"), (FailingDecode, "decode")])
def test_a_raising_model_call_stops_fail_with_one_line_naming_model_call_and_items(
    env: Path, model, call: str
) -> None:
    with pytest.raises(ModelCallError) as info:
        _recon(env, model(), batch_size=4, on_error="fail")
    text = str(info.value)
    assert model.__name__ in text and f"{call}() raised" in text and "red.png" in text and "\n" not in text
    assert isinstance(info.value.__cause__, (RuntimeError, ValueError))  # the original, for --debug


# ---------------------------------------------------------------- 21.3 plugin import and __init__

BROKEN_PLUGINS = {
    "syntax.py": ("import torch\n\nclass Base(:\n    pass\n", r"SyntaxError: .*syntax\.py line 3\)"),
    "missing.py": (
        "import torch\nimport not_installed_module_xyz\n",
        r"ModuleNotFoundError: No module named 'not_installed_module_xyz' \(.*missing\.py line 2\)",
    ),
    "init.py": (
        textwrap.dedent(
            """
            from tokbench import Encoded, Tokenizer

            class Base(Tokenizer):
                def __init__(self):
                    raise RuntimeError("no GPU here")

                def encode(self, images):
                    return Encoded(payload=images)

                def decode(self, encoded):
                    return encoded.payload
            """
        ),
        r"could not be constructed: RuntimeError: no GPU here \(.*init\.py line 6\)",
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN_PLUGINS))
def test_plugin_import_and_constructor_errors_name_file_and_line(env: Path, name: str) -> None:
    source, pattern = BROKEN_PLUGINS[name]
    (env / name).write_text(source)
    with pytest.raises(ConfigError, match=pattern) as info:
        _recon(env, f"{env / name}:Base")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- 21.1 plugin identity

PLUGIN = textwrap.dedent(
    """
    from tokbench import Encoded, Tokenizer

    class Base(Tokenizer):
        def encode(self, images):
            return Encoded(payload=images)

        def decode(self, encoded):
            return encoded.payload
    """
)


def test_a_plugin_is_its_code_not_the_spelling_of_its_path(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = env / "work"
    work.mkdir()
    plugin = work / "my_tok.py"
    plugin.write_text(PLUGIN)
    monkeypatch.chdir(work)
    store = env / "store"
    first = _recon(env, "./my_tok.py:Base", store=store)
    assert first.stored.status == "added" and first.metrics["psnr"] == float("inf")
    for spelling in (f"{plugin}:Base", "../work/my_tok.py:Base"):
        again = _recon(env, spelling, store=store)
        assert again.stored.status == "exists" and again.record["record_id"] == first.record["record_id"]
    source = first.record["model"]["source"]
    assert source["path"] == str(plugin) and source["given_as"] == "./my_tok.py:Base"
    assert str(work) not in first.record["model"]["spec"]

    plugin.write_text(PLUGIN.replace("return encoded.payload", "return encoded.payload * 0.5"))
    edited = _recon(env, "./my_tok.py:Base", store=store)
    assert edited.stored.status == "added" and edited.record["record_id"] != first.record["record_id"]
    assert edited.metrics["psnr"] < 40  # the edited code ran, not the module imported before


# ---------------------------------------------------------------- 21.11 fail never returns skips


def test_fail_does_not_reuse_a_record_that_skipped_items(env: Path) -> None:
    store = env / "store"
    skipped = _recon(env, OutOfMemoryInEncode(), store=store, batch_size=4)
    assert skipped.stored.status == "added" and skipped.record["dataset"]["items_skipped"] == 1
    with pytest.raises(ModelCallError, match=r"red\.png"):
        _recon(env, OutOfMemoryInEncode(), store=store, batch_size=4, on_error="fail")
    clean = _recon(env, Passthrough(), store=store, on_error="fail")
    assert clean.stored.status == "added"
    assert _recon(env, Passthrough(), store=store, on_error="fail").stored.status == "exists"


# ---------------------------------------------------------------- 17.5 friendlier adapters


class BareTensor(Passthrough):
    def encode(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        self.calls += 1
        return images * 1.0


class WrongShape(Passthrough):
    def decode(self, encoded: Encoded) -> torch.Tensor:
        return encoded.payload[..., :-1]


def test_a_bare_tensor_from_encode_is_accepted(env: Path) -> None:
    result = _recon(env, BareTensor(), on_error="fail")
    assert result.record["dataset"]["items_used"] == 4 and result.metrics["psnr"] == float("inf")


def test_a_contract_violation_on_every_item_of_the_first_batch_stops_there(env: Path) -> None:
    model = WrongShape()
    with pytest.raises(AdapterOutputError, match=r"returned shape .*every item of the first batch, 2 items"):
        _recon(env, model, batch_size=2)
    assert model.calls == 1 + 2  # the batch, then each of its items; the second batch is never tried


# ---------------------------------------------------------------- 21.3 hanging model, --timeout


class Hanging(Passthrough):
    def decode(self, encoded: Encoded) -> torch.Tensor:
        time.sleep(60)
        return encoded.payload


def test_timeout_stops_a_hanging_call_and_names_it(env: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ModelTimeoutError, match=r"Hanging: decode\(\) on items blue.png, green.png") as info:
        _recon(env, Hanging(), batch_size=2, timeout=1.0, store=env / "store")
    assert time.monotonic() - started < 30 and "within 1 s (--timeout)" in str(info.value)
    assert not (env / "store").exists() or not list((env / "store").rglob("*.json"))


def _stuck(call: str, grace: float) -> subprocess.CompletedProcess:
    """A process whose model call cannot be interrupted by the watchdog's signal (timeout 0.5 s)."""
    code = textwrap.dedent(
        f"""
        import re, signal, time
        from tokbench.tracks import model_calls

        def masked():  # C code that waits with signals blocked (the interpreter lock released)
            signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGALRM}})
            time.sleep(60)

        def holding():  # C code that never returns to the interpreter (the lock held)
            re.fullmatch(r"(a+)+b", "a" * 64)

        model_calls.GRACE_SECONDS = {grace}
        model_calls.call_model("stuck", "{call}", ["a.png"], {call}, (), timeout=0.5)
        print("returned")
        """
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_call_deaf_to_the_interrupt_is_reported_and_the_process_ends() -> None:
    result = _stuck("masked", grace=1.0)
    assert result.returncode == 1 and "returned" not in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert "model stuck: masked() on items a.png did not return within 0.5 s" in line
    assert "process ends now" in line


def test_a_call_holding_the_interpreter_ends_with_every_stack() -> None:
    result = _stuck("holding", grace=0.5)
    assert result.returncode == 1 and "returned" not in result.stdout
    assert "Timeout (" in result.stderr and "in call_model" in result.stderr and "in holding" in result.stderr


# ---------------------------------------------------------------- 21.3 tracebacks only with --debug


def test_cli_model_errors_are_one_line_and_tracebacks_need_debug(env: Path) -> None:
    (env / "raising.py").write_text(
        PLUGIN.replace("return encoded.payload", "raise RuntimeError('CUDA out of memory')")
    )
    command = [sys.executable, "-m", "tokbench.cli", "run", "--model", f"{env / 'raising.py'}:Base"]
    command += ["--suite", "relrecon", "--data", f"folder:{env / 'images'}", "--on-error", "fail"]
    command += ["--no-store", "--quiet"]
    environment = {**os.environ, SUITE_PATH_ENV: str(env / "suites"), "TOKBENCH_CACHE": str(env / "cache")}
    plain = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    (line,) = plain.stderr.strip().splitlines()
    assert plain.returncode == 1 and "decode() raised RuntimeError: CUDA out of memory" in line
    debug = subprocess.run(
        [*command, "--debug"], capture_output=True, text=True, env=environment, timeout=300
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr and line in debug.stderr


def test_an_internal_error_is_one_line_with_a_hint(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from tokbench import api, cli

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(api, "evaluate", broken)
    assert cli.main(["run", "--model", "jpeg", "--no-store", "--quiet"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("tokbench: internal error: ZeroDivisionError: division by zero")
    assert line.endswith("rerun with --debug for the traceback")


# ---------------------------------------------------------------- 21.2 / 21.3 generators


class PoolJudge(Judge):
    """A 16-wide stand-in for Inception: 4×4 average-pooled grey levels."""

    name = "rel-pool"
    outputs = ("pool3",)
    feature_dim = 16

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        grey = images.float().mean(dim=1, keepdim=True) / 255
        return {"pool3": torch.nn.functional.adaptive_avg_pool2d(grey, 4).flatten(1)}


class SeededNoise(Generator):
    """Image i is noise from ``seeds[i]`` alone; raises ``KeyboardInterrupt`` (a kill) after
    ``kill_after`` calls and ``RuntimeError`` when ``broken``."""

    def __init__(self, kill_after: int | None = None, broken: bool = False) -> None:
        self.calls, self.kill_after, self.broken = 0, kill_after, broken

    @property
    def num_classes(self) -> int:
        return 4

    def draw(self, seed: int) -> torch.Tensor:
        return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(seed))

    def sample(self, conditions: list[Any], seeds: list[int]) -> torch.Tensor:
        self.calls += 1
        if self.kill_after is not None and self.calls > self.kill_after:
            raise KeyboardInterrupt("simulated kill")
        if self.broken:
            raise RuntimeError("sampler diverged")
        return torch.stack([self.draw(seed) for seed in seeds])


class Seedless(SeededNoise):
    """Ignores its seeds (fresh OS entropy every call): two runs never draw the same images."""

    def draw(self, seed: int) -> torch.Tensor:
        return torch.from_numpy(np.random.default_rng().random((3, 16, 16), dtype=np.float32))


@pytest.fixture
def gen_env(env: Path) -> Path:
    from tokbench.judges.registry import JUDGES

    rng = np.random.default_rng(3)
    features = rng.random((32, 16))
    np.savez(env / "ref.npz", mu=features.mean(axis=0), sigma=np.cov(features, rowvar=False))
    JUDGES.register("rel-pool", PoolJudge)
    yield env
    JUDGES.unregister("rel-pool")


def _gen(env: Path, model: Generator, **options: Any) -> tokbench.RunResult:
    return tokbench.evaluate(model, "relgen", reference=env / "ref.npz", work_dir=env / "work", **options)


def test_the_determinism_probe_is_recorded(gen_env: Path) -> None:
    assert _gen(gen_env, SeededNoise()).record["generation"]["deterministic"] is True
    record = _gen(gen_env, Seedless()).record["generation"]
    assert record["deterministic"] is False and record["determinism_probe"]["samples"] == [0, 1]


def test_a_resumed_run_refuses_to_mix_shards_of_a_nondeterministic_generator(gen_env: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _gen(gen_env, Seedless(kill_after=2 + 1))  # the probe's two draws, shard 0, then killed
    with pytest.raises(ConfigError, match=r"not deterministic.*--allow-nondeterministic"):
        _gen(gen_env, Seedless())
    mixed = _gen(gen_env, Seedless(), allow_nondeterministic=True).record["generation"]
    assert mixed["deterministic"] is False and mixed["shards"]["resumed"] == [0]


def test_a_generator_that_raises_is_one_line_naming_the_samples(gen_env: Path) -> None:
    with pytest.raises(ModelCallError) as info:
        _gen(gen_env, SeededNoise(broken=True))
    text = str(info.value)
    assert "sample() raised RuntimeError: sampler diverged" in text and "sample 0, sample 1" in text
    assert "\n" not in text
