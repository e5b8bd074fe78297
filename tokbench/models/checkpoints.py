"""Checkpoint files shared by the hub-loaded tokenizers (TiTok, LlamaGen VQ, VAR VQVAE, Open-MAGVIT2,
the multimodal VQ-VAEs, the diffusers models): reading a state dict safely, finding a checkpoint that
is one named file of a hub repository (explicit file, folder, hub cache with a pinned revision, hub
download), checking the file's sha256 and adopting a state dict into a model built on the meta device.

Pickles are read only through ``torch.load(weights_only=True)``, after their sha256 was computed and
logged; ``huggingface_hub`` is imported lazily, only when the hub is asked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tokbench.errors import ConfigError, WeightsError
from tokbench.hashing import file_sha256
from tokbench.hub import (
    first_line,
    hub_cache_root,
    hub_download,
    hub_offline,
    hub_unavailable,
    import_hub,
    snapshot_commit,
)

logger = logging.getLogger(__name__)

#: Suffixes of the pickle-based checkpoints that ``torch.load(weights_only=True)`` may read.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def read_state_dict(
    path: Path,
    sha256: str | None = None,
    containers: tuple[str, ...] = (),
    safe_globals: Iterable[type] = (),
    label: str | None = None,
) -> tuple[dict[str, torch.Tensor], str | None]:
    """The flat state dict in ``path`` and the container key it sat under (None when flat).

    safetensors is read directly; a pickle (``PICKLE_SUFFIXES``) only through
    ``torch.load(weights_only=True)`` after logging its sha256 (``sha256``, or computed), with
    ``safe_globals`` the classes allowed beyond tensors and containers. A dict that is not itself a
    state dict gives its first entry of ``containers`` that is a dict. ``label`` prefixes the log line.
    """
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path)), None
        except Exception as exc:
            raise WeightsError(f"cannot read the safetensors file {path}: {exc}") from None
    if suffix not in PICKLE_SUFFIXES:
        raise WeightsError(
            f"weights file {path} has suffix {suffix!r}; expected .safetensors or one of {PICKLE_SUFFIXES}"
        )
    logger.warning(
        "%sloading the pickle-based checkpoint %s (sha256 %s) with torch.load(weights_only=True)",
        f"{label}: " if label else "",
        path,
        sha256 or file_sha256(path),
    )
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read {path} with torch.load(weights_only=True): {exc}") from None
    key = None
    if containers and isinstance(content, Mapping) and not _is_state_dict(content):
        key = next((k for k in containers if isinstance(content.get(k), Mapping)), None)
        content = content[key] if key is not None else content
    if not (isinstance(content, Mapping) and _is_state_dict(content)):
        if containers:
            raise WeightsError(
                f"{path} holds no state dict (parameter name → tensor), directly or under "
                + " / ".join(repr(k) for k in containers)
            )
        raise WeightsError(f"{path} does not hold a flat state dict (parameter name → tensor)")
    return dict(content), key


def load_checkpoint(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The flat state dict of a safetensors file or a pickled state dict (see ``read_state_dict``)."""
    return read_state_dict(path, sha256)[0]


def _is_state_dict(content: Mapping[Any, Any]) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items())


def check_sha256(label: str, path: Path, expected: str | None, how_to_supply: str) -> str:
    """The sha256 of ``path``; a WeightsError when a pinned ``expected`` one differs."""
    sha256 = file_sha256(path)
    if expected is not None and sha256 != expected:
        raise WeightsError(f"{label}: {path} has sha256 {sha256}, expected {expected}. " + how_to_supply)
    return sha256


