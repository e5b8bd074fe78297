"""Model specs: parsing, typed arguments, plugins from files and modules, registration."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from tokbench.adapters import MODELS, Tokenizer, build_model, register_model
from tokbench.adapters.spec import parse_model_spec
from tokbench.errors import ConfigError, RegistryError


def test_parse_name_with_arguments_containing_colons() -> None:
    spec = parse_model_spec("jpeg:quality=30,subsampling=4:4:4")
    assert spec.target == "jpeg"
    assert spec.raw_args == {"quality": "30", "subsampling": "4:4:4"}
    assert not spec.is_plugin


def test_parse_plugin_targets() -> None:
    assert parse_model_spec("dir/my_tok.py:MyTok").target == "dir/my_tok.py:MyTok"
    spec = parse_model_spec("pkg.mod:MyTok:size=3")
    assert (spec.target, spec.raw_args, spec.is_plugin) == ("pkg.mod:MyTok", {"size": "3"}, True)


def test_name_colon_word_is_a_module_plugin_and_fails_to_import() -> None:
    with pytest.raises(ConfigError, match="cannot import 'jpeg'"):
        build_model("jpeg:quality")


@pytest.mark.parametrize("bad", ["", "a:b:c:d", "jpeg:quality=1,quality=2", ":x"])
def test_malformed_specs_raise(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_model_spec(bad)


def test_arguments_are_typed_and_resolved_with_defaults() -> None:
    built = build_model("jpeg:quality=30")
    assert built.adapter.quality == 30
    assert built.arguments == {"quality": 30, "subsampling": "4:2:0"}
    assert built.spec == "jpeg:quality=30,subsampling=4:2:0"
    assert build_model("jpeg:subsampling=4:2:0,quality=30").spec == built.spec


def test_unknown_argument_names_the_accepted_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) qualty.*accepted: quality, subsampling"):
        build_model("jpeg:qualty=30")


def test_badly_typed_argument() -> None:
    with pytest.raises(ConfigError, match="quality='high' is not a valid int"):
        build_model("jpeg:quality=high")


def test_unknown_model_suggests() -> None:
    with pytest.raises(RegistryError, match="Did you mean jpeg"):
        build_model("jpg")


PLUGIN = textwrap.dedent(
    """
    import torch
    from tokbench import Encoded, Tokenizer

    class Halve(Tokenizer):
        def __init__(self, scale: float = 0.5, flag: bool = False):
            self.scale = scale
            self.flag = flag

        def encode(self, images):
            return Encoded(payload=images * self.scale)

        def decode(self, encoded):
            return encoded.payload

    class NotAnAdapter:
        pass
    """
)


def test_plugin_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "my_tok.py"
    path.write_text(PLUGIN)
    built = build_model(f"{path}:Halve:scale=0.25,flag=yes")
    assert isinstance(built.adapter, Tokenizer)
    assert (built.adapter.scale, built.adapter.flag) == (0.25, True)
    with pytest.raises(ConfigError, match="not a tokbench adapter"):
        build_model(f"{path}:NotAnAdapter")
    with pytest.raises(ConfigError, match="defines no 'Missing'"):
        build_model(f"{path}:Missing")
    with pytest.raises(ConfigError, match="does not exist"):
        build_model(f"{tmp_path / 'nope.py'}:Halve")


def test_plugin_from_a_module() -> None:
    built = build_model("tokbench.models.codecs:WebP:quality=40")
    assert built.adapter.quality == 40


def test_register_model_decorator() -> None:
    @register_model("test-halving")
    class Halving(Tokenizer):
        def encode(self, images):
            raise NotImplementedError

        def decode(self, encoded):
            raise NotImplementedError

    assert "test-halving" in MODELS.names()
    assert isinstance(build_model("test-halving").adapter, Halving)


WEIGHTED = textwrap.dedent(
    """
    import hashlib
    from pathlib import Path
    from tokbench import Encoded, Tokenizer

    class Weighted(Tokenizer):
        def __init__(self, size: int = 2, weights: str | None = None):
            self.size = size
            self.digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest() if weights else None

        @property
        def weights_sha256(self):
            return self.digest

        def encode(self, images):
            return Encoded(payload=images)

        def decode(self, encoded):
            return encoded.payload
    """
)


def test_weights_location_is_recorded_but_identity_is_the_hash(tmp_path: Path) -> None:
    from tokbench.api import with_arguments

    (tmp_path / "weighted.py").write_text(WEIGHTED)
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"one")
    second.write_bytes(b"two")
    target = f"{tmp_path / 'weighted.py'}:Weighted"
    built_a = build_model(with_arguments(target, {"weights": str(first)}))
    built_b = build_model(with_arguments(f"{target}:size=2", {"weights": str(second)}))
    assert built_a.arguments["weights"] == str(first)
    source = hashlib.sha256(WEIGHTED.encode()).hexdigest()[:12]  # a plugin is its class and its code
    assert built_a.spec == f"Weighted#{source}:size=2@{built_a.adapter.weights_sha256[:12]}"
    assert str(tmp_path / "a.bin") not in built_a.spec
    assert built_a.spec != built_b.spec
    with pytest.raises(ConfigError, match="unknown argument\\(s\\) weights"):
        build_model(with_arguments("jpeg", {"weights": str(first)}))
