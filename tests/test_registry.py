"""The generic registry: lazy entries, duplicates, misses with suggestions, base checks."""

from __future__ import annotations

import sys

import pytest

from tokbench.errors import RegistryError
from tokbench.registry import Registry


class Base:
    pass


class Child(Base):
    pass


def test_lazy_entry_is_imported_on_first_get_only() -> None:
    from tokbench.adapters.base import Tokenizer

    sys.modules.pop("tokbench.models.codecs", None)
    registry: Registry[type] = Registry("thing", base=Tokenizer)
    registry.register("codec", "tokbench.models.codecs:Jpeg")
    assert registry.names() == ["codec"]
    assert "tokbench.models.codecs" not in sys.modules
    assert registry.get("codec").__name__ == "Jpeg"
    assert "tokbench.models.codecs" in sys.modules


def test_wrong_base_is_refused() -> None:
    registry: Registry[type] = Registry("thing", base=Base)
    registry.register("codec", "tokbench.models.codecs:Jpeg")
    with pytest.raises(RegistryError, match="not a subclass of Base"):
        registry.get("codec")


def test_duplicate_key_with_another_target_raises() -> None:
    registry: Registry[type] = Registry("thing")
    registry.register("child", Child)
    registry.register("child", Child)  # same target: fine
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("child", Base)


def test_miss_lists_suggestions_and_available_names() -> None:
    registry: Registry[type] = Registry("model")
    registry.register("jpeg", Child)
    registry.register("webp", Child)
    with pytest.raises(RegistryError) as info:
        registry.get("jpg")
    message = str(info.value)
    assert "unknown model 'jpg'" in message
    assert "Did you mean jpeg" in message
    assert "Available: jpeg, webp" in message


@pytest.mark.parametrize("key", ["Jpeg", "has space", "", "a/b", "-x"])
def test_invalid_keys_are_refused(key: str) -> None:
    with pytest.raises(RegistryError, match="invalid"):
        Registry("thing").register(key, Child)


def test_unregister_removes_an_entry_so_the_key_can_be_reused() -> None:
    registry: Registry[type] = Registry("thing")
    registry.register("child", Child)
    registry.unregister("child")
    assert registry.names() == []
    registry.register("child", Base)  # no longer a conflict
    assert registry.get("child") is Base
    with pytest.raises(RegistryError, match="unknown thing 'absent'"):
        registry.unregister("absent")
