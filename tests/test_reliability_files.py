"""Issue 21, the file side: hostile or damaged files never make tokbench unusable or destroy data.

Each test names the numbered failure of the issue it pins: 4 non-UTF-8 file names, 5 damaged caches,
6 site build safety, 7 early output-path checks, 8 bounded record readers, 9 bounded reference
statistics, 10 bounded suite YAML, 12 stale temp files, 13 GIFs and unreadable files, 14 48-bit PNGs.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tokbench.data.classfolder import ClassFolderDataset
from tokbench.data.decode import load_rgb
from tokbench.data.folder import FolderDataset
from tokbench.errors import ConfigError, DataError
from tokbench.features import FeatureCache
from tokbench.files import STALE_AFTER_SECONDS, remove_stale_temp_files

NON_UTF8 = b"caf\xe9-\xff.png"  # Latin-1 "café" and a byte that is never UTF-8
PSNR_SUITE = """
name: psnr-only
version: "1"
kind: tokenizer
dataset: embedded
preprocess: {name: imagenet-center-crop, resolution: 16}
metrics: [{name: psnr}]
"""


def _image(path: Path | bytes, value: int = 100, fmt: str | None = None) -> None:
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path, format=fmt)


def _age(path: Path, seconds: float) -> None:
    then = path.stat().st_mtime - seconds
    os.utime(path, (then, then))


# --- 4: file names that are not UTF-8 ------------------------------------------------------------------


def test_4_non_utf8_file_name_is_an_item_with_an_escaped_id(tmp_path: Path) -> None:
    _image(tmp_path / "plain.png", 1)
    _image(os.path.join(os.fsencode(tmp_path), NON_UTF8), 2)
    dataset = FolderDataset(tmp_path)
    ids = [item.id for item in dataset.items()]
    assert ids == ["caf\\xe9-\\xff.png", "plain.png"]
    assert all(item_id.encode("utf-8") for item_id in ids)  # printable, storable text
    assert len(dataset.manifest_hash()) == 64  # the manifest hashes (it raised UnicodeEncodeError)
    assert load_rgb(Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), NON_UTF8)))).size == (16, 16)
    assert dataset.items()[0].load().size == (16, 16)


def test_4_non_utf8_class_folder(tmp_path: Path) -> None:
    folder = os.path.join(os.fsencode(tmp_path), b"\xe9t\xe9")
    os.mkdir(folder)
    _image(os.path.join(folder, b"a.png"), 1)
    _image(tmp_path / "b.png", 2, "PNG")
    os.mkdir(tmp_path / "other")
    os.replace(tmp_path / "b.png", tmp_path / "other" / "b.png")
    dataset = ClassFolderDataset(tmp_path)
    assert dataset.class_names() == ("\\xe9t\\xe9", "other")
    assert [item.label for item in dataset.items()] == [0, 1]
    assert len(dataset.manifest_hash()) == 64


# --- 13: GIFs, unsupported formats and unreadable files -----------------------------------------------


def test_13_gif_is_read_and_other_formats_are_skipped_items(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", 1)
    frames = [Image.new("P", (8, 8), colour) for colour in (3, 7)]
    frames[0].save(tmp_path / "b.gif", save_all=True, append_images=frames[1:])
    (tmp_path / "c.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "notes.txt").write_text("not an image")
    items = {item.id: item for item in FolderDataset(tmp_path).items()}
    assert sorted(items) == ["a.png", "b.gif", "c.heic"]
    assert items["b.gif"].load().size == (8, 8)
    with pytest.raises(DataError, match=r"c\.heic.*unsupported image format \.heic"):
        items["c.heic"].load()


def test_13_an_unreadable_file_is_skipped_not_fatal(tmp_path: Path, monkeypatch) -> None:
    from tokbench import evaluate
    from tokbench.data import folder

    for index in range(3):
        _image(tmp_path / f"{index}.png", index)
    (tmp_path / "3.gif").write_bytes(b"GIF89a broken")
    (tmp_path / "4.heic").write_bytes(b"heic")
    unreadable = tmp_path / "2.png"
    real_sha256 = folder.file_sha256

    def sha256_or_denied(path: Path) -> tuple[str, int]:
        if path == unreadable:
            raise DataError(f"cannot read {path} to hash it (Permission denied)")
        return real_sha256(path)

    monkeypatch.setattr(folder, "file_sha256", sha256_or_denied)
    monkeypatch.setattr(folder, "load_rgb", lambda path, item_id: _refuse(path, item_id, unreadable))
    suite = tmp_path / "suite" / "psnr-only.yaml"
    suite.parent.mkdir()
    suite.write_text(PSNR_SUITE)
    result = evaluate("identity", str(suite), f"folder:{tmp_path}", batch_size=8)
    skipped = {entry["item"]: entry["reason"] for entry in result.record["skipped"]}
    assert result.record["dataset"]["items_used"] == 2
    assert sorted(skipped) == ["2.png", "3.gif", "4.heic"]
    assert "Permission denied" in skipped["2.png"] and "unsupported image format" in skipped["4.heic"]
    assert "corrupt" in skipped["3.gif"] or "not an image format" in skipped["3.gif"]


def _refuse(path: Path, item_id: str, unreadable: Path) -> Image.Image:
    if path == unreadable:
        raise DataError(f"image {path} (item {item_id}): cannot read file (Permission denied)")
    return load_rgb(path, item_id)


# --- 14: 16-bit colour PNGs are rounded like 16-bit greys -------------------------------------------------


def _png16(path: Path, samples: np.ndarray, colour_key: tuple[int, int, int] | None = None) -> None:
    """Write an H×W×C uint16 array as a 16-bit PNG (C = 1 grey, 3 RGB, 4 RGBA), Paeth-filtered rows,
    with an optional tRNS colour key."""
    height, width, channels = samples.shape
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    data = samples.astype(">u2").reshape(height, -1).view(np.uint8).reshape(height, -1).astype(np.int32)
    step = 2 * channels
    rows = []
    for y in range(height):
        up = data[y - 1] if y else np.zeros_like(data[y])
        filtered = []
        for x in range(data.shape[1]):
            left = data[y, x - step] if x >= step else 0
            corner = up[x - step] if x >= step else 0
            estimate = left + up[x] - corner
            best = min((abs(estimate - left), 0, left), (abs(estimate - up[x]), 1, up[x]))
            best = min(best, (abs(estimate - corner), 2, corner))
            filtered.append((data[y, x] - best[2]) % 256)
        rows.append(bytes([4, *filtered]))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    key = chunk(b"tRNS", struct.pack(">HHH", *colour_key)) if colour_key else b""
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + key
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def test_14_48_bit_rgb_png_is_rounded_like_16_bit_grey(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    samples[0, 0] = (255, 128, 65535)  # >> 8 gives (0, 0, 255); round(v / 257) gives (1, 0, 255)
    _png16(tmp_path / "rgb48.png", samples)
    expected = (samples.astype(np.uint32) + 128) // 257
    pixels = np.asarray(load_rgb(tmp_path / "rgb48.png"))
    np.testing.assert_array_equal(pixels, expected)
    assert pixels[0, 0].tolist() == [1, 0, 255]
    _png16(tmp_path / "grey16.png", samples[..., :1])
    grey = np.asarray(load_rgb(tmp_path / "grey16.png"))
    np.testing.assert_array_equal(grey[..., 0], pixels[..., 0])  # one conversion for both
    _png16(tmp_path / "keyed.png", samples, colour_key=tuple(int(v) for v in samples[1, 2]))
    keyed = np.array(load_rgb(tmp_path / "keyed.png"))
    assert keyed[1, 2].tolist() == [0, 0, 0]  # the colour key is transparent: black
    keyed[1, 2] = pixels[1, 2]
    np.testing.assert_array_equal(keyed, pixels)


def test_14_64_bit_rgba_png_rounds_then_composites(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    samples = rng.integers(0, 65536, (4, 6, 4), dtype=np.uint16)
    _png16(tmp_path / "rgba64.png", samples)
    eight = (samples.astype(np.uint32) + 128) // 257
    expected = (eight[..., :3] * eight[..., 3:] + 127) // 255
    np.testing.assert_array_equal(np.asarray(load_rgb(tmp_path / "rgba64.png")), expected)


# --- 5 and 12: caches verify what they read; stale temp files go -------------------------------------------


def test_5_truncated_feature_cache_is_named_removed_and_recomputed(tmp_path: Path, caplog) -> None:
    cache = FeatureCache(tmp_path / "features.safetensors")
    cache.put(["a", "b"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    cache.save()
    data = cache.path.read_bytes()
    cache.path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        reread = FeatureCache(cache.path)
    assert str(cache.path) in caplog.text and "removed" in caplog.text
    assert reread.get(["a"]) is None and not cache.path.exists()
    reread.put(["a"], torch.ones(1, 3))
    reread.save()
    assert torch.equal(FeatureCache(cache.path).get(["a"]), torch.ones(1, 3))


def test_12_stale_temp_files_go_on_the_next_write_fresh_ones_stay(tmp_path: Path) -> None:
    stale, fresh = tmp_path / ".features-old.partial", tmp_path / ".features-live.partial"
    other = tmp_path / ".other-old.partial"
    for path in (stale, fresh, other):
        path.write_bytes(b"x" * 100)
    for path in (stale, other):
        _age(path, STALE_AFTER_SECONDS + 60)
    cache = FeatureCache(tmp_path / "f.safetensors")
    cache.put(["a"], torch.zeros(1, 2))
    cache.save()
    assert not stale.exists() and fresh.exists() and other.exists()
    assert remove_stale_temp_files(tmp_path, [".other-*.partial"], min_age_seconds=0) == [other]


def test_12_gen_shard_and_store_leftovers_are_removed(tmp_path: Path) -> None:
    from test_records import make_test_record

    from tokbench.gen.shards import ShardStore
    from tokbench.store import RecordStore

    shards = ShardStore(tmp_path / "gen", "k" * 64, {}, ("pool3",))
    leftover = shards.directory / ".shard-00000-abc.partial"
    leftover.write_bytes(b"x")
    _age(leftover, STALE_AFTER_SECONDS + 1)
    shards.save(1, range(2, 4), [0, 1], {"pool3": np.zeros((2, 4))})
    assert not leftover.exists() and shards.path(1).is_file()
    store = RecordStore(tmp_path / "store")
    record = make_test_record()
    directory = store.path_for(record).parent
    directory.mkdir(parents=True)
    (directory / ".tmp-killed.partial").write_text("{")
    store.add(record)
    assert not list(directory.glob(".tmp-*"))


# --- 6: site build deletes nothing it did not write ---------------------------------------------------


def test_6_site_build_never_deletes_a_store_inside_out_or_foreign_files(tmp_path: Path) -> None:
    from test_records import make_test_record

    from tokbench.report.site import build_site
    from tokbench.store import RecordStore

    out = tmp_path / "site"
    build_site(tmp_path / "no-store-yet", out)  # an earlier build
    store = RecordStore(out / "leaderboards")  # then the store is put inside it
    store.add(make_test_record())
    with pytest.raises(ConfigError, match="contains the record store"):
        build_site(store.root, out)
    assert len(store.records()) == 1
    with pytest.raises(ConfigError, match="inside the record store"):
        build_site(store.root, store.root / "site")
    other = tmp_path / "other"
    build_site(store.root, other)
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"holds files no site build wrote \(notes\.txt\)"):
        build_site(store.root, other)
    assert (other / "notes.txt").read_text() == "keep me" and (other / "index.html").is_file()


def test_6_a_forged_manifest_deletes_nothing_outside_the_site(tmp_path: Path) -> None:
    import json

    from tokbench.report.site import build_site

    victim, elsewhere = tmp_path / "victim.txt", tmp_path / "elsewhere"
    victim.write_text("keep me")
    elsewhere.mkdir()
    (elsewhere / "page.html").write_text("keep me")
    out = build_site(tmp_path / "no-store", tmp_path / "site").out
    (out / "link").symlink_to(elsewhere)
    manifest = json.loads((out / ".tokbench-site").read_text())
    manifest["files"] += ["../victim.txt", "link", "link/page.html"]
    (out / ".tokbench-site").write_text(json.dumps(manifest))
    build_site(tmp_path / "no-store", out)
    assert victim.read_text() == "keep me" and (elsewhere / "page.html").read_text() == "keep me"
    assert not (out / "link").exists() and (out / "index.html").is_file()


# --- 7: output paths are checked before any work --------------------------------------------------------


def test_7_bad_output_paths_fail_before_any_work(tmp_path: Path, monkeypatch, capsys) -> None:
    from tokbench import cli, evaluate

    runs: list = []
    monkeypatch.setattr("tokbench.api.run_request", runs.append)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (
            ["--output-json", str(tmp_path / "missing" / "out.json")],
            r"--output-json .*missing does not exist",
        ),
        (["--output-json", str(tmp_path)], r"--output-json .* is a folder"),
        (["--store", str(a_file)], r"--store .*a-file is a file"),
        (["--store", str(a_file / "store")], r"--store .*a-file is a file, so the folder cannot be created"),
        (["--work-dir", str(a_file)], r"--work-dir .*a-file is a file"),
    ]
    for arguments, message in cases:
        assert cli.main(["run", "--model", "identity", "--quiet", *arguments]) == 1
        error = capsys.readouterr().err
        assert re.search(message, error) and error.count("\n") == 1, error
    assert cli.main(["site", "build", "--out", str(a_file)]) == 1
    assert "--out" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--store"):
        evaluate("identity", store=a_file)
    assert runs == []


# --- 8: hostile record files --------------------------------------------------------------------------


def test_8_deep_and_huge_record_files_are_skipped_with_a_warning(tmp_path: Path, caplog, capsys) -> None:
    from test_records import make_test_record

    from tokbench import cli
    from tokbench.records import record_to_json
    from tokbench.report.site import build_site
    from tokbench.store import RecordStore

    store = RecordStore(tmp_path / "store")
    good = make_test_record()
    directory = store.add(good).path.parent
    deep = directory / f"{'0' * 20}.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    huge = directory / f"{'1' * 20}.json"
    text = record_to_json({**good, "dataset": {**good["dataset"], "items_used": 123456789}})
    huge.write_text(text.replace("123456789", "9" * 5000))
    with caplog.at_level(logging.WARNING):
        summary = build_site(store.root, tmp_path / "site")
    assert summary.records == 1
    warned = " ".join(caplog.messages)
    assert f"{deep}: arrays and objects nest deeper than 64 levels" in warned
    assert f"{huge}: dataset.items_used: an integer of 5,000 digits" in warned
    assert cli.main(["leaderboard", "--store", str(store.root), "--format", "csv"]) == 0
    output = capsys.readouterr()
    assert good["record_id"] in output.out
    assert str(deep) in output.err and str(huge) in output.err


# --- 9: reference statistics are checked before allocation ------------------------------------------------


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _forged_reference(path: Path, sigma_shape: tuple[int, int], width: int = 2048) -> Path:
    """A small .npz whose 'mu' is real and whose 'sigma' header declares ``sigma_shape`` over 16 bytes."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mu.npy", _npy_header((width,)) + bytes(8 * width))
        archive.writestr("sigma.npy", _npy_header(sigma_shape) + bytes(16))
    return path


