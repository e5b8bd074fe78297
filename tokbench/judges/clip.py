"""The CLIP judge through open_clip: image embeddings (FD-CLIP, embedding cosine, zero-shot accuracy,
CLIP score) and text embeddings (zero-shot classifiers, prompts).

A judge is an open_clip model name and a pretrained tag (``ViT-B-32`` / ``laion2b_s34b_b79k``,
``ViT-L-14`` / ``openai``). Its weights are resolved like every judge's (see
``tokbench/judges/weights.py``), never assumed:

1. an explicit file (judge option ``weights: PATH``);
2. ``$TOKBENCH_WEIGHTS_DIR/open_clip-<model>-<tag>.<ext>`` (ext ``safetensors``, ``bin``, ``pt`` or ``pth``);
3. the Hugging Face hub cache (``HF_HOME``) or open_clip's URL cache, without network;
4. a download through open_clip when online (refused when ``$TOKBENCH_OFFLINE`` is set).

The file's sha256 is computed before it is loaded (pickles only with ``weights_only=True``), checked
when the tag's source pins it (OpenAI's URLs carry the full sha256) and recorded in ``describe()``.

``weights: random`` builds the real architecture with random weights (seed 0) for tests and smoke
runs: ``describe()`` says so, so such records never share a protocol hash with real weights.

Preprocessing is exactly open_clip's evaluation transform for the model and tag (resize, centre crop,
normalisation from the tag's config), applied to each uint8 image as a PIL image, as open_clip's
own evaluation does. The ``embedding`` output is ``encode_image`` before normalisation (the
projected image embedding, as torch-fidelity's CLIP extractor gives it).
"""

from __future__ import annotations

import difflib
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from tokbench.errors import ConfigError, WeightsError
from tokbench.files import load_safetensors_cache, remove_stale_temp_files
from tokbench.hashing import file_sha256, sha256_json
from tokbench.judges.base import Judge
from tokbench.judges.weights import OFFLINE_ENV, WEIGHTS_DIR_ENV, cache_dir, offline

RANDOM_WEIGHTS = "random"
RANDOM_SEED = 0
DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
JUDGE_VERSION = "1"
WEIGHT_EXTENSIONS = (".safetensors", ".bin", ".pt", ".pth")
#: Prompts per text-encoder call when building classifiers.
TEXT_BATCH = 256


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError:
        raise ConfigError(
            f"the CLIP judge needs open_clip: {ClipJudge.install_hint} (open-clip-torch==3.3.0)"
        ) from None
    return open_clip


def check_model_and_tag(model: str, pretrained: str | None, needs_tag: bool = True) -> None:
    """Raise ConfigError for a model open_clip does not know, or a tag it has no weights for.

    ``needs_tag`` is False when the weights are given (a file, or ``random``): the tag then only
    chooses the preprocessing and may be None.
    """
    open_clip = _open_clip()
    models = open_clip.list_models()
    if not isinstance(model, str) or model not in models:
        close = difflib.get_close_matches(str(model), models, n=5, cutoff=0.5)
        raise ConfigError(
            f"clip judge: open_clip has no model {model!r}"
            + (f"; did you mean {', '.join(close)}?" if close else "")
            + " (open_clip.list_models() lists them)"
        )
    if pretrained is None:
        if needs_tag:
            raise ConfigError(
                f"clip judge: model {model!r} needs a pretrained tag (e.g. "
                f"{_tags_hint(model)}), a weights file, or weights=random for a random-initialised smoke run"
            )
        return
    if not open_clip.is_pretrained_cfg(model, pretrained):
        tags = open_clip.list_pretrained_tags_by_model(model)
        if tags:
            hint = f"its tags are {', '.join(tags)}"
        else:
            pairs = open_clip.list_pretrained(as_str=True)
            close = difflib.get_close_matches(f"{model}:{pretrained}", pairs, n=5, cutoff=0.4)
            hint = "it has no pretrained weights in open_clip" + (
                f"; close model:tag pairs are {', '.join(close)}" if close else ""
            )
        raise ConfigError(
            f"clip judge: unknown model/tag pair {model!r} / {pretrained!r}: {hint} "
            "(open_clip.list_pretrained() lists every pair)"
        )


