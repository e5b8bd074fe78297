"""The ``tokbench`` command: parses arguments, calls the API, displays results. No evaluation logic."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tokbench.cli_files import FILE_COMMANDS, add_file_commands
from tokbench.errors import ConfigError, TokbenchError, describe_exception
from tokbench.files import check_output_paths

#: What ``tokbench list`` lists (``tokbench.catalog.KINDS``).
LIST_KINDS = ("models", "metrics", "judges", "datasets", "preprocess", "tracks", "suites")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tokbench", description="Evaluate visual tokenizers, generators and token pruners."
    )
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an error (accepted anywhere on the line)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="evaluate a model on a suite and store the record")
    run.add_argument("--model", required=True, help="e.g. jpeg, jpeg:quality=30, path/to/file.py:MyTok")
    run.add_argument(
        "--weights", help="model weights file or hub snapshot dir (the model's weights argument)"
    )
    run.add_argument("--suite", default="recon", help="suite name or path to a suite YAML (default: recon)")
    run.add_argument("--data", help="dataset: embedded (default of most suites) or folder:PATH")
    run.add_argument("--limit", type=int, help="evaluate only the first N items")
    run.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps (default: cpu)")
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument(
        "--num-workers",
        type=int,
        metavar="N",
        help="processes that decode and preprocess images while the model runs (0: none; default: "
        "CPUs - 1, at most 8); the numbers do not depend on it",
    )
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="skip",
        help="skip: count unusable items and go on; fail: stop, store nothing",
    )
    run.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop the run when one model call (encode, decode, sample, a pruner's step) runs longer; "
        "on a GPU the time includes the call's queued kernels (default: no limit)",
    )
    run.add_argument(
        "--allow-nondeterministic",
        action="store_true",
        help="generator suites: add new shards to an earlier run's even if the determinism probe fails",
    )
    run.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="run once per value of a model argument (repeat for a grid)",
    )
    run.add_argument(
        "--store", type=Path, help="leaderboard store directory (default: $TOKBENCH_STORE or ./leaderboards)"
    )
    run.add_argument("--no-store", action="store_true", help="do not write to the store")
    run.add_argument("--force", action="store_true", help="re-run and replace an existing identical record")
    run.add_argument("--output-json", type=Path, help="also write the record(s) to this JSON file")
    run.add_argument(
        "--reference", type=Path, help="precomputed real-image statistics (.npz with mu, sigma) for FID"
    )
    run.add_argument("--num-samples", type=int, help="generator suites: samples to draw (default: suite's)")
    run.add_argument(
        "--work-dir", type=Path, help="generator suites: resumable shard directory (default: tokbench cache)"
    )
    run.add_argument(
        "--save-samples", action="store_true", help="generator suites: also dump samples in the work dir"
    )
    run.add_argument(
        "--save-reconstructions",
        type=Path,
        metavar="DIR",
        help="recon, video-recon: also write every reconstruction losslessly (PNG, FFV1 .mkv) under DIR; "
        "--model reconstructions:DIR then gives the same numbers",
    )
    run.add_argument(
        "--judge-option",
        action="append",
        default=[],
        metavar="ALIAS.KEY=VALUE",
        help="override a suite judge's option, e.g. clip.weights=random (recorded in the protocol)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    listing = commands.add_parser("list", help="list registered names")
    listing.add_argument("kind", choices=LIST_KINDS)
    listing.add_argument(
        "--details",
        action="store_true",
        help="models: one row per released variant (family, kind, tokens, codebook, hub id, verification)",
    )

    board = commands.add_parser("leaderboard", help="print the stored records")
    board.add_argument("--suite", help="only this suite")
    board.add_argument("--source", choices=("reproduced", "reported"))
    board.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="table: a compact ranked table per suite and protocol (120 columns); csv, json: every column",
    )
    board.add_argument(
        "--all-columns", action="store_true", help="table: print every column instead of the compact table"
    )
    board.add_argument("--store", type=Path)
    board.add_argument("--history", metavar="MODEL", help="one model's numbers across protocol versions")

    report = commands.add_parser("report", help="write a self-contained Plotly HTML report")
    report.add_argument("--suite", required=True)
    report.add_argument("--out", type=Path, required=True)
    report.add_argument("--store", type=Path)

    site = commands.add_parser("site", help="the static leaderboard site")
    site_commands = site.add_subparsers(dest="site_command", required=True)
    site_build = site_commands.add_parser("build", help="build the site from the store")
    site_build.add_argument("--out", type=Path, required=True, help="output directory (new, empty or a site)")
    site_build.add_argument("--store", type=Path)

    ingest = commands.add_parser("ingest", help="store the published numbers of a folder of CSV tables")
    ingest.add_argument("directory", type=Path, help="folder of the published CSV tables and README.md")
    ingest.add_argument(
        "--store", type=Path, help="leaderboard store directory (default: $TOKBENCH_STORE or ./leaderboards)"
    )
    ingest.add_argument("--created-at", help="RFC 3339 time stamped on new records (default: today 00:00Z)")
    ingest.add_argument("--force", action="store_true", help="replace records that already exist")

    add_file_commands(commands)

    commands.add_parser("doctor", help="show what is installed and what resolves offline")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in arguments:  # a top-level flag, accepted after the subcommand too
        arguments = ["--debug", *(a for a in arguments if a != "--debug")]
    args = build_parser().parse_args(arguments)
    handlers = {
        "run": _run,
        "list": _list,
        "leaderboard": _leaderboard,
        "report": _report,
        "site": _site,
        "ingest": _ingest,
        "doctor": _doctor,
        **FILE_COMMANDS,
    }
    try:
        return handlers[args.command](args)
    except TokbenchError as error:  # a user-facing error (a model's own exceptions included): one line
        if args.debug:
            traceback.print_exc()
        print(f"tokbench: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tokbench: interrupted; nothing was stored for the unfinished run", file=sys.stderr)
        return 130
    except Exception as error:  # a bug in tokbench or a library it calls
        if args.debug:
            traceback.print_exc()
        print(
            f"tokbench: internal error: {describe_exception(error)}"
            + ("" if args.debug else "; rerun with --debug for the traceback"),
            file=sys.stderr,
        )
        return 1


def _store_root(path: Path | None) -> Path:
    from tokbench.store import default_store_root

    return path if path is not None else default_store_root()


def parse_sweep(items: list[str]) -> dict[str, list[str]]:
    """``["quality=10,30"]`` → ``{"quality": ["10", "30"]}``."""
    sweep: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ConfigError(f"--sweep {item!r} is not KEY=V1,V2,...")
        if key.strip() in sweep:
            raise ConfigError(f"--sweep {key.strip()!r} is given twice")
        sweep[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return sweep


def parse_judge_options(items: list[str]) -> dict[str, dict[str, object]]:
    """``["clip.weights=random"]`` → ``{"clip": {"weights": "random"}}``; values are read as YAML scalars."""
    import yaml

    options: dict[str, dict[str, object]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        alias, dot, key = target.strip().partition(".")
        if not sep or not dot or not alias or not key:
            raise ConfigError(f"--judge-option {item!r} is not ALIAS.KEY=VALUE (e.g. clip.weights=random)")
        try:
            parsed = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            parsed = value
        options.setdefault(alias, {})[key.strip()] = parsed
    return options


def _run(args: argparse.Namespace) -> int:
    from tokbench.api import evaluate, sweep_specs, with_arguments

    model = with_arguments(args.model, {"weights": args.weights}) if args.weights else args.model
    specs = sweep_specs(model, parse_sweep(args.sweep)) if args.sweep else [model]
    store = None if args.no_store else _store_root(args.store)
    check_output_paths(  # before any work: a bad path must not waste a run
        files={"--output-json": args.output_json},
        folders={
            "--store": store,
            "--work-dir": args.work_dir,
            "--save-reconstructions": args.save_reconstructions,
        },
    )
    is_main = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
    results = []
    for spec in specs:
        result = evaluate(
            spec,
            args.suite,
            args.data,
            limit=args.limit,
            device=args.device,
            batch_size=args.batch_size,
            seed=args.seed,
            on_error=args.on_error,
            store=store,
            force=args.force,
            progress=not args.quiet,
            reference=args.reference,
            judge_options=parse_judge_options(args.judge_option),
            num_samples=args.num_samples,
            work_dir=args.work_dir,
            save_samples=args.save_samples,
            timeout=args.timeout,
            allow_nondeterministic=args.allow_nondeterministic,
            num_workers=args.num_workers,
            save_reconstructions=args.save_reconstructions,
        )
        results.append(result)
        if is_main:
            _print_result(result)
    if not is_main:
        return 0
    if len(results) > 1:
        from tokbench.store import records_to_frame

        print(_format_frame(records_to_frame([r.record for r in results])))
    if args.output_json is not None:
        from tokbench.records import record_to_json

        payload = [json.loads(record_to_json(r.record)) for r in results]
        args.output_json.write_text(
            json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, sort_keys=True) + "\n",
            encoding="utf-8",
        )
    return 0


def _print_result(result) -> None:
    record = result.record
    dataset = record["dataset"]
    print(
        f"\n{record['model']['spec']} on {record['suite']['name']} v{record['suite']['version']} · "
        f"{dataset['name']}: {dataset['items_used']} images used, {dataset['items_skipped']} skipped"
    )
    rows = []
    metrics = result.metrics
    for key, value in metrics.items():
        if key.endswith("_ci95"):
            continue
        ci = metrics.get(f"{key}_ci95")
        rows.append({"metric": key, "value": _format_number(value), "±95% CI": _format_number(ci)})
    print(pd.DataFrame(rows).to_string(index=False))
    for name, reason in record.get("not_applicable", {}).items():
        print(f"  {name}: not applicable ({reason})")
    for skip in record.get("skipped", [])[:10]:
        print(f"  skipped {skip['item']}: {skip['reason']}")
    if result.stored is not None:
        status = {
            "added": "record added",
            "replaced": "record replaced (--force, or a fail run replacing one with skipped items)",
            "exists": "identical record already in the store, not re-run (use --force to replace)",
        }[result.stored.status]
        print(f"{status}: {result.stored.path}")


def _format_number(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def _format_frame(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False, float_format=lambda v: f"{v:.6g}")


def _list(args: argparse.Namespace) -> int:
    from tokbench import catalog

    if args.details and args.kind != "models":
        raise ConfigError(f"--details lists models only, not {args.kind}")
    if args.details:
        print(_model_details(catalog.model_entries()))
        return 0
    if args.kind != "suites":
        print("\n".join(catalog.names(args.kind)))
        return 0
    for entry in catalog.suite_entries():
        described = (
            f"v{entry.version}  {entry.kind:<9}  track {entry.track}" if not entry.error else entry.error
        )
        print(f"{entry.name:<20} {described}")
    return 0


#: Columns of ``tokbench list models --details``; the numeric ones are right-aligned.
DETAIL_COLUMNS = ("spec", "family", "kind", "tokens", "codebook", "down", "res", "hub id", "verification")
_NUMERIC_DETAILS = ("tokens", "codebook", "down", "res")


def _model_details(entries: list) -> str:
    """``catalog.model_entries()`` as a text table: a row per card; a model without cards gets one row
    with its adapter kind, and one whose class fails to import gets its error."""
    rows = []
    for entry in entries:
        for card in entry.cards:
            numbers = ["" if n is None else str(n) for n in (card.tokens, card.codebook, card.downsampling)]
            numbers.append("" if card.resolution is None else str(card.resolution))
            verification = card.verification + (f" ({card.note})" if card.verification == "none" else "")
            rows.append([card.spec, card.family, card.kind, *numbers, card.hub_id, verification])
        if not entry.cards:
            note = f"cannot import: {entry.error}" if entry.error else "no released variants"
            rows.append([entry.name, "", entry.kind or "?", "", "", "", "", "", note])
    widths = [max(len(name), *(len(row[i]) for row in rows)) for i, name in enumerate(DETAIL_COLUMNS)]

    def line(cells: list[str]) -> str:
        aligned = (
            cell.rjust(width) if name in _NUMERIC_DETAILS else cell.ljust(width)
            for cell, width, name in zip(cells, widths, DETAIL_COLUMNS, strict=True)
        )
        return "  ".join(aligned).rstrip()

    return "\n".join([line(list(DETAIL_COLUMNS)), *(line(row) for row in rows)])


def _leaderboard(args: argparse.Namespace) -> int:
    from tokbench.report.exports import frame_to_csv
    from tokbench.store import RecordStore, records_to_frame

    scan = RecordStore(_store_root(args.store)).scan(suite=args.suite, source=args.source)
    for problem in scan.problems:  # a bad file never hides the others
        print(f"tokbench: warning: skipped {problem.message}", file=sys.stderr)
    records = list(scan.records)
    if args.history is not None:
        from tokbench.history import model_history

        frame = model_history(records, args.history)
    elif args.format == "table" and not args.all_columns:
        from tokbench.report.leaderboard_table import format_compact

        print(format_compact(records))
        return 0
    else:
        frame = records_to_frame(records)
    if args.format == "csv":
        sys.stdout.write(frame_to_csv(frame))
    elif args.format == "json":
        sys.stdout.write(frame.to_json(orient="records", indent=2) + "\n")
    elif frame.empty:
        print("no records")
    else:
        print(_format_frame(frame))
    return 0


def _report(args: argparse.Namespace) -> int:
    from tokbench.report import write_report
    from tokbench.store import RecordStore

    root = _store_root(args.store)
    records = RecordStore(root).records(suite=args.suite)
    out = write_report(records, args.out, suite=args.suite, store=root)
    print(f"report written: {out}")
    return 0


def _site(args: argparse.Namespace) -> int:
    from tokbench.report.site import build_site

    check_output_paths(folders={"--out": args.out})
    summary = build_site(_store_root(args.store), args.out)
    print(
        f"site built: {summary.pages} pages, {summary.records} records, "
        f"{summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f} s -> {summary.out / 'index.html'}"
    )
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from collections import Counter

    from tokbench.reported import ingest_published

    root = _store_root(args.store)
    results = ingest_published(args.directory, root, args.created_at, args.force)
    counts = Counter(result.status for result in results)
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    print(f"{len(results)} reported records in {root / 'reported'}: {summary}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from tokbench.doctor import run_checks

    checks = run_checks()
    for check in checks:
        print(f"[{'ok' if check.ok else 'missing'}] {check.name}: {check.detail}")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
