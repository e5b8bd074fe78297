"""The model registry and ``build_model``: from a spec string to a constructed adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tokbench.adapters.base import Adapter
from tokbench.adapters.spec import (
    canonical_spec,
    coerce_arguments,
    load_plugin,
    parse_model_spec,
    resolved_arguments,
)
from tokbench.errors import ConfigError, TokbenchError, describe_exception
from tokbench.registry import Registry, import_attr

A = TypeVar("A", bound=type[Adapter])

MODELS: Registry[type[Adapter]] = Registry("model", base=Adapter, entry_point_group="tokbench.models")

_BUILTIN_MODELS = {
    "identity": "tokbench.models.codecs:Identity",
    "resize": "tokbench.models.codecs:Resize",
    "jpeg": "tokbench.models.codecs:Jpeg",
    "webp": "tokbench.models.codecs:WebP",
    "titok": "tokbench.models.titok:TiTok",
    "sd-vae": "tokbench.models.diffusers_vae:DiffusersVae",
    "dit": "tokbench.models.dit:DiT",  # class-conditional generator (suite gen)
    "prefix-dct": "tokbench.models.prefix_dct:PrefixDct",
    "diffusers-vq": "tokbench.models.diffusers_vq:DiffusersVq",
    "chameleon-vq": "tokbench.models.transformers_vq:ChameleonVq",
    "emu3-vq": "tokbench.models.transformers_vq:Emu3Vq",
    "janus-vq": "tokbench.models.transformers_vq:JanusVq",
    "dc-ae": "tokbench.models.diffusers_autoencoder_zoo:DcAe",
    "flux2-vae": "tokbench.models.diffusers_autoencoder_zoo:Flux2Vae",
    "qwen-image-vae": "tokbench.models.diffusers_autoencoder_zoo:QwenImageVae",
    "hunyuan-image-vae": "tokbench.models.diffusers_autoencoder_zoo:HunyuanImageVae",
    "rae": "tokbench.models.diffusers_autoencoder_zoo:Rae",
    "diffusers-autoencoder": "tokbench.models.diffusers_autoencoders:DiffusersAutoencoder",
    "llamagen-vq": "tokbench.models.llamagen_vq:LlamaGenVQ",
    "var-vqvae": "tokbench.models.var_vqvae:VarVqvae",
    "open-magvit2": "tokbench.models.open_magvit2:OpenMagvit2",
    # video tokenizers: real codecs (PyAV) and weightless baselines
    "h264": "tokbench.models.video_codecs:H264",
    "h265": "tokbench.models.video_codecs:H265",
    "av1": "tokbench.models.video_codecs:Av1",
    "video-identity": "tokbench.models.video_codecs:VideoIdentity",
    "video-resize": "tokbench.models.video_codecs:VideoResize",
    # video VAEs through diffusers (any supported class by repo; named TokBench-Video releases)
    "diffusers-video-autoencoder": "tokbench.models.video_vaes:DiffusersVideoAutoencoder",
    "cogvideox-vae": "tokbench.models.video_vae_zoo:CogVideoXVae",
    "hunyuan-video-vae": "tokbench.models.video_vae_zoo:HunyuanVideoVae",
    "cosmos-vae": "tokbench.models.video_vae_zoo:CosmosVae",
    "wan-vae": "tokbench.models.video_vae_zoo:WanVae",
    # outputs made elsewhere, scored from files
    "reconstructions": "tokbench.models.files:FileReconstructions",
    "samples": "tokbench.models.files:FileSamples",
    # VLM visual-token pruners (suite prune; tokbench.pruning)
    "none": "tokbench.pruning.pruners:NoPruning",
    "random": "tokbench.pruning.pruners:RandomPruning",
    "pool": "tokbench.pruning.pruners:Pool",
    "cls-attn": "tokbench.pruning.pruners:ClsAttention",
    "divprune": "tokbench.pruning.pruners:DivPrune",
    "visionzip": "tokbench.pruning.pruners:VisionZip",
    "tome": "tokbench.pruning.pruners:ToMe",
    "tome-vit": "tokbench.pruning.pruners:ToMeViT",  # ToMe inside every ViT block (suite vit-reduction)
    "fastv": "tokbench.pruning.pruners:FastV",
    "fastv-official": "tokbench.pruning.pruners:FastVOfficial",
    "pdrop": "tokbench.pruning.pruners:PyramidDrop",
}
for _key, _target in _BUILTIN_MODELS.items():
    MODELS.register(_key, _target)

#: Names whose adapter depends on the kind of the suite (``build_model(spec, kind=...)``): outputs
#: made elsewhere are image files for image suites and video files for video suites.
_KIND_VARIANTS = {
    ("reconstructions", "video-tokenizer"): "tokbench.models.video_files:VideoFileReconstructions",
}


def register_model(name: str) -> Callable[[A], A]:
    """Class decorator: make an adapter available as ``name`` in specs and ``tokbench list``."""

    def decorate(cls: A) -> A:
        MODELS.register(name, cls)
        return cls

    return decorate


@dataclass(frozen=True)
class BuiltModel:
    """A constructed adapter with the provenance a record needs."""

    adapter: Adapter
    name: str
    spec: str
    arguments: dict[str, Any]
    #: Plugins only: where the class came from (path as given, sha256, distribution); not identity.
    source: dict[str, Any] | None = None


def build_model(model: str | Adapter, kind: str | None = None) -> BuiltModel:
    """Construct an adapter from a spec string, or describe an adapter instance the caller built.

    ``kind`` is the kind of the suite the model is for; it picks the adapter of a name that has one
    per kind (``reconstructions:DIR`` reads video files for ``video-tokenizer`` suites, else images).

    The canonical spec lists every identity argument (file locations excluded) and, for adapters
    with weights, ``@`` and the first 12 hex digits of the weights sha256. A plugin is named by its
    class and the sha256 of its source (``Class#<sha12>``), never by the spelling of its path.
    """
    if isinstance(model, Adapter):
        cls = type(model)
        name = f"{cls.__module__}:{cls.__qualname__}"
        return BuiltModel(adapter=model, name=name, spec=name, arguments={})
    parsed = parse_model_spec(_name_positional_argument(model))
    plugin = load_plugin(parsed.target) if parsed.is_plugin else None
    cls = plugin.cls if plugin is not None else _model_class(parsed.target, kind)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise ConfigError(
            f"model {parsed.target!r} is not a tokbench adapter: subclass tokbench.Tokenizer, "
            "tokbench.Generator or tokbench.Pruner"
        )
    given = coerce_arguments(cls, parsed.raw_args, model)
    try:
        adapter = cls(**given)
    except TokbenchError:
        raise
    except Exception as exc:  # the model's own constructor failed: one line naming file and line
        file = plugin.source["path"] if plugin is not None else None
        reason = describe_exception(exc, file)
        raise ConfigError(f"model {model!r} could not be constructed: {reason}") from exc
    arguments = resolved_arguments(cls, given)
    identity = {k: v for k, v in arguments.items() if k not in cls.location_arguments}
    spec = canonical_spec(plugin.identity if plugin is not None else parsed.target, identity)
    if adapter.weights_sha256:
        spec += f"@{adapter.weights_sha256[:12]}"
    name = plugin.name if plugin is not None else parsed.target
    source = plugin.source if plugin is not None else None
    return BuiltModel(adapter=adapter, name=name, spec=spec, arguments=arguments, source=source)


def _model_class(name: str, kind: str | None) -> type[Adapter]:
    """The registered class of ``name``, or its variant for suites of ``kind``."""
    variant = _KIND_VARIANTS.get((name, kind or ""))
    return MODELS.get(name) if variant is None else import_attr(variant)  # type: ignore[return-value]


def _name_positional_argument(spec: str) -> str:
    """``reconstructions:DIR[:k=v]`` → ``reconstructions:path=DIR[,k=v]`` for models that declare a
    ``positional_argument``; any other spec unchanged."""
    name, sep, rest = spec.strip().partition(":")
    if not sep or name not in MODELS.names() or not rest or "=" in rest.split(":")[0]:
        return spec
    positional = getattr(MODELS.get(name), "positional_argument", None)
    if positional is None:
        return spec
    value, _, arguments = rest.partition(":")
    return f"{name}:{positional}={value}" + (f",{arguments}" if arguments else "")
