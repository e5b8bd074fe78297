"""Loading in DataLoader workers (``tokbench.tracks.loading``) and judges in fixed chunks
(``tokbench.tracks.chunks``): the numbers do not depend on ``--num-workers`` or ``--batch-size``, a
corrupt file decoded in a worker is counted with its reason, and loading overlaps the model."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tokbench import evaluate
from tokbench.data.folder import FolderDataset
from tokbench.data.preprocess import build_preprocess
from tokbench.distributed import Distributed
from tokbench.errors import DataError
from tokbench.tracks import chunks
from tokbench.tracks.base import RunContext, RunOptions
from tokbench.tracks.images import LoadPreprocessed
from tokbench.tracks.loading import RECEIVER, load_batches

PSNR_SUITE = """
name: psnr-only
version: "1"
kind: tokenizer
dataset: embedded
preprocess: {name: imagenet-center-crop, resolution: 32}
metrics: [{name: psnr}, {name: ssim}]
"""
PIXEL_SUITE = """
name: pixels
version: "1"
kind: tokenizer
dataset: embedded
preprocess: {name: imagenet-center-crop, resolution: 256}
metrics: [{name: psnr}, {name: ssim}, {name: ms-ssim}, {name: bits-per-pixel}]
"""
#: Seconds each item's decoding and each batch's model call take in the overlap test.
ITEM_SECONDS = 0.05
BATCH = 4


def _folder(root: Path, count: int) -> Path:
    folder = root / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
            folder / f"img{index:02d}.png"
        )
    return folder


def _metrics(suite: str, limit: int, workers: int, batch: int) -> dict[str, float]:
    result = evaluate(
        "jpeg:quality=30", suite, limit=limit, batch_size=batch, num_workers=workers, cache_features=False
    )
    assert result.record["run"]["num_workers"] == workers
    assert result.record["dataset"]["items_used"] == limit
    return {k: v for k, v in result.metrics.items() if not k.endswith("seconds_per_image")}


def test_pixel_metrics_identical_for_worker_counts_and_batch_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PSNR, SSIM, MS-SSIM and the rate on 12 embedded images: equal (==) for 0, 2 and 4 workers and
    for batch sizes 1, 7 and 64 (LPIPS, rFID and KID: the next test, fewer runs of a slower suite)."""
    monkeypatch.setattr(chunks, "CHUNK_PIXELS", 5 * 256 * 256)  # chunks of 5: boundaries inside batches
    suite = tmp_path / "pixels.yaml"
    suite.write_text(PIXEL_SUITE)
    reference = _metrics(str(suite), 12, 0, 7)
    assert {"psnr", "ssim", "ms_ssim", "bits_per_pixel"} <= set(reference)
    for workers, batch in ((2, 7), (4, 7), (0, 1), (0, 64)):
        assert _metrics(str(suite), 12, workers, batch) == reference, (workers, batch)


@pytest.mark.slow  # three runs through Inception and LPIPS: about a minute of CPU, more when loaded
def test_recon_suite_identical_for_worker_counts_and_batch_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recon suite (with rFID and KID on Inception features) on 8 embedded images: equal (==) for
    (0 workers, batch 7), (2, 1) and (4, 64)."""
    monkeypatch.setattr(chunks, "CHUNK_PIXELS", 3 * 256 * 256)
    reference = _metrics("recon", 8, 0, 7)
    assert {"psnr", "ssim", "ms_ssim", "lpips", "fid", "kid"} <= set(reference)
    assert _metrics("recon", 8, 2, 1) == reference
    assert _metrics("recon", 8, 4, 64) == reference


def test_a_corrupt_file_decoded_in_a_worker_is_counted_and_the_run_goes_on(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 5)
    (folder / "img02.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    suite = tmp_path / "psnr.yaml"
    suite.write_text(PSNR_SUITE)
    result = evaluate("jpeg:quality=50", str(suite), f"folder:{folder}", batch_size=2, num_workers=2)
    assert result.record["dataset"]["items_used"] == 4
    [skipped] = result.record["skipped"]
    assert skipped["item"] == "img02.png" and "img02.png" in skipped["reason"]
    in_process = evaluate("jpeg:quality=50", str(suite), f"folder:{folder}", batch_size=2, num_workers=0)
    assert in_process.record["skipped"] == result.record["skipped"]
    assert in_process.metrics["psnr"] == result.metrics["psnr"]
    with pytest.raises(DataError, match=r"img02\.png"):
        evaluate("jpeg:quality=50", str(suite), f"folder:{folder}", on_error="fail", num_workers=2)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_workers_start_with_fork_and_spawn_and_keep_the_order(tmp_path: Path, start_method: str) -> None:
    """Items and the preprocessing pickle (spawn); batches come back in the run's order."""
    items = FolderDataset(_folder(tmp_path, 7)).items()
    prepare = LoadPreprocessed(build_preprocess("imagenet-center-crop", resolution=32))
    indexed = list(enumerate(items))[::-1]  # an order that is not the folder's
    here = [e for b in load_batches(indexed, prepare, 3, 0) for e in b]
    there = list(load_batches(indexed, prepare, 3, 2, start_method=start_method))
    assert [len(batch) for batch in there] == [3, 3, 1]
    flat = [entry for batch in there for entry in batch]
    assert [e.index for e in flat] == [e.index for e in here] == [6, 5, 4, 3, 2, 1, 0]
    assert all(torch.equal(a.value, b.value) for a, b in zip(flat, here, strict=True))


