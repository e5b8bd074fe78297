"""Hugging Face hub access shared by the hub-loaded models (TiTok, diffusers VAEs and VQ models).

``offline_reason`` decides quickly (≤ ``HUB_PROBE_SECONDS``) whether the hub can be reached, so an
offline run fails in seconds with a clear message instead of hanging in retries.
``resolve_model_folder`` finds a diffusers-style model folder (``config.json`` and a weights file,
possibly in a subfolder of the repository) in a file, a folder, a hub cache or on the hub.
``huggingface_hub`` is imported lazily, only when the hub is asked.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import urlparse

from tokbench.errors import ConfigError, WeightsError
from tokbench.judges.weights import offline as tokbench_offline

#: How long to wait for a TCP connection to the hub (or proxy) before treating it as offline.
HUB_PROBE_SECONDS = 2.0
CONFIG_NAME = "config.json"
#: Weight files of a diffusers model folder, in the order they are looked for.
DIFFUSERS_WEIGHT_FILENAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


#: Opens a TCP connection to ``(host, port)`` within a timeout in seconds, or raises OSError.
Connect = Callable[[tuple[str, int], float], AbstractContextManager[object]]


def reachable(url: str, timeout: float, connect: Connect = socket.create_connection) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds.

    ``connect`` runs in a daemon thread so that a hanging DNS lookup (which ignores socket timeouts)
    cannot block the caller; tests pass their own instead of patching the ``socket`` module.
    """
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if not parsed.hostname:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    opened: list[bool] = []

    def probe() -> None:
        try:
            with connect((parsed.hostname, port), timeout):
                opened.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, name="tokbench-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(opened)


def offline_reason() -> str | None:
    """Why the hub cannot be reached now (an offline flag, or the host does not answer), or None."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if tokbench_offline():
        return "TOKBENCH_OFFLINE is set"
    proxies = [
        os.environ[k] for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy") if os.environ.get(k)
    ]
    target = proxies[0] if proxies else os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if not reachable(target, HUB_PROBE_SECONDS):
        return f"{urlparse(target).hostname or target} is unreachable"
    return None


def snapshot_commit(path: Path) -> str | None:
    """The hub commit of a file inside a hub cache snapshot (``…/snapshots/<40 hex>/…``), or None."""
    match = re.search(r"[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]", str(path))
    return match.group(1) if match else None


def hub_cache_root(path: Path, hub_id: str) -> Path | None:
    """The hub cache directory when ``path`` is an HF_HOME, a hub cache or the repository's
    ``models--…`` folder, else None."""
    repo_folder = "models--" + hub_id.replace("/", "--")
    if path.name == repo_folder:
        return path.parent
    for cache in (path, path / "hub"):
        if (cache / repo_folder).is_dir():
            return cache
    return None


def import_hub(label: str, hub_id: str, how_to_supply: str) -> ModuleType:
    """The ``huggingface_hub`` package, or a WeightsError naming the model and how else to supply it."""
    try:
        import huggingface_hub
    except ImportError:
        raise WeightsError(
            f"{label}: no weights given, and fetching {hub_id} from the Hugging Face hub needs "
            "the huggingface_hub package (pip install huggingface_hub). " + how_to_supply
        ) from None
    return huggingface_hub


def hub_offline(cache_dir: Path | None) -> str | None:
    """Why only the local cache may be read: a hub cache was given, or ``offline_reason()``."""
    return "a local hub cache was given" if cache_dir is not None else offline_reason()


def hub_download(
    client: ModuleType,
    hub_id: str,
    filename: str,
    revision: str | None,
    cache_dir: Path | None,
    offline: str | None,
) -> Path:
    """One file of a hub repository through ``client.hf_hub_download``: from ``cache_dir`` (else
    HF_HUB_CACHE, else HF_HOME/hub, else the library default), only the local cache when ``offline``."""
    home = os.environ.get("HF_HOME")
    cache = str(cache_dir or os.environ.get("HF_HUB_CACHE") or (Path(home) / "hub" if home else ""))
    return Path(
        client.hf_hub_download(
            hub_id,
            filename,
            revision=revision,
            cache_dir=cache or None,
            local_files_only=offline is not None,
            endpoint=os.environ.get("HF_ENDPOINT"),
        )
    )


def hub_unavailable(offline: str | None, revision: str | None, hint: str = "") -> str:
    """The `` at revision … is not in the local hub cache (…)`` / ``could not be downloaded`` part of
    a hub failure message; ``hint`` follows the revision."""
    at = f" at revision {revision!r}{hint}" if revision else ""
    state = f"is not in the local hub cache ({offline})" if offline else "could not be downloaded"
    return f"{at} {state}"


def first_line(exc: BaseException) -> str:
    """An exception's type and the first line of its message, for one-line errors."""
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