def _tags_hint(model: str) -> str:
    tags = _open_clip().list_pretrained_tags_by_model(model)
    return ", ".join(tags[:3]) if tags else "none exist for this model"


def weights_filename(model: str, pretrained: str, extension: str = ".safetensors") -> str:
    """The file name looked up in ``$TOKBENCH_WEIGHTS_DIR`` for a model and tag."""
    return f"open_clip-{model}-{pretrained}{extension}"


def _pinned_sha256(source: dict[str, Any]) -> str | None:
    """The sha256 a tag's download URL pins (OpenAI's URLs carry it as a path component)."""
    url = source.get("url") or ""
    parts = url.split("/")
    if "openaipublic" in url and len(parts) > 2 and len(parts[-2]) == 64:
        return parts[-2]
    return None


def _hub_candidates(source: dict[str, Any]) -> list[tuple[str, str]]:
    """(repo, filename) pairs on the hub for a tag, safetensors first."""
    hub = source.get("hf_hub") or ""
    if not hub:
        return []
    repo, filename = os.path.split(hub)
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename.endswith((".bin", ".pth")):
        names.insert(0, filename.rsplit(".", 1)[0] + ".safetensors")
    return [(repo, name) for name in names]


def _how_to_supply(model: str, pretrained: str, source: dict[str, Any]) -> str:
    where = source.get("hf_hub") or source.get("url") or "(no download source)"
    return (
        f"To supply them: pass the file as judge option weights=PATH (CLI: --judge-option "
        f"ALIAS.weights=PATH), put it in ${WEIGHTS_DIR_ENV} as {weights_filename(model, pretrained)} (or "
        f".bin/.pt), or run once with network access so open_clip downloads {where} into the Hugging "
        f"Face cache (HF_HOME). For a smoke run without weights use weights=random (recorded, never "
        f"ranked with real weights)."
    )


def resolve_clip_weights(model: str, pretrained: str, explicit: Path | None = None) -> tuple[Path, str]:
    """Find the checkpoint of ``model``/``pretrained``: (path, source), source one of explicit, env,
    cache, download. Raises WeightsError naming the model, the tag and how to supply the file."""
    open_clip = _open_clip()
    source = open_clip.get_pretrained_cfg(model, pretrained)
    if explicit is not None:
        if not Path(explicit).is_file():
            raise WeightsError(
                f"CLIP weights file {explicit} for {model} / {pretrained} does not exist. "
                + _how_to_supply(model, pretrained, source)
            )
        return Path(explicit), "explicit"
    env_dir = os.environ.get(WEIGHTS_DIR_ENV)
    if env_dir:
        for extension in WEIGHT_EXTENSIONS:
            path = Path(env_dir) / weights_filename(model, pretrained, extension)
            if path.is_file():
                return path, "env"
    cached = _cached_checkpoint(source)
    if cached is not None:
        return cached, "cache"
    if offline():
        raise WeightsError(
            f"CLIP weights for model {model!r} with pretrained tag {pretrained!r} are not available "
            f"offline (downloads are disabled by ${OFFLINE_ENV}). "
            + _how_to_supply(model, pretrained, source)
        )
    try:
        path = open_clip.pretrained.download_pretrained(source)
    except Exception as error:  # hub and urllib raise many types; all mean "not downloaded"
        raise WeightsError(
            f"could not download CLIP weights for model {model!r} with pretrained tag {pretrained!r}: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. "
            + _how_to_supply(model, pretrained, source)
        ) from None
    if not path or not Path(path).is_file():
        raise WeightsError(
            f"open_clip gave no weights file for model {model!r} with pretrained tag {pretrained!r}. "
            + _how_to_supply(model, pretrained, source)
        )
    return Path(path), "download"


