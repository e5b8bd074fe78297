"""Adapter contracts, the model registry and spec parsing."""

from tokbench.adapters.base import Adapter, Encoded, Generator, Pruner, Tokenizer, VariableLengthTokenizer
from tokbench.adapters.registry import MODELS, BuiltModel, build_model, register_model

__all__ = [
    "MODELS",
    "Adapter",
    "BuiltModel",
    "Encoded",
    "Generator",
    "Pruner",
    "Tokenizer",
    "VariableLengthTokenizer",
    "build_model",
    "register_model",
]
