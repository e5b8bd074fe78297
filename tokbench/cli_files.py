"""The ``tokbench fid`` and ``tokbench stats`` commands: parse and display (``tokbench.file_fid``
computes)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path


def add_file_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``fid`` and ``stats`` to the CLI's subcommands."""
    fid = commands.add_parser("fid", help="FID between two image folders, .npz batches or statistics files")
    fid.add_argument("first", type=Path, help="real side: folder, ADM .npz batch or statistics .npz")
    fid.add_argument("second", type=Path, help="generated side: folder, ADM .npz batch or statistics .npz")
    fid.add_argument("--kid", action="store_true", help="also the kernel inception distance")
    fid.add_argument("--prc", action="store_true", help="also precision and recall (k=3)")
    fid.add_argument("--isc", action="store_true", help="also the Inception Score of the second set")
    stats = commands.add_parser("stats", help="write ADM-compatible FID statistics of an image set")
    stats.add_argument("path", type=Path, help="folder of images or ADM .npz sample batch")
    stats.add_argument("--out", type=Path, required=True, help="statistics file to write (.npz)")
    stats.add_argument("--subsample", type=int, help="also store this many of the images as arr_0")
    for command in (fid, stats):
        command.add_argument(
            "--resize",
            choices=("tf1-bilinear", "clean"),
            default="tf1-bilinear",
            help="resize to 299 as torch-fidelity/ADM (tf1-bilinear, as recon) or clean-fid (clean)",
        )
        command.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
        command.add_argument("--batch-size", type=int, default=50)
        command.add_argument("--no-cache", action="store_true", help="do not read or write cached features")
        command.add_argument("--quiet", action="store_true", help="no progress bar")


def _fid(args: argparse.Namespace) -> int:
    from tokbench.file_fid import build_judge, compare, read_side

    judge = build_judge(args.resize, logits=args.isc, device=args.device)
    with _progress_bar(args.quiet) as progress:
        sides = [
            read_side(p, judge, args.batch_size, not args.no_cache, progress)
            for p in (args.first, args.second)
        ]
    results = compare(*sides, kid=args.kid, prc=args.prc, isc=args.isc)
    print(f"{sides[0].name} ({sides[0].count}) vs {sides[1].name} ({sides[1].count}), resize {args.resize}")
    for key, value in results.items():  # every digit: these numbers get compared with other tools'
        print(f"{key:<22} {value!r}" if isinstance(value, float) else f"{key:<22} {value}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from tokbench.file_fid import build_judge, make_statistics
    from tokbench.files import check_output_paths

    check_output_paths(files={"--out": args.out})
    judge = build_judge(args.resize, device=args.device)
    with _progress_bar(args.quiet) as progress:
        written = make_statistics(
            args.path, args.out, judge, args.subsample, args.batch_size, not args.no_cache, progress
        )
    extra = f", arr_0 with {written['arr_0']} images" if written["arr_0"] else ""
    print(f"statistics of {written['count']} images (d={written['dim']}{extra}) -> {written['path']}")
    return 0


@contextlib.contextmanager
def _progress_bar(quiet: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A ``progress(done, total, what)`` callback drawing one tqdm bar per set (None when quiet)."""
    from tqdm.auto import tqdm

    bars: dict[str, tqdm] = {}

    def progress(done: int, total: int, what: str) -> None:
        bar = bars.setdefault(what, tqdm(total=total, desc=what, unit="img", dynamic_ncols=True))
        bar.update(done - bar.n)

    try:
        yield None if quiet else progress
    finally:
        for bar in bars.values():
            bar.close()


#: Command name → handler, merged into the CLI's dispatch table.
FILE_COMMANDS = {"fid": _fid, "stats": _stats}
