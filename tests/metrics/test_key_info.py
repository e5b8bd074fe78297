"""``key_info``: the declared label, unit and direction of record keys that carry no ``metric_info``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokbench.metrics.base import OutputInfo
from tokbench.metrics.info import declared_metric_info, key_info
from tokbench.reported import read_published

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED_STORE = REPO_ROOT / "leaderboards"
PUBLISHED = REPO_ROOT.parent / "shared" / "reference" / "published"

#: The better direction of every key the site ranked before metric classes declared it (the hand
#: sets of ``report/site_html.py`` at commit c6332b9), frozen here to prove the change kept it.
_SITE_LOWER = {"rfid", "gfid", "pfid", "fid", "kid", "lpips", "bits_per_pixel", "bytes_per_image"}
_SITE_LOWER |= {"fd_clip", "zs_top1_drop", "zs_top5_drop", "encoder_gflops"}
_SITE_HIGHER = {"psnr", "ssim", "ms_ssim", "gqa", "mmb", "mme", "pope", "sqa", "vqav2", "textvqa"}
_SITE_HIGHER |= {"clip_cosine", "clip_score", "zs_top1", "zs_top5", "zs_top1_reference", "zs_top5_reference"}


def site_direction_before(key: str) -> bool | None:
    """``metric_direction`` of the site before this change, as higher-is-better."""
    if key in _SITE_LOWER or key.endswith("_seconds_per_image"):
        return False
    if key in _SITE_HIGHER or key.startswith(("t_acc", "t_ned", "f_sim")):
        return True
    return None


#: Suites whose records came after that commit: their keys were never ranked by the hand sets.
_LATER_SUITES = ("video-recon",)


def committed_keys() -> set[str]:
    """Every metric key of the committed store (reproduced and reported records) of the suites the
    hand sets knew."""
    return {
        key
        for path in COMMITTED_STORE.rglob("*.json")
        if path.parent.name not in _LATER_SUITES
        for key in json.loads(path.read_text())["metrics"]
    }


def published_keys() -> set[str]:
    """Every metric key the published tables give, as ``tokbench ingest`` records them."""
    if not PUBLISHED.is_dir():
        return set()
    return {key for record in read_published(PUBLISHED) for key in record["metrics"]}


def test_the_committed_store_has_keys_to_check():
    assert {"psnr", "rfid", "gfid", "t_acc_mean", "gqa", "encode_seconds_per_image"} <= committed_keys()


@pytest.mark.parametrize("key", sorted(committed_keys() | published_keys() | _SITE_LOWER | _SITE_HIGHER))
def test_direction_is_what_the_site_used_before(key: str):
    info = key_info(key)
    assert (None if info is None else info.higher_is_better) == site_direction_before(key)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("psnr", OutputInfo("PSNR", True, "dB")),
        ("psnr_ci95", OutputInfo("PSNR 95% CI", None, "dB")),
        ("fid_count", OutputInfo("FID count", None)),
        ("rfid", OutputInfo("rFID", False)),
        ("gfid_count", OutputInfo("gFID count", None)),
        ("kid_std", OutputInfo("KID std", None)),
        ("recall", OutputInfo("recall", True)),
        ("zs_top5_drop", OutputInfo("zero-shot top-5 drop", False, "pp")),
        ("zs_top1_reference", OutputInfo("zero-shot top-1 reference", True, "%")),
        ("t_acc_256_mean", OutputInfo("T-ACC 256px mean", True, "%")),
        ("t_ned_small", OutputInfo("T-NED small", True, "%")),
        ("f_sim_1024_large", OutputInfo("F-Sim 1024px large", True)),
        ("decode_seconds_per_image", OutputInfo("decode time", False, "s/image")),
        ("num_tokens", OutputInfo("tokens", None)),
    ],
)
def test_key_info_of_outputs_aliases_and_measurements(key: str, expected: OutputInfo):
    assert key_info(key) == expected


@pytest.mark.parametrize(
    "key", ["foo_score", "t_acc", "t_acc_256", "fid_mean", "zs_top2", "seconds_per_image"]
)
def test_undeclared_keys_have_no_info(key: str):
    assert key_info(key) is None


def test_declared_metric_info_names_the_declaring_metric():
    assert declared_metric_info(["rfid", "num_tokens", "foo_score"]) == {
        "rfid": {"metric": "fid", "label": "rFID", "unit": "", "higher_is_better": False},
        "num_tokens": {"label": "tokens", "unit": "", "higher_is_better": None},
    }
