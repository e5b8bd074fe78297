"""Loading diffusers models from resolved weight files: config checks and strict state-dict loading.

Shared by the AutoencoderKL (``sd-vae``), VQModel (``diffusers-vq``) and DiT adapters, so every one of
them refuses a wrong file the same way: which file, which keys are missing, unexpected or misshapen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tokbench.errors import WeightsError


def read_config(owner: str, config_file: Path) -> Mapping[str, Any]:
    """The JSON object in ``config_file``; ``owner`` (e.g. ``"sd-vae sdxl"``) names the model in errors."""
    try:
        found = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{owner}: cannot read {config_file}: {exc}") from None
    if not isinstance(found, Mapping):
        raise WeightsError(f"{owner}: {config_file} does not hold a JSON object")
    return found


def load_state_strictly(
    model: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    owner: str,
    files: tuple[Path, ...],
    what: str,
    how_to_supply: str,
) -> torch.nn.Module:
    """Load ``state`` into ``model`` (built on the meta device) as float32, every key and shape matching.

    ``what`` names the expected file content in errors (e.g. "a diffusers VQModel state dict of the
    f4 architecture"); ``how_to_supply`` ends them.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''} ({len(keys)})"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise WeightsError(
            f"{owner}: {', '.join(map(str, files))} is not {what} [{detail}]. " + how_to_supply
        )
    model.load_state_dict({k: v.float().contiguous() for k, v in state.items()}, strict=True, assign=True)
    left = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:  # a tensor outside the state dict
        raise WeightsError(f"{owner}: the weights leave {', '.join(left[:3])} unset")
    return model