@dataclass(frozen=True)
class HubModel:
    """A model folder on the hub and how errors name it (``label``) and say how to supply it."""

    label: str
    hub_id: str
    #: Folder of the model inside the hub repository ("" for the repository root).
    subfolder: str
    how_to_supply: str
    gated: bool = False
    weight_filenames: tuple[str, ...] = DIFFUSERS_WEIGHT_FILENAMES


@dataclass(frozen=True)
class ResolvedFolder:
    """The weights file(s) found, the config beside them (if any), where, and the hub commit."""

    files: tuple[Path, ...]
    config_file: Path | None
    source: str
    commit: str | None = None


def resolve_model_folder(
    model: HubModel, weights: str | os.PathLike | None, revision: str | None
) -> ResolvedFolder:
    """Find the weights: a file, a folder (model folder, repository snapshot, hub cache) or the hub."""
    if weights is None:
        return _from_hub(model, revision, cache_dir=None)
    path = Path(weights).expanduser()
    family = model.label.split(" ")[0]
    if path.is_file():
        if revision is not None:
            raise ConfigError(
                f"{family}: revision={revision!r} applies to hub downloads, not to the file {path}"
            )
        return ResolvedFolder((path,), None, f"file:{path}")
    if path.is_dir():
        cache = hub_cache_root(path, model.hub_id)
        if cache is not None:
            return _from_hub(model, revision, cache_dir=cache)
        if revision is not None:
            raise ConfigError(
                f"{family}: revision={revision!r} needs a hub cache directory, {path} is not one"
            )
        return _from_folder(path, model)
    raise WeightsError(
        f"{model.label}: weights={str(weights)!r} is neither a file nor a directory. " + model.how_to_supply
    )


def _from_folder(root: Path, model: HubModel) -> ResolvedFolder:
    folders = [root / model.subfolder, root] if model.subfolder else [root]
    for folder in folders:
        for name in model.weight_filenames:
            if (folder / name).is_file():
                config = folder / CONFIG_NAME
                return ResolvedFolder(
                    (folder / name,), config if config.is_file() else None, f"directory:{folder}"
                )
    raise WeightsError(
        f"{model.label}: no weights in {' or '.join(map(str, folders))} (looked for "
        f"{', '.join(model.weight_filenames)}). " + model.how_to_supply
    )


def _from_hub(model: HubModel, revision: str | None, cache_dir: Path | None) -> ResolvedFolder:
    client = import_hub(model.label, model.hub_id, model.how_to_supply)
    from huggingface_hub.utils import EntryNotFoundError

    offline = hub_offline(cache_dir)
    prefix = f"{model.subfolder}/" if model.subfolder else ""

    def download(filename: str) -> Path:
        return hub_download(client, model.hub_id, prefix + filename, revision, cache_dir, offline)

    errors: list[str] = []
    try:
        config = download(CONFIG_NAME)
        for filename in model.weight_filenames:
            try:
                path = download(filename)
            except EntryNotFoundError as exc:
                errors.append(f"{prefix}{filename}: {type(exc).__name__}")
                continue
            return ResolvedFolder((path,), config, f"hub:{model.hub_id}", snapshot_commit(path))
    except Exception as exc:  # repository, revision, gate, access or connection
        errors.append(first_line(exc))
    gate = " (a gated repository)" if model.gated else ""
    raise WeightsError(
        f"{model.label}: no weights given and {model.hub_id}{gate}{hub_unavailable(offline, revision)} "
        f"[{'; '.join(errors)}]. " + model.how_to_supply
    )
