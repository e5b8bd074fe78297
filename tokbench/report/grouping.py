"""Records grouped by protocol: the one grouping of the offline report and the leaderboard site."""

from __future__ import annotations

import re
from collections import defaultdict

from tokbench.records import created_at_to_datetime


def version_key(text: str) -> tuple:
    """A sort key for suite versions: numeric parts numerically ("10" after "9")."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-_]", text))


def protocol_groups(records: list[dict]) -> list[list[dict]]:
    """Records split by suite and protocol hash, latest first: highest suite version, then newest record.

    Only records of one group are comparable (ranked, plotted together); each group keeps store order.
    """
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["suite"]["name"], record["protocol_hash"])].append(record)

    def latest(item: tuple[tuple[str, str], list[dict]]) -> tuple:
        (suite, digest), members = item
        newest = max(created_at_to_datetime(r["created_at"]) for r in members)
        return max(version_key(r["suite"]["version"]) for r in members), newest, suite, digest

    return [members for _, members in sorted(groups.items(), key=latest, reverse=True)]
