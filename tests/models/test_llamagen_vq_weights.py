"""LlamaGen VQ weights: the official ``.pt`` containers (``model``/``ema``, the training script's
``args``), flat state dicts, folders, a hub cache at the pinned revision, unusable files, and the
offline failure without weights (fast, naming the hub id, the URL and ``--weights``).

Checkpoints are the tiny ds16 design saved as ``ds16-c2i`` files, so they stay small.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tokbench.adapters import build_model
from tokbench.errors import ConfigError, WeightsError
from tokbench.hashing import file_sha256
from tokbench.models import llamagen_vq
from tokbench.models.llamagen_vq import (
    VARIANTS,
    LlamaGenVQ,
    LlamaGenVQModel,
    load_checkpoint,
    resolve_checkpoint,
)

#: The reference folder's tiny ds16 design: widths 32/64, one encoder res block, z 32, 1024 codes.
TINY_DS16 = dataclasses.replace(
    VARIANTS["ds16-c2i"].config,
    codebook_size=1024,
    encoder_ch_mult=(1, 1, 1, 1, 2),
    decoder_ch_mult=(1, 1, 1, 1, 2),
    z_channels=32,
    ch=32,
    num_res_blocks=1,
)


@pytest.fixture
def tiny_release(monkeypatch: pytest.MonkeyPatch) -> LlamaGenVQModel:
    """``ds16-c2i`` shrunk to the tiny ds16 design, so real checkpoint files stay small; returns a
    model with random weights to save."""
    variant = dataclasses.replace(VARIANTS["ds16-c2i"], config=TINY_DS16)
    monkeypatch.setitem(llamagen_vq.VARIANTS, "ds16-c2i", variant)
    return LlamaGenVQModel.random_init(TINY_DS16, seed=5)


def _same_weights(tokenizer: LlamaGenVQ, model: LlamaGenVQModel) -> bool:
    saved = model.state_dict()
    return all(torch.equal(v, saved[k]) for k, v in tokenizer.model.state_dict().items())


def test_official_checkpoint_container(
    tiny_release: LlamaGenVQModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The training script's layout: {"model", "steps", "args" (an argparse.Namespace)}; ``ema``
    wins over ``model`` as in the reconstruction script; the sha256 is logged before unpickling."""
    path = tmp_path / "vq_ds16_c2i.pt"
    args = argparse.Namespace(vq_model="VQ-16", codebook_size=16384)
    torch.save({"model": tiny_release.state_dict(), "steps": 7, "args": args}, path)
    tokenizer = LlamaGenVQ(weights=str(path))
    assert tokenizer.weights_sha256 == file_sha256(path) and tokenizer.weights_sha256 in caplog.text
    assert tokenizer.source == f"file:{path}[model]" and _same_weights(tokenizer, tiny_release)
    other = LlamaGenVQModel.random_init(TINY_DS16, seed=6)
    torch.save({"ema": other.state_dict(), "model": tiny_release.state_dict()}, path)
    assert _same_weights(LlamaGenVQ(weights=str(path)), other)
    built = build_model(f"llamagen-vq:weights={path}")
    assert built.spec.endswith(f"variant=ds16-c2i@{file_sha256(path)[:12]}")
    assert "weights" not in built.spec and built.arguments["weights"] == str(path)  # location only


def test_flat_state_dicts_and_folders(tiny_release: LlamaGenVQModel, tmp_path: Path) -> None:
    save_file(tiny_release.state_dict(), tmp_path / "vq_ds16_c2i.safetensors")
    state, key = load_checkpoint(tmp_path / "vq_ds16_c2i.safetensors")
    assert key is None and state.keys() == tiny_release.state_dict().keys()
    tokenizer = LlamaGenVQ(weights=str(tmp_path))  # a folder holding the checkpoint
    assert tokenizer.source == f"directory:{tmp_path}" and _same_weights(tokenizer, tiny_release)
    torch.save(tiny_release.state_dict(), tmp_path / "flat.pt")
    assert load_checkpoint(tmp_path / "flat.pt")[1] is None


