"""CSV exports that spreadsheets cannot turn into formulas: the one writer of every tokbench CSV.

Spreadsheet programs run a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (and a
leading tab or carriage return can hide such a start), so a model spec, dataset name or note taken
from a record could run a command when a CSV export is opened (CSV/formula injection). Every CSV
tokbench writes (the site's table exports and ``tokbench leaderboard --format csv``) goes through
``frame_to_csv``, which applies ``spreadsheet_safe`` to each cell.

Numbers stay numbers: a numeric cell (int or float, including -3.2 and -inf) is written as it is,
and so is text that is exactly a plain decimal number (``-3.2``, ``+3``, ``-1e-05``, ``-inf``),
because a spreadsheet reads it as that number, never as a formula. Any other text starting with one
of those characters gets a leading apostrophe, which spreadsheets show as text and do not evaluate.
"""

from __future__ import annotations

import re

import pandas as pd

#: First characters that make a spreadsheet evaluate a cell (or hide the character that does).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)


def spreadsheet_safe(value: object) -> object:
    """``value`` unless it is text a spreadsheet would run as a formula; then ``"'" + value``.

    Non-text values and text that is a plain decimal number (``-3.2``, ``+3``, ``-inf``) are returned
    unchanged; other text starting with ``= + - @``, tab or carriage return gets a leading ``'``.
    """
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def frame_to_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (no index), every cell and column name through ``spreadsheet_safe``."""
    safe = frame.map(spreadsheet_safe)
    safe.columns = [spreadsheet_safe(str(column)) for column in frame.columns]
    return safe.to_csv(index=False)
