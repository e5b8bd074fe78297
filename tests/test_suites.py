"""Suite files: strict loading, includes, cycles, and a version bump for every content change."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokbench.errors import ConfigError
from tokbench.hashing import sha256_json
from tokbench.suites import SUITE_PATH_ENV, list_suites, load_suite

#: (suite, version) → sha256 of the resolved config. A failure here means a suite file changed:
#: bump its ``version`` (old records keep their protocol), then update this table.
GOLDEN = {
    ("recon", "2"): "f84065af897691bc0cdd2d4ad5ba0acea60b0bcc96aee9bbb8bd9b3620d98978",
    ("recon", "3"): "7d0f2cf3a3db6a5bef84b5a3caa1059ef470f38b49296fbefc3ff5e9f60cca7d",
    ("recon-clean", "1"): "c9f82bb911c44015769e6d3afd5304b7a4a3e34c1f269c9b69ab3ea1b9594f2a",
    ("pfid", "2"): "47b1136fb2487ed7fb45981cec47f4198d348fe200c34b98d3aebe4c63b519f6",
    ("pfid", "3"): "f45aa50f5050df6fc34a53a3d7374011bfa1923a11e294727f64971f5a34ef9c",
    ("semantic", "1"): "0d82ae8aaf6c8448245817240c92d769744546bbaffae065be167e71d8cf4d5a",
    ("vit-reduction", "1"): "2bc49e8f7048944b6168673b39ff245b4b471077953976e9d175734f6225660d",
    ("prune", "1"): "76c0865e02e0ef4ce5ff9d2f438101dde636fc21ff4bf6078cf064f571de8888",
    ("prune", "2"): "d98b1cd6d481d13172486d5454f36c754131abb521d25747baddb47ecff2632f",
    ("gen", "1"): "9dae0b18b4bcf88feb83dcd711bec482b02958465df78e75ce2ad3dd79ecb984",
    ("tokbench", "2"): "3a75129218e5dd1629c15b427e9882fea5c66696da548b1082bfc2d5550458be",
    ("tokbench-official", "2"): "9cff5c356ac97fa1c4a7fe58808bac33efce8ee8015ac7e0dc6faff13e003731",
    ("tokbench-lossless", "1"): "be8191969eef534ee01c68dca14c95f62bd5011c67dea28e5bedd917dbe50594",
    ("tokbench-video", "1"): "da52eaee2a13e8170865a6c483a07cec2ae55a8f5bb933cdc973dff3e17681a0",
    ("tokbench-video-official", "1"): "18b714751418f934463cdffea786dd639e37762b2f8134ddff65f424362a6871",
    ("video-recon", "1"): "9966da80e94b75723b399f10d1bbb638b91fd12cc0eb47a7a8e8c81e616a8a16",
}


@pytest.mark.parametrize("name", list_suites())
def test_every_suite_loads_and_is_pinned(name: str) -> None:
    config = load_suite(name)
    key = (config.name, config.version)
    assert key in GOLDEN, f"add {key} to GOLDEN: {sha256_json(config.to_dict())}"
    assert sha256_json(config.to_dict()) == GOLDEN[key], "suite content changed without a version bump"


def _write(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.yaml").write_text(text)


BASE = """
name: base
version: "3"
kind: tokenizer
dataset: embedded
preprocess: {name: center-crop, resolution: 64}
metrics:
  - name: psnr