def _cached_checkpoint(source: dict[str, Any]) -> Path | None:
    """A checkpoint already in the hub cache or open_clip's URL cache, found without network."""
    candidates = _hub_candidates(source)
    if candidates:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            for repo, filename in candidates:
                found = try_to_load_from_cache(repo_id=repo, filename=filename)
                if isinstance(found, str) and Path(found).is_file():
                    return Path(found)
    url = source.get("url") or ""
    if url:
        path = Path.home() / ".cache" / "clip" / os.path.basename(url)
        if path.is_file():
            return path
    return None


class ClipJudge(Judge):
    """CLIP through open_clip: uint8 N×3×H×W RGB in, the D-dimensional image embedding out.

    Args:
        model: an open_clip model name (``open_clip.list_models()``).
        pretrained: its pretrained tag (``open_clip.list_pretrained()``); sets the weights and the
            preprocessing. May be None when ``weights`` is given (open_clip's default preprocessing
            for the model is then used).
        weights: a checkpoint file, ``"random"`` (random-initialised, seed 0: tests and smoke runs
            only) or None to resolve the tag's weights (see the module notes).
        device: where the network runs; preprocessing runs on the CPU (PIL).
    """

    name: ClassVar[str] = "clip"
    outputs: ClassVar[tuple[str, ...]] = ("embedding",)
    # feature_dim stays None on the class: an instance sets its model's embedding width.
    weights_source: ClassVar[str] = (
        f"downloaded by open_clip into the Hugging Face cache on first use (default {DEFAULT_MODEL} / "
        f"{DEFAULT_PRETRAINED}), or ${WEIGHTS_DIR_ENV}/open_clip-<model>-<tag>.safetensors, or judge "
        "option weights=PATH"
    )
    python_modules: ClassVar[tuple[str, ...]] = ("open_clip",)
    install_hint: ClassVar[str] = "pip install 'tokbench[semantic]'"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        pretrained: str | None = DEFAULT_PRETRAINED,
        weights: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        open_clip = _open_clip()
        random_weights = isinstance(weights, str) and weights == RANDOM_WEIGHTS
        check_model_and_tag(model, pretrained, needs_tag=weights is None)
        self.model_name = model
        self.pretrained = pretrained
        source = open_clip.get_pretrained_cfg(model, pretrained) if pretrained is not None else {}
        #: Where this instance's weights were found: random, explicit, env, cache or download.
        self.resolved_from = RANDOM_WEIGHTS
        self.weights_sha256: str | None = None
        path: Path | None = None
        if not random_weights:
            explicit = Path(weights) if weights is not None else None
            path, self.resolved_from = resolve_clip_weights(model, pretrained or "(none)", explicit)
            self.weights_sha256 = file_sha256(path)
            pinned = _pinned_sha256(source)
            if pinned is not None and self.weights_sha256 != pinned:
                raise WeightsError(
                    f"CLIP weights {path} for {model} / {pretrained} have sha256 {self.weights_sha256}, "
                    f"expected {pinned}; remove or replace the file. "
                    + _how_to_supply(model, pretrained, source)
                )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            self.model = open_clip.create_model(
                model, pretrained=None, force_quick_gelu=bool(source.get("quick_gelu", False))
            )
        if path is not None:
            try:
                open_clip.load_checkpoint(self.model, str(path), strict=True, weights_only=True)
            except Exception as error:  # a wrong architecture or a corrupt file
                raise WeightsError(
                    f"could not load CLIP weights {path} into {model} ({pretrained}): "
                    f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                ) from None
        self.preprocess_config = _preprocess_config(open_clip, self.model, source)
        self.transform = open_clip.transform.image_transform_v2(
            open_clip.transform.PreprocessCfg(**self.preprocess_config), is_train=False
        )
        self.feature_dim = int(open_clip.get_model_config(model)["embed_dim"])
        self._classifiers: dict[tuple[tuple[str, ...], tuple[str, ...]], torch.Tensor] = {}
        self._tokenizer: Any = None
        self.requires_grad_(False)
        self.eval()
        self.to(device)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": JUDGE_VERSION,
            "open_clip_version": _open_clip().__version__,
            "model": self.model_name,
            "pretrained": self.pretrained,
            "weights": RANDOM_WEIGHTS if self.resolved_from == RANDOM_WEIGHTS else "file",
            "weights_sha256": self.weights_sha256,
            **({"random_seed": RANDOM_SEED} if self.resolved_from == RANDOM_WEIGHTS else {}),
            "preprocess": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.preprocess_config.items()
            },
            "output": "encode_image, not normalised",
        }

    @property
    def device(self) -> torch.device:
        """Where the network's parameters are."""
        return next(self.model.parameters()).device

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """open_clip's evaluation transform of a uint8 N×3×H×W batch: the network input, on the device."""
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
            got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
            raise ConfigError(f"clip judge: images must be a uint8 tensor, got {got}")
        if images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(f"clip judge: images must be N×3×H×W RGB, got shape {tuple(images.shape)}")
        arrays = images.detach().cpu().permute(0, 2, 3, 1).numpy()
        batch = [self.transform(Image.fromarray(np.ascontiguousarray(a), mode="RGB")) for a in arrays]
        return torch.stack(batch).to(self.device)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The image embedding of a uint8 batch, float32, N×D."""
        return {"embedding": self.model.encode_image(self.prepare(images)).float()}

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text embeddings (not normalised) of ``prompts``, float32, N×D."""
        if not prompts:
            raise ConfigError("clip judge: encode_text needs at least one prompt")
        if self._tokenizer is None:
            self._tokenizer = _open_clip().get_tokenizer(self.model_name)
        parts = []
        for start in range(0, len(prompts), TEXT_BATCH):
            tokens = self._tokenizer(list(prompts[start : start + TEXT_BATCH])).to(self.device)
            parts.append(self.model.encode_text(tokens).float())
        return torch.cat(parts)

    def zero_shot_classifier(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """C×D class embeddings: per class, the normalised mean of its normalised prompt embeddings.

        Computed once per (class names, templates), kept on the judge and cached on disk under
        ``$TOKBENCH_CACHE/clip-classifiers`` (keyed by the judge, the device type, the names and the
        templates): 1,000 ImageNet classes × 80 templates take hours on a CPU.
        """
        key = (tuple(class_names), tuple(templates))
        if key not in self._classifiers:
            if not class_names or not templates:
                raise ConfigError("clip judge: a zero-shot classifier needs class names and templates")
            digest = sha256_json(
                {"judge": self.describe(), "device": self.device.type, "classes": key[0], "templates": key[1]}
            )
            path = cache_dir() / "clip-classifiers" / f"{digest}.safetensors"
            cached = load_safetensors_cache(path, "CLIP zero-shot classifier cache file") or {}
            if "classifier" in cached:
                self._classifiers[key] = cached["classifier"]
            else:
                self._classifiers[key] = self._build_classifier(class_names, templates)
                _save_atomically(path, {"classifier": self._classifiers[key]})
        return self._classifiers[key]

    def _build_classifier(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        rows = []
        for name in class_names:
            prompts = [template.format(name) for template in templates]
            embedded = torch.nn.functional.normalize(self.encode_text(prompts), dim=-1)
            rows.append(torch.nn.functional.normalize(embedded.mean(dim=0), dim=-1))
        return torch.stack(rows).cpu().contiguous()


def _save_atomically(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write a safetensors file through a temporary file; an unwritable cache only costs a recompute."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(path.parent, [".classifier-*.partial"])
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".classifier-", suffix=".partial")
        os.close(handle)
        try:
            save_file(tensors, temporary)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    except OSError as error:
        warnings.warn(f"could not cache a CLIP zero-shot classifier at {path}: {error}", stacklevel=3)


def _preprocess_config(open_clip: Any, model: torch.nn.Module, source: dict[str, Any]) -> dict[str, Any]:
    """The model's preprocessing config with the tag's overrides (mean, std, interpolation, resize)."""
    config = dict(open_clip.get_model_preprocess_cfg(model))
    merged = open_clip.transform.merge_preprocess_dict(config, source)
    merged["size"] = config["size"]  # the network's input size wins, as in open_clip.create_model
    return {key: merged[key] for key in config}


__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRETRAINED",
    "RANDOM_WEIGHTS",
    "ClipJudge",
    "check_model_and_tag",
    "resolve_clip_weights",
    "weights_filename",
]
