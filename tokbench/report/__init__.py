"""Offline HTML reports of leaderboard records."""

from tokbench.report.page import write_report

__all__ = ["write_report"]
