"""Strict loading of diffusers weights: which file, which keys, and nothing left unset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tokbench.errors import WeightsError
from tokbench.models.diffusers_loading import load_state_strictly, read_config


def _meta_linear() -> torch.nn.Module:
    with torch.device("meta"):
        return torch.nn.Linear(3, 2)


def test_read_config_names_the_file_and_the_model(tmp_path: Path) -> None:
    good = tmp_path / "config.json"
    good.write_text('{"latent_channels": 4}')
    assert read_config("sd-vae x", good) == {"latent_channels": 4}
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(WeightsError, match=r"sd-vae x: cannot read .*broken\.json"):
        read_config("sd-vae x", broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(WeightsError, match="does not hold a JSON object"):
        read_config("sd-vae x", listed)


def test_a_matching_state_loads_as_float32() -> None:
    state = {"weight": torch.ones(2, 3, dtype=torch.float16), "bias": torch.zeros(2, dtype=torch.float16)}
    model = load_state_strictly(_meta_linear(), state, "m", (Path("w.safetensors"),), "a linear", "hint")
    assert model.weight.dtype == torch.float32 and not model.weight.is_meta
    assert torch.equal(model(torch.ones(1, 3)), torch.full((1, 2), 3.0))


def test_missing_unexpected_and_misshapen_keys_are_listed() -> None:
    state = {"weight": torch.ones(3, 3), "extra": torch.ones(1)}
    with pytest.raises(WeightsError) as caught:
        load_state_strictly(_meta_linear(), state, "m v", (Path("w.safetensors"),), "a linear", "Use X.")
    message = str(caught.value)
    assert message.startswith("m v: w.safetensors is not a linear [")
    assert "missing: bias (1)" in message and "unexpected: extra (1)" in message
    assert "wrong shape: weight (1)" in message and message.endswith("Use X.")
