"""The VQ-VAE part of a multimodal checkpoint, read without loading the rest.

Chameleon, Emu3 and Janus ship their image tokenizer inside the full model checkpoint (keys
``model.vqmodel.*`` of multi-GB safetensors shards). ``read_vq_state`` finds the weights in a file, a
folder (model folder or hub snapshot), a hub cache or on the hub, reads the shard index
(``model.safetensors.index.json``) to fetch and open only the shards that hold the VQ keys, and
returns just those tensors with the prefix stripped, with the sha256 of the files read. Pickle
checkpoints (``.ckpt``/``.pt``/``.bin``/``.pth``, e.g. a Lightning ``vqgan.ckpt``) are hashed first and
read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from tokbench.errors import ConfigError, WeightsError
from tokbench.hub import (
    first_line,
    hub_cache_root,
    hub_download,
    hub_offline,
    hub_unavailable,
    import_hub,
    snapshot_commit,
)
from tokbench.models.checkpoints import PICKLE_SUFFIXES, read_state_dict
from tokbench.models.diffusers_vae import files_sha256

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


@dataclass(frozen=True)
class VqSource:
    """Where a VQ-VAE's weights live and how errors name them."""

    #: The model name in errors, e.g. "janus-vq".
    label: str
    hub_id: str
    #: Key prefixes of the VQ part inside a checkpoint, tried in order ("" = the keys as they are).
    prefixes: tuple[str, ...]
    how_to_supply: str
    gated: bool = False


@dataclass(frozen=True)
class VqState:
    """The VQ tensors (prefix stripped), the files they came from and their provenance."""

    state: dict[str, torch.Tensor]
    files: tuple[Path, ...]
    sha256: str
    source: str
    commit: str | None = None


def read_vq_state(source: VqSource, weights: str | os.PathLike | None, revision: str | None) -> VqState:
    """The VQ weights from ``weights`` (file, folder, hub cache) or, when None, the hub."""
    if weights is None:
        return _from_hub(source, revision, cache_dir=None)
    path = Path(weights).expanduser()
    if path.is_file():
        if revision is not None:
            raise ConfigError(
                f"{source.label}: revision={revision!r} applies to hub downloads, not to {path}"
            )
        return _from_files(source, (path,), f"file:{path}")
    if path.is_dir():
        cache = hub_cache_root(path, source.hub_id)
        if cache is not None:
            return _from_hub(source, revision, cache_dir=cache)
        if revision is not None:
            raise ConfigError(
                f"{source.label}: revision={revision!r} needs a hub cache directory, {path} is not one"
            )
        if (path / INDEX_NAME).is_file():
            shards = _shards_from_index(source, path / INDEX_NAME)
            return _from_files(source, tuple(path / name for name in shards), f"directory:{path}")
        if (path / SINGLE_NAME).is_file():
            return _from_files(source, (path / SINGLE_NAME,), f"directory:{path}")
        raise WeightsError(
            f"{source.label}: no weights in {path} (looked for {INDEX_NAME} and {SINGLE_NAME}). "
            + source.how_to_supply
        )
    raise WeightsError(
        f"{source.label}: weights={str(weights)!r} is neither a file nor a directory. " + source.how_to_supply
    )


def _pick_prefix(source: VqSource, keys: list[str], where: str) -> str:
    for prefix in source.prefixes:
        if any(key.startswith(prefix) for key in keys):
            return prefix
    raise WeightsError(
        f"{source.label}: {where} holds no VQ-VAE weights (no key starts with "
        f"{' or '.join(repr(p) for p in source.prefixes)}). " + source.how_to_supply
    )


def _shards_from_index(source: VqSource, index: Path) -> list[str]:
    """The shard files of a safetensors index that hold the VQ keys."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{source.label}: cannot read the shard index {index}: {exc}") from None
    prefix = _pick_prefix(source, list(weight_map), str(index))
    return sorted({shard for key, shard in weight_map.items() if key.startswith(prefix)})


def _from_files(source: VqSource, files: tuple[Path, ...], where: str, commit: str | None = None) -> VqState:
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise WeightsError(
            f"{source.label}: shard(s) {', '.join(missing)} not found. " + source.how_to_supply
        )
    sha256 = files_sha256(files)  # before any unpickling
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(_read_file(source, path, sha256))
    return VqState(state, files, sha256, where, commit)


def _read_file(source: VqSource, path: Path, sha256: str) -> dict[str, torch.Tensor]:
    """The VQ tensors of one file, prefix stripped; safetensors opened lazily (only those keys)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                keys = list(handle.keys())
                prefix = _pick_prefix(source, keys, str(path))
                return {k[len(prefix) :]: handle.get_tensor(k) for k in keys if k.startswith(prefix)}
        except WeightsError:
            raise
        except Exception as exc:
            raise WeightsError(f"{source.label}: cannot read the safetensors file {path}: {exc}") from None
    if path.suffix.lower() not in PICKLE_SUFFIXES:
        raise WeightsError(
            f"{source.label}: {path} has suffix {path.suffix!r}; expected .safetensors or one of "
            f"{PICKLE_SUFFIXES}. " + source.how_to_supply
        )
    state = _lightning_state(source, path, sha256)
    prefix = _pick_prefix(source, list(state), str(path))
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _lightning_state(source: VqSource, path: Path, sha256: str) -> dict[str, torch.Tensor]:
    """A flat state dict, or the ``state_dict`` entry of a (Lightning) training checkpoint; read with
    ``torch.load(weights_only=True)`` after the file was hashed."""
    try:
        return read_state_dict(path, sha256, ("state_dict",), label=source.label)[0]
    except WeightsError as exc:
        raise WeightsError(f"{source.label}: {exc}. " + source.how_to_supply) from None


def _from_hub(source: VqSource, revision: str | None, cache_dir: Path | None) -> VqState:
    client = import_hub(source.label, source.hub_id, source.how_to_supply)
    from huggingface_hub.utils import EntryNotFoundError

    offline = hub_offline(cache_dir)

    def download(filename: str) -> Path:
        return hub_download(client, source.hub_id, filename, revision, cache_dir, offline)

    try:
        try:
            index = download(INDEX_NAME)
            files = tuple(download(name) for name in _shards_from_index(source, index))
        except EntryNotFoundError:
            files = (download(SINGLE_NAME),)
    except WeightsError:
        raise
    except Exception as exc:  # repository, revision, gate, access or connection
        gate = " (a gated repository)" if source.gated else ""
        raise WeightsError(
            f"{source.label}: no weights given and {source.hub_id}{gate}"
            f"{hub_unavailable(offline, revision)} [{first_line(exc)}]. " + source.how_to_supply
        ) from None
    return _from_files(source, files, f"hub:{source.hub_id}", snapshot_commit(files[0]))