def adopt_state_dict(
    model: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    what: str,
    sort_missing: bool = True,
    ignore_shape: tuple[str, ...] = (),
    overrides: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Load ``state_dict`` into ``model`` (built on the meta device) as float32, assigning the tensors.

    Keys and shapes must equal the model's exactly (shapes of ``ignore_shape`` keys are not compared);
    a WeightsError lists up to four missing, unexpected and wrong-shaped keys ("does not fit this
    ``what``"). Missing keys are listed sorted, or in the model's order without ``sort_missing``.
    ``overrides`` replace entries of the state dict after the checks.
    """
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    given = {key: tuple(value.shape) for key, value in state_dict.items()}
    missing = [k for k in expected if k not in given]
    missing = sorted(missing) if sort_missing else missing
    unexpected = sorted(set(given) - set(expected))
    wrong = [
        f"{k} {given[k]}≠{shape}"
        for k, shape in expected.items()
        if k not in ignore_shape and given.get(k, shape) != shape
    ]
    problems = [
        f"{label} ({len(items)}): {', '.join(items[:4])}{', …' if len(items) > 4 else ''}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        if items
    ]
    if problems:
        raise WeightsError(f"the state dict does not fit this {what}: {'; '.join(problems)}")
    tensors = {key: value.detach().to(torch.float32).contiguous() for key, value in state_dict.items()}
    tensors.update(overrides or {})
    model.load_state_dict(tensors, strict=True, assign=True)


@dataclass(frozen=True)
class HubFile:
    """A checkpoint that is one named file of a hub repository, and how errors name it."""

    #: The model in errors, e.g. "llamagen-vq ds16-c2i"; its first word names the family.
    label: str
    hub_id: str
    filename: str
    how_to_supply: str
    #: The hub commit downloads default to (None: the main branch).
    revision: str | None = None
    #: Names looked for in a plain folder (default: ``filename``).
    folder_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class FoundCheckpoint:
    """The checkpoint file found, how (``file``, ``directory``, ``hub-cache`` or ``hub``) and its hub
    commit (None when not from a hub cache snapshot)."""

    path: Path
    kind: str
    commit: str | None = None


def resolve_hub_file(
    checkpoint: HubFile, weights: str | os.PathLike | None, revision: str | None
) -> FoundCheckpoint:
    """Find the checkpoint: a file, a folder holding it, a hub cache (read offline), or the hub."""
    family = checkpoint.label.split(" ")[0]
    if weights is None:
        return _download(checkpoint, revision, None)
    path = Path(weights).expanduser()
    if path.is_file():
        if revision is not None:
            raise ConfigError(
                f"{family}: revision={revision!r} applies to hub downloads, not to the file {path}"
            )
        return FoundCheckpoint(path, "file")
    if path.is_dir():
        cache = hub_cache_root(path, checkpoint.hub_id)
        if cache is not None:
            return _download(checkpoint, revision, cache)
        if revision is not None:
            raise ConfigError(
                f"{family}: revision={revision!r} needs a hub cache directory, {path} is not one"
            )
        names = checkpoint.folder_names or (checkpoint.filename,)
        for name in names:
            if (path / name).is_file():
                return FoundCheckpoint(path / name, "directory")
        what = (
            f"checkpoint in {path} (looked for {', '.join(names)})"
            if len(names) > 1
            else f"{names[0]} in {path}"
        )
        raise WeightsError(f"{checkpoint.label}: no {what}. " + checkpoint.how_to_supply)
    raise WeightsError(
        f"{checkpoint.label}: weights={str(weights)!r} is neither a file nor a directory. "
        + checkpoint.how_to_supply
    )


def _download(checkpoint: HubFile, revision: str | None, cache_dir: Path | None) -> FoundCheckpoint:
    """The file from the hub, or only from a local hub cache when offline or ``cache_dir`` is given."""
    client = import_hub(checkpoint.label, checkpoint.hub_id, checkpoint.how_to_supply)
    offline = hub_offline(cache_dir)
    revision = revision or checkpoint.revision
    try:
        path = hub_download(client, checkpoint.hub_id, checkpoint.filename, revision, cache_dir, offline)
    except Exception as exc:  # not cached, repository, revision, file, access or connection
        hint = " (another snapshot: add revision=<commit> or revision=main)"
        raise WeightsError(
            f"{checkpoint.label}: no weights given and {checkpoint.hub_id}/{checkpoint.filename}"
            f"{hub_unavailable(offline, revision, hint)} [{first_line(exc)}]. " + checkpoint.how_to_supply
        ) from None
    return FoundCheckpoint(path, "hub" if cache_dir is None else "hub-cache", snapshot_commit(path))