def _broken_item(item: int) -> torch.Tensor:
    if item == 4:
        raise ValueError(f"a bug on item {item}")
    return torch.zeros(1)


def test_a_bug_in_a_worker_is_raised_in_the_main_process_and_leaves_no_thread() -> None:
    """An exception that is not a DataError reaches the caller through the receiving thread."""
    with pytest.raises(ValueError, match="a bug on item 4"):
        for _ in load_batches(list(enumerate(range(12))), _broken_item, 2, 2):
            pass
    assert not [thread for thread in threading.enumerate() if thread.name == RECEIVER]


def test_stopping_early_ends_the_receiving_thread() -> None:
    """A caller that leaves after one batch (``--on-error fail``) leaves no thread behind."""
    batches = load_batches(list(enumerate(range(40))), _broken_item, 2, 2)
    assert [entry.index for entry in next(batches)] == [0, 1]
    assert [t for t in threading.enumerate() if t.name == RECEIVER]
    batches.close()
    assert not [t for t in threading.enumerate() if t.name == RECEIVER]


def _slow_item(item: int) -> torch.Tensor:
    time.sleep(ITEM_SECONDS)
    if item == 5:
        raise DataError(f"item {item}: unreadable")
    return torch.full((3, 4, 4), float(item))


def _loop(workers: int, items: int) -> tuple[float, list[int], list[tuple[int, dict[str, str]]]]:
    """A track's loop: load batches, 'run the model' (sleeping as long as decoding a batch takes)."""
    options = RunOptions(batch_size=BATCH, num_workers=workers, progress=False)
    run = RunContext(options, torch.device("cpu"), Distributed())
    seen = []
    started = time.perf_counter()
    for batch in run.load(list(enumerate(range(items))), _slow_item):
        usable = run.usable(batch, name=str)
        images = run.to_device([entry.value for entry in usable])
        run.call_model("encode", [str(e.item) for e in usable], time.sleep, BATCH * ITEM_SECONDS)
        seen += [int(value) for value in images[:, 0, 0, 0]]
    return time.perf_counter() - started, seen, run.shard.skipped


def test_loading_overlaps_the_model() -> None:
    """With a model as slow as decoding, two workers take well under the sequential loop's time."""
    sequential, order, skipped = _loop(0, 32)
    overlapped, order_workers, skipped_workers = _loop(2, 32)
    assert order == order_workers == [i for i in range(32) if i != 5]
    assert skipped == skipped_workers == [(5, {"item": "5", "reason": "item 5: unreadable"})]
    assert overlapped < 0.85 * sequential, (overlapped, sequential)


def test_chunks_release_fixed_sizes_in_order() -> None:
    released = []
    queue = chunks.Chunks(3, released.append)
    for start, count in ((0, 2), (2, 5), (7, 1)):
        queue.add({"ids": list(range(start, start + count)), "x": torch.arange(start, start + count)}, count)
    queue.flush()
    assert [chunk["ids"] for chunk in released] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert all(chunk["x"].tolist() == chunk["ids"] for chunk in released)
