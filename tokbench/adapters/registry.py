"""The model registry and ``build_model``: from a spec string to a constructed adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tokbench.adapters.base import Adapter
from tokbench.adapters.spec import (
    canonical_spec,
    coerce_arguments,
    load_plugin_class,
    parse_model_spec,
    resolved_arguments,
)
from tokbench.errors import ConfigError
from tokbench.registry import Registry

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
    "llamagen-vq": "tokbench.models.llamagen_vq:LlamaGenVQ",
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


def build_model(model: str | Adapter) -> BuiltModel:
    """Construct an adapter from a spec string, or describe an adapter instance the caller built.

    The canonical spec lists every identity argument (file locations excluded) and, for adapters
    with weights, ``@`` and the first 12 hex digits of the weights sha256.
    """
    if isinstance(model, Adapter):
        cls = type(model)
        name = f"{cls.__module__}:{cls.__qualname__}"
        return BuiltModel(adapter=model, name=name, spec=name, arguments={})
    parsed = parse_model_spec(model)
    cls = load_plugin_class(parsed.target) if parsed.is_plugin else MODELS.get(parsed.target)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise ConfigError(
            f"model {parsed.target!r} is not a tokbench adapter: subclass tokbench.Tokenizer, "
            "tokbench.Generator or tokbench.Pruner"
        )
    given = coerce_arguments(cls, parsed.raw_args, model)
    try:
        adapter = cls(**given)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {model!r} could not be constructed: {exc}") from exc
    arguments = resolved_arguments(cls, given)
    identity = {k: v for k, v in arguments.items() if k not in cls.location_arguments}
    spec = canonical_spec(parsed.target, identity)
    if adapter.weights_sha256:
        spec += f"@{adapter.weights_sha256[:12]}"
    return BuiltModel(adapter=adapter, name=parsed.target, spec=spec, arguments=arguments)