def test_9_reference_declaring_a_huge_sigma_is_refused_before_allocation(tmp_path: Path, monkeypatch) -> None:
    from tokbench.stats_io import load_statistics

    def no_allocation(*args, **kwargs):
        raise AssertionError("an array was read before its header was checked")

    forged = _forged_reference(tmp_path / "ref.npz", (60_000, 60_000))
    assert forged.stat().st_size < 1000
    monkeypatch.setattr(np.lib.format, "read_array", no_allocation)
    with pytest.raises(
        ConfigError, match=r"ref\.npz: 'sigma' declares shape \(60000, 60000\), but the judge"
    ):
        load_statistics(forged, feature_dim=2048)
    with pytest.raises(ConfigError, match=r"'sigma' declares shape \(60000, 60000\); at most 8192"):
        load_statistics(forged)
    short = _forged_reference(tmp_path / "short.npz", (2048, 2048))
    with pytest.raises(ConfigError, match=r"short\.npz: 'sigma' declares shape \(2048, 2048\) .* holds only"):
        load_statistics(short, feature_dim=2048)


# --- 10: suite YAML is bounded ---------------------------------------------------------------------------

LEVELS = "abcdefgh"
ALIAS_BOMB = (  # a billion-leaf list in a few hundred bytes: 8 levels, each 9 aliases of the one below
    PSNR_SUITE.replace("psnr-only", "bomb")
    + "description:\n  - &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"  - &{name} [{', '.join([f'*{below}'] * 9)}]\n" for below, name in itertools.pairwise(LEVELS))
    + "  - ["
    + ", ".join(["*h"] * 9)
    + "]\n"
)


@pytest.mark.timeout(30)
def test_10_yaml_alias_bomb_and_huge_suite_files_fail_fast(tmp_path: Path) -> None:
    from tokbench.suites import load_suite

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    assert bomb.stat().st_size < 1000
    with pytest.raises(ConfigError, match=r"bomb\.yaml, line 9: YAML anchor &a is not allowed"):
        load_suite(str(bomb))
    aliased = tmp_path / "aliased.yaml"
    aliased.write_text(PSNR_SUITE + "description: *x\n")
    with pytest.raises(ConfigError, match=r"aliased\.yaml, line 8: YAML alias \*x"):
        load_suite(str(aliased))
    big = tmp_path / "big.yaml"
    big.write_text(PSNR_SUITE + "description: '" + "x" * 2**21 + "'\n")
    with pytest.raises(ConfigError, match=r"big\.yaml has 2,097,\d+ bytes; a suite file may have"):
        load_suite(str(big))
