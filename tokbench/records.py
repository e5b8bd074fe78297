"""Leaderboard records: validation against the JSON schema, identity, and JSON (de)serialisation.

Metric values that are infinite (a lossless codec's PSNR) are written as the JSON strings ``"inf"``
and ``"-inf"``; NaN is never allowed, and no other field may be non-finite. ``record_from_json``
returns the record exactly as the file holds it, strings included; readers turn a metric value into a
float with ``metric_value`` (or all of them with ``record_metrics``). ``validate_record`` accepts
either form, so a producer may put ``float("inf")`` in a record it is about to write.

Readers bound what they accept, so a hostile file fails fast with its name and the field: at most
``MAX_RECORD_BYTES`` bytes, ``MAX_NESTING`` levels of arrays and objects, integers of at most
``MAX_INTEGER_DIGITS`` digits.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import reprlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator

from tokbench.errors import StoreError

SCHEMA_RESOURCE = "schema/record.schema.json"
MAX_RECORD_BYTES = 32 * 1024 * 1024
MAX_NESTING = 64
MAX_INTEGER_DIGITS = 40
_STRING_LITERAL = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_INF_TO_TEXT = {math.inf: "inf", -math.inf: "-inf"}
_TEXT_TO_INF = {"inf": math.inf, "-inf": -math.inf}

_CREATED_AT = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})")
_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer"}
_short_repr = reprlib.Repr()
_short_repr.maxstring = 60
_short_repr.maxother = 60


@dataclass(frozen=True)
class _NonFiniteLiteral:
    """A NaN or Infinity literal, or an overflowing number, read from a record file."""

    text: str


@dataclass(frozen=True)
class _OversizedInteger:
    """An integer literal of more than ``MAX_INTEGER_DIGITS`` digits, read from a record file."""

    digits: int


def make_record_id(suite: str, protocol_hash: str, model_spec: str) -> str:
    """The first 20 hex characters of sha256 over ``suite``, ``protocol_hash`` and ``model_spec``."""
    text = f"{suite}\n{protocol_hash}\n{model_spec}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def validate_record(record: dict, where: str = "record") -> None:
    """Raise StoreError naming ``where``, the field and the reason unless ``record`` is a valid record."""
    if not isinstance(record, dict):
        raise StoreError(f"{where}: a record must be a JSON object, got {_json_type_name(record)}")
    problem = _find_non_json_value(record, ())
    if problem is not None:
        path, reason = problem
        raise StoreError(f"{where}: {_format_path(path)}: {reason}")
    error = best_match(_record_validator().iter_errors(record))
    if error is not None:
        raise StoreError(_schema_error_message(error, record, where))
    try:
        created_at_to_datetime(record["created_at"])
    except StoreError as parse_error:
        raise StoreError(f"{where}: created_at: {parse_error}") from None
    expected_id = make_record_id(record["suite"]["name"], record["protocol_hash"], record["model"]["spec"])
    if record["record_id"] != expected_id:
        raise StoreError(
            f"{where}: record_id: {record['record_id']!r} does not match the record, expected "
            f"{expected_id!r} = make_record_id(suite.name, protocol_hash, model.spec)"
        )


def record_to_json(record: dict, where: str = "record") -> str:
    """Validate ``record`` and return it as pretty JSON with sorted keys, infinities as ``"inf"``."""
    validate_record(record, where)
    metrics = {key: _metric_to_json(value) for key, value in record["metrics"].items()}
    return json.dumps({**record, "metrics": metrics}, indent=2, sort_keys=True, allow_nan=False) + "\n"


def record_from_json(text: str, where: str) -> dict:
    """Parse and validate one record; NaN/Infinity literals, overflowing numbers, integers of more than
    ``MAX_INTEGER_DIGITS`` digits, nesting deeper than ``MAX_NESTING`` and duplicate keys fail."""
    _check_nesting(text, where)
    try:
        record = json.loads(
            text,
            parse_constant=_NonFiniteLiteral,
            parse_float=_parse_finite_float,
            parse_int=_parse_bounded_int,
            object_pairs_hook=functools.partial(_unique_keys_object, where=where),
        )
    except json.JSONDecodeError as error:
        raise StoreError(
            f"{where}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    validate_record(record, where)
    return record


def read_record_file(path: Path) -> dict:
    """Read, parse and validate the record stored in ``path`` (at most ``MAX_RECORD_BYTES`` bytes)."""
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise StoreError(
                f"{path}: record file of {size:,} bytes is larger than the {MAX_RECORD_BYTES:,} bytes "
                "a record may have"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise StoreError(f"{path}: cannot read record file: {error}") from None
    return record_from_json(text, where=str(path))


def metric_value(value: float | str) -> float:
    """A metric value as stored (a number, ``"inf"`` or ``"-inf"``) to a float."""
    if isinstance(value, str) and value in _TEXT_TO_INF:
        return _TEXT_TO_INF[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    raise StoreError(f"metric value {value!r} is not a number, 'inf' or '-inf'")


def record_metrics(record: dict) -> dict[str, float]:
    """Every metric of a validated record as a float, infinities included."""
    return {key: metric_value(value) for key, value in record["metrics"].items()}


def created_at_to_datetime(text: str) -> datetime:
    """An RFC 3339 timestamp with a UTC offset (``2026-01-31T12:00:00Z``) to an aware datetime."""
    match = _CREATED_AT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise StoreError(f"{text!r} is not an RFC 3339 date-time with offset, e.g. '2026-01-31T12:00:00Z'")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    microsecond = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        if offset == "Z":
            tzinfo = timezone.utc
        else:
            sign = -1 if offset[0] == "-" else 1
            tzinfo = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), microsecond, tzinfo
        )
    except ValueError as error:
        raise StoreError(f"{text!r} is not a valid date-time: {error}") from None


@functools.cache
def _record_validator() -> Validator:
    schema = json.loads(resources.files("tokbench").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _find_non_json_value(value: Any, path: tuple[str | int, ...]) -> tuple[tuple, str] | None:
    """The path and reason of the first value that plain, finite JSON cannot hold, else None."""
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                return path, f"key {key!r} is a {type(key).__name__}; object keys must be strings"
        children: Iterable[tuple[str | int, Any]] = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return _scalar_problem(value, path)
    for key, item in children:
        problem = _find_non_json_value(item, (*path, key))
        if problem is not None:
            return problem
    return None


def _scalar_problem(value: Any, path: tuple[str | int, ...]) -> tuple[tuple, str] | None:
    if isinstance(value, _OversizedInteger):
        return path, f"an integer of {value.digits:,} digits; at most {MAX_INTEGER_DIGITS} are allowed"
    if isinstance(value, _NonFiniteLiteral):
        return path, f"{value.text} is not allowed in a record file; write infinite metrics as 'inf'/'-inf'"
    if isinstance(value, float) and math.isnan(value):
        return path, "NaN is not allowed; leave the metric out or fix its computation"
    if isinstance(value, float) and math.isinf(value) and not (len(path) == 2 and path[0] == "metrics"):
        return path, f"{value} is not allowed; only metric values may be infinite"
    if value is not None and not isinstance(value, (str, int, float)):
        return path, f"a {type(value).__name__} is not a JSON value; convert it to float, int, str or list"
    return None


def _schema_error_message(error: ValidationError, record: dict, where: str) -> str:
    path = tuple(error.absolute_path)
    if error.validator == "required":
        missing = next(name for name in error.validator_value if name not in error.instance)
        return f"{where}: {_format_path((*path, missing))}: required field is missing"
    if "propertyNames" in error.schema_path:
        return (
            f"{where}: {_format_path((*path, error.instance))}: "
            f"key does not match the pattern {error.validator_value!r}"
        )
    value = _value_at(record, path)
    if len(path) == 2 and path[0] == "metrics":
        reason = f"expected a number or the string 'inf' or '-inf', got {_describe(value)}"
    elif error.validator == "type":
        reason = f"expected {error.validator_value}, got {_describe(value)}"
    elif error.validator == "enum":
        reason = f"expected one of {error.validator_value}, got {_describe(value)}"
    elif error.validator == "const":
        reason = f"expected {error.validator_value!r}, got {_describe(value)}"
    elif error.validator == "pattern":
        reason = f"{_short_repr.repr(value)} does not match the pattern {error.validator_value!r}"
    else:
        reason = " ".join(error.message.split())[:200]
    return f"{where}: {_format_path(path)}: {reason}"


def _value_at(record: dict, path: tuple) -> Any:
    value: Any = record
    for part in path:
        value = value[part]
    return value


def _format_path(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "number"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    return f"{_json_type_name(value)} {_short_repr.repr(value)}"


def _metric_to_json(value: float | str) -> float | str:
    if isinstance(value, float) and math.isinf(value):
        return _INF_TO_TEXT[value]
    return value


def _parse_finite_float(text: str) -> float | _NonFiniteLiteral:
    value = float(text)
    return _NonFiniteLiteral(text) if math.isinf(value) else value


def _parse_bounded_int(text: str) -> int | _OversizedInteger:
    digits = len(text.lstrip("-"))
    return _OversizedInteger(digits) if digits > MAX_INTEGER_DIGITS else int(text)


def _check_nesting(text: str, where: str) -> None:
    """Raise StoreError (naming the line) if arrays and objects nest deeper than ``MAX_NESTING``; the
    parser would otherwise recurse once per level. Brackets inside strings do not count."""
    cleaned = _STRING_LITERAL.sub(b'""', text.encode("utf-8", "surrogatepass"))  # keeps line breaks
    data = np.frombuffer(cleaned, np.uint8)
    steps = np.isin(data, _OPENERS).astype(np.int64) - np.isin(data, _CLOSERS).astype(np.int64)
    depth = np.cumsum(steps)
    if depth.size and int(depth.max()) > MAX_NESTING:
        offset = int(np.argmax(depth > MAX_NESTING))
        line = cleaned[:offset].count(b"\n") + 1
        raise StoreError(
            f"{where}: arrays and objects nest deeper than {MAX_NESTING} levels (from line {line}); "
            "a record is never this deep"
        )


_OPENERS = np.frombuffer(b"[{", np.uint8)
_CLOSERS = np.frombuffer(b"]}", np.uint8)


def _unique_keys_object(pairs: list[tuple[str, Any]], where: str) -> dict:
    record: dict = {}
    for key, value in pairs:
        if key in record:
            raise StoreError(f"{where}: key {key!r} appears twice in one JSON object")
        record[key] = value
    return record