def test_unusable_checkpoints_say_why(tiny_release: LlamaGenVQModel, tmp_path: Path) -> None:
    torch.save({"optimizer": {"lr": 1.0}, "steps": 3}, tmp_path / "no_model.pt")
    with pytest.raises(WeightsError, match="'ema' / 'model' / 'state_dict'"):
        LlamaGenVQ(weights=str(tmp_path / "no_model.pt"))
    torch.save({"model": tiny_release.state_dict(), "path": Path("x")}, tmp_path / "pickled_class.pt")
    with pytest.raises(WeightsError, match="weights_only=True"):
        LlamaGenVQ(weights=str(tmp_path / "pickled_class.pt"))
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(WeightsError, match="suffix"):
        LlamaGenVQ(weights=str(tmp_path / "w.npz"))
    save_file(tiny_release.state_dict(), tmp_path / "tiny.safetensors")
    with pytest.raises(WeightsError, match="does not fit") as error:  # ds8-c2i is full size
        LlamaGenVQ(variant="ds8-c2i", weights=str(tmp_path / "tiny.safetensors"))
    assert "--weights PATH" in str(error.value) and "vq_ds8_c2i.pt" in str(error.value)
    with pytest.raises(WeightsError, match="neither a file nor a directory"):
        LlamaGenVQ(weights=str(tmp_path / "absent.pt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match=r"looked for vq_ds16_c2i\.pt, vq_ds16_c2i\.safetensors"):
        LlamaGenVQ(weights=str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="revision"):
        LlamaGenVQ(weights=str(tmp_path / "tiny.safetensors"), revision="abc")


def test_hub_cache_snapshot_at_the_pinned_revision(
    hub_env: Path, tiny_release: LlamaGenVQModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("huggingface_hub")
    revision = VARIANTS["ds16-c2i"].revision
    assert revision == llamagen_vq.LLAMAGEN_HUB_REVISION
    snapshot = hub_env / "hub" / "models--FoundationVision--LlamaGen" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    torch.save({"model": tiny_release.state_dict()}, snapshot / "vq_ds16_c2i.pt")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for weights in (None, str(hub_env)):  # HF_HOME from the environment, or given as weights=
        tokenizer = LlamaGenVQ(weights=weights)
        assert tokenizer.commit == revision and _same_weights(tokenizer, tiny_release)
        assert tokenizer.source == "hub:FoundationVision/LlamaGen/vq_ds16_c2i.pt[model]"
    resolved = resolve_checkpoint(VARIANTS["ds16-c2i"], None)
    assert resolved.path.resolve() == (snapshot / "vq_ds16_c2i.pt").resolve()
    newer = snapshot.parent / ("b" * 40)  # a later download of main
    newer.mkdir()
    torch.save(
        {"model": LlamaGenVQModel.random_init(TINY_DS16, seed=9).state_dict()}, newer / "vq_ds16_c2i.pt"
    )
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("b" * 40)
    assert LlamaGenVQ(revision="main").commit == "b" * 40


@pytest.mark.parametrize("variant", ["ds8-c2i", "ds16-t2i"])
@pytest.mark.parametrize("offline", ["flag", "unreachable"])
def test_offline_without_weights_fails_fast_naming_the_ways(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch, variant: str, offline: str
) -> None:
    if offline == "flag":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    spec = VARIANTS[variant]
    start = time.monotonic()
    with pytest.raises(WeightsError) as error:
        build_model(f"llamagen-vq:variant={variant}")
    assert time.monotonic() - start < 5.0
    message = str(error.value)
    assert spec.hub_id in message and spec.url in message and "--weights PATH" in message
    assert f"https://huggingface.co/{spec.hub_id}/resolve/" in message and "\n" not in message
    assert ("revision=main" in message) == (spec.revision is not None)  # how to use another snapshot
