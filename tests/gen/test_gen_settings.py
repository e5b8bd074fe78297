"""gen suite settings: validation, class order, shards and per-sample seeds."""

from __future__ import annotations

import pytest

from tokbench.errors import ConfigError
from tokbench.gen.settings import GenSettings, sample_seed
from tokbench.suites import load_suite


def test_the_builtin_suite_is_adm_shaped() -> None:
    settings = GenSettings.from_suite(load_suite("gen").settings)
    assert (settings.num_samples, settings.num_classes, settings.per_class) == (50_000, 1000, 50)
    assert settings.reference == "VIRTUAL_imagenet256_labeled.npz"
    assert settings.num_shards == 50


def test_num_samples_overrides_and_must_divide_by_the_classes() -> None:
    assert GenSettings.from_suite({"num_classes": 4}, num_samples=8).per_class == 2
    with pytest.raises(ConfigError, match=r"6.*not divisible by the class count \(4\).*--num-samples 4"):
        GenSettings.from_suite({"num_classes": 4}, num_samples=6)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"num_sample": 8}, "unknown setting.*num_sample"),
        ({"num_samples": 0}, "num_samples must be a positive integer"),
        ({"shard_size": True}, "shard_size must be a positive integer"),
        ({"class_order": "random"}, "class_order must be one of round-robin, blocked"),
        ({"reference": ""}, "reference must be a file name"),
    ],
)
def test_bad_settings_name_the_field(settings: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GenSettings.from_suite(settings)


def test_class_orders() -> None:
    robin = GenSettings(num_samples=6, num_classes=3, class_order="round-robin")
    blocked = GenSettings(num_samples=6, num_classes=3, class_order="blocked")
    assert [robin.class_of(i) for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert [blocked.class_of(i) for i in range(6)] == [0, 0, 1, 1, 2, 2]


def test_shards_cover_every_sample_once() -> None:
    settings = GenSettings(num_samples=8, num_classes=4, shard_size=3)
    ranges = [settings.shard_range(k) for k in range(settings.num_shards)]
    assert [list(r) for r in ranges] == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_sample_seeds_depend_on_run_seed_and_index_only() -> None:
    seeds = [sample_seed(0, i) for i in range(1000)]
    assert len(set(seeds)) == 1000 and all(0 <= s < 2**63 for s in seeds)
    assert sample_seed(0, 5) == seeds[5]
    assert sample_seed(1, 5) != seeds[5]


def test_describe_is_the_sampling_protocol() -> None:
    described = GenSettings(num_samples=8, num_classes=4, reference="x.npz").describe(seed=3)
    assert described["seed"] == 3 and described["per_class"] == 2
    assert "reference" not in described  # the reference enters the protocol by name and sha256