"""


def test_include_inherits_and_local_keys_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "base", BASE)
    _write(tmp_path, "child", 'include: base\nname: child\nversion: "1"\npreprocess: {name: center-crop}\n')
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))
    child = load_suite("child")
    assert (child.name, child.version, child.dataset) == ("child", "1", "embedded")
    assert child.preprocess == {"name": "center-crop"}
    assert [m.name for m in child.metrics] == ["psnr"]


def test_include_cycle_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "a", "include: b\n")
    _write(tmp_path, "b", "include: a\n")
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match=r"include cycle: a\.yaml -> b\.yaml -> a\.yaml"):
        load_suite("a")


@pytest.mark.parametrize(
    "edit,message",
    [
        ("metrics_typo: []", "unknown key\\(s\\) metrics_typo"),
        ("kind: painter", "kind must be one of"),
        ("version: 3", "version must be a quoted"),
        ("metrics: []", "metrics must be a non-empty list"),
        (
            "metrics: [{name: fid, judge: inception}]",
            "uses judge 'inception', which the suite does not declare",
        ),
        ("metrics: [{name: psnr, weight: 2}]", "each metric is a mapping"),
        ("judges: [inception]", "judges must be a mapping"),
        (
            "metrics: [{name: psnr}, {name: no-such-metric}]",
            r"bad\.yaml.*metric #2 .*unknown metric 'no-such-metric'",
        ),
        ("metrics: [{name: pnsr}]", "Did you mean psnr"),
        ("judges: {x: {name: no-such-judge}}", r"bad\.yaml.*judge 'x': unknown judge 'no-such-judge'"),
        ("metrics: [{name: psnr}, {name: psnr}]", "record key 'psnr' is also metric #1's"),
        ("metrics: [{name: psnr, key: PSNR}]", "must be snake_case"),
        ("primary: Not-A-Key", "primary must be a record key"),
    ],
)
def test_bad_suite_files_fail_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: str, message: str
) -> None:
    _write(tmp_path, "bad", BASE + edit + "\n")
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match=message):
        load_suite("bad")


def test_invalid_yaml_and_unknown_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "broken", "name: [unclosed\n")
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_suite("broken")
    with pytest.raises(ConfigError, match=r"unknown suite 'nope'.*recon"):
        load_suite("nope")


def test_two_fids_under_their_own_keys_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    judges = "judges: {inception: {name: inception-v3-tf}, clip: {name: clip}}\n"
    metrics = "metrics: [{name: fid, judge: inception}, {name: fid, judge: clip, key: fd_clip}]\n"
    _write(tmp_path, "twofids", BASE.replace("name: base", "name: twofids") + judges + metrics)
    monkeypatch.setenv(SUITE_PATH_ENV, str(tmp_path))
    suite = load_suite("twofids")
    assert suite.record_keys() == {"fid": "fid", "fd_clip": "fid"}
    assert "key" not in suite.to_dict()["metrics"][1]  # record keys name results; they are not hashed


#: Record keys of each suite's metric entries, pinned like GOLDEN: keys name the numbers of a
#: version, so renaming one needs a version bump even though keys are not part of the hash.
RECON_KEYS = ["psnr", "ssim", "ms_ssim", "lpips", "fid", "kid", "bits_per_pixel", "bytes_per_image"]
RECORD_KEYS = {
    ("recon", "2"): RECON_KEYS,
    ("recon", "3"): RECON_KEYS,
    ("recon-clean", "1"): RECON_KEYS,
    ("pfid", "2"): ["fid", "kid"],
    ("pfid", "3"): ["fid", "kid"],
    ("semantic", "1"): ["clip_cosine", "fd_clip", "zs_top1"],
    ("vit-reduction", "1"): ["clip_cosine", "zs_top1"],
    ("prune", "1"): ["gqa", "mmb", "mme", "pope", "sqa", "textvqa"],
    ("prune", "2"): ["gqa", "mmb", "mme", "pope", "sqa", "textvqa"],
    ("gen", "1"): ["gfid", "inception_score", "precision"],
    ("tokbench", "2"): ["t_acc_mean", "f_sim_mean"],
    ("tokbench-official", "2"): ["t_acc_mean", "f_sim_mean"],
    ("tokbench-lossless", "1"): ["t_acc_mean", "f_sim_mean"],
    ("tokbench-video", "1"): ["t_acc_mean", "f_sim_mean"],
    ("tokbench-video-official", "1"): ["t_acc_mean", "f_sim_mean"],
    ("video-recon", "1"): [
        "frame_psnr",
        "frame_ssim",
        "frame_lpips",
        "rfvd",
        "frame_bits_per_pixel",
        "temporal_difference_error",
        "tlp",
    ],
}


@pytest.mark.parametrize("name", list_suites())
def test_every_suite_pins_its_record_keys(name: str) -> None:
    config = load_suite(name)
    assert list(config.record_keys()) == RECORD_KEYS[(config.name, config.version)]
