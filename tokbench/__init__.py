"""tokbench: paper-grade evaluation of visual tokenizers, image generators and visual-token pruners.

Public API: ``evaluate`` / ``evaluate_sweep``, the adapter contracts ``Tokenizer``, ``Generator``,
``Pruner`` with ``Encoded`` and ``register_model``, and the error root ``TokbenchError``. The
evaluation API is imported on first use, so ``import tokbench`` stays light.
"""

from typing import Any

from tokbench.adapters import Encoded, Generator, Pruner, Tokenizer, register_model
from tokbench.errors import TokbenchError
from tokbench.provenance import tokbench_version

__version__ = tokbench_version()

_LAZY = {"RunResult", "evaluate", "evaluate_sweep"}

__all__ = [
    "Encoded",
    "Generator",
    "Pruner",
    "RunResult",
    "TokbenchError",
    "Tokenizer",
    "__version__",
    "evaluate",
    "evaluate_sweep",
    "register_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from tokbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'tokbench' has no attribute {name!r}")
