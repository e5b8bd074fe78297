"""The ``gen`` suite's settings (``settings:`` in ``tasks/gen.yaml``), validated, and what follows from
them: which class and which seed each sample gets.

Sample ``i`` (0 … N-1) is drawn with the per-sample seed ``sample_seed(run_seed, i)`` (the first 63 bits
of a sha256), so an image does not depend on batching, sharding or the number of processes. Its class
label is ``i mod num_classes`` with ``class_order: round-robin`` (every shard then covers the classes
evenly) or ``i // (N / num_classes)`` with ``class_order: blocked`` (all samples of class 0 first).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from typing import Any

from tokbench.errors import ConfigError

CLASS_ORDERS = ("round-robin", "blocked")
#: Bump when the seed derivation or the class order changes (it enters the protocol).
SEED_SCHEME = "tokbench-gen-seed/1"


@dataclass(frozen=True)
class GenSettings:
    """How many samples of which classes, in what order, written in shards of what size.

    ``reference`` names the reference batch (``.npz``) when ``--reference`` is not given.
    """

    num_samples: int = 50_000
    num_classes: int = 1000
    class_order: str = "round-robin"
    shard_size: int = 1000
    reference: str | None = None

    def __post_init__(self) -> None:
        for name in ("num_samples", "num_classes", "shard_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"gen suite: settings.{name} must be a positive integer, got {value!r}")
        if self.class_order not in CLASS_ORDERS:
            raise ConfigError(
                f"gen suite: settings.class_order must be one of {', '.join(CLASS_ORDERS)}, "
                f"got {self.class_order!r}"
            )
        if self.num_samples % self.num_classes:
            raise ConfigError(
                f"gen suite: the number of samples ({self.num_samples}) is not divisible by the class count "
                f"({self.num_classes}); every class needs the same number of samples, e.g. "
                f"--num-samples {max(1, self.num_samples // self.num_classes) * self.num_classes}"
            )
        if self.reference is not None and (not isinstance(self.reference, str) or not self.reference):
            raise ConfigError(f"gen suite: settings.reference must be a file name, got {self.reference!r}")

    @classmethod
    def from_suite(cls, settings: dict[str, Any], num_samples: int | None = None) -> GenSettings:
        """Validated settings from a suite's ``settings:`` mapping; ``num_samples`` overrides N."""
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(settings) - set(allowed))
        if unknown:
            raise ConfigError(
                f"gen suite: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
            )
        values = dict(settings)
        if num_samples is not None:
            values["num_samples"] = num_samples
        return cls(**values)

    @property
    def per_class(self) -> int:
        """Samples of each class."""
        return self.num_samples // self.num_classes

    @property
    def num_shards(self) -> int:
        return -(-self.num_samples // self.shard_size)

    def shard_range(self, shard: int) -> range:
        """Sample indices of shard ``shard`` (the last one may be shorter)."""
        start = shard * self.shard_size
        return range(start, min(start + self.shard_size, self.num_samples))

    def class_of(self, index: int) -> int:
        """The class label of sample ``index``."""
        if self.class_order == "round-robin":
            return index % self.num_classes
        return index // self.per_class

    def describe(self, seed: int) -> dict[str, Any]:
        """The sampling protocol of a run with run seed ``seed`` (every value changes the numbers)."""
        described = {k: v for k, v in asdict(self).items() if k != "reference"}
        return {**described, "per_class": self.per_class, "seed": seed, "seed_scheme": SEED_SCHEME}


def sample_seed(run_seed: int, index: int) -> int:
    """The seed of sample ``index`` in a run seeded ``run_seed``: 63 bits of a sha256 (batching-free)."""
    digest = hashlib.sha256(f"{SEED_SCHEME}:{run_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
