"""The CLIP judge: model/tag checks, weights resolution and its offline errors, preprocessing, outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tokbench.errors import ConfigError, WeightsError
from tokbench.judges.clip import ClipJudge, check_model_and_tag, resolve_clip_weights, weights_filename
from tokbench.judges.registry import JUDGES


def _images(n: int, height: int = 96, width: int = 128, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, height, width), generator=generator, dtype=torch.uint8)


def test_registered_as_clip() -> None:
    assert JUDGES.get("clip") is ClipJudge


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match=r"no model 'ViT-B-33'.*ViT-B-32"):
        check_model_and_tag("ViT-B-33", "openai")


def test_unknown_tag_lists_the_model_tags() -> None:
    with pytest.raises(ConfigError, match=r"'ViT-B-32' / 'laion5b'.*laion2b_s34b_b79k"):
        ClipJudge("ViT-B-32", "laion5b")


def test_model_without_weights_suggests_pairs() -> None:
    with pytest.raises(ConfigError, match=r"no pretrained weights in open_clip.*list_pretrained"):
        check_model_and_tag("ViT-S-32", "openai")


def test_a_tag_is_needed_unless_weights_are_given() -> None:
    with pytest.raises(ConfigError, match=r"needs a pretrained tag.*weights=random"):
        check_model_and_tag("ViT-S-32", None)
    check_model_and_tag("ViT-S-32", None, needs_tag=False)


def test_offline_error_names_model_tag_and_ways_to_supply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKBENCH_OFFLINE", "1")
    monkeypatch.delenv("TOKBENCH_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr("tokbench.judges.clip._cached_checkpoint", lambda source: None)
    with pytest.raises(WeightsError) as caught:
        ClipJudge("ViT-B-32", "laion2b_s34b_b79k")
    message = str(caught.value)
    expected = ["'ViT-B-32'", "'laion2b_s34b_b79k'", "TOKBENCH_OFFLINE", "weights=PATH", "HF_HOME"]
    expected += ["TOKBENCH_WEIGHTS_DIR", "open_clip-ViT-B-32-laion2b_s34b_b79k.safetensors", "weights=random"]
    for part in expected:
        assert part in message


def test_online_path_reaches_the_download_and_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without TOKBENCH_OFFLINE the tag's download source is asked for; a network failure is a
    WeightsError naming the model and the tag (no real network is touched)."""
    monkeypatch.delenv("TOKBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("TOKBENCH_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr("tokbench.judges.clip._cached_checkpoint", lambda source: None)
    asked = []

    def unreachable(source: dict) -> str:
        asked.append(source["hf_hub"])
        raise OSError("Name or service not known")

    import open_clip

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", unreachable)
    with pytest.raises(WeightsError, match=r"could not download.*'ViT-B-32'.*'laion2b_s34b_b79k'.*OSError"):
        resolve_clip_weights("ViT-B-32", "laion2b_s34b_b79k")
    assert asked == ["laion/CLIP-ViT-B-32-laion2B-s34B-b79K/"]


def test_weights_dir_is_searched_by_model_and_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKBENCH_WEIGHTS_DIR", str(tmp_path))
    target = tmp_path / weights_filename("ViT-B-32", "laion2b_s34b_b79k", ".bin")
    target.write_bytes(b"not loaded here")
    assert resolve_clip_weights("ViT-B-32", "laion2b_s34b_b79k") == (target, "env")
    with pytest.raises(WeightsError, match=r"missing\.pt for ViT-B-32 / openai does not exist"):
        resolve_clip_weights("ViT-B-32", "openai", tmp_path / "missing.pt")


def test_a_weights_file_round_trips_with_its_sha256(tiny_model: str, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from tokbench.hashing import file_sha256

    source = ClipJudge(tiny_model, None, weights="random")
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, path)
    loaded = ClipJudge(tiny_model, None, weights=path)
    assert loaded.describe()["weights"] == "file"
    assert loaded.describe()["weights_sha256"] == file_sha256(path)
    images = _images(2, 64, 64)
    assert torch.equal(loaded(images)["embedding"], source(images)["embedding"])


def test_a_wrong_architecture_is_a_weights_error(tiny_model: str, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "wrong.safetensors"
    save_file({"visual.conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match=r"could not load CLIP weights .*wrong\.safetensors"):
        ClipJudge(tiny_model, None, weights=path)


def test_random_weights_are_recorded_and_deterministic(small_judge: ClipJudge, tiny_judge: ClipJudge) -> None:
    description = small_judge.describe()
    assert description["weights"] == "random" and description["random_seed"] == 0
    assert description["weights_sha256"] is None and description["model"] == "ViT-S-32"
    again = ClipJudge(tiny_judge.model_name, None, weights="random")
    images = _images(2, 64, 64)
    assert torch.equal(again(images)["embedding"], tiny_judge(images)["embedding"])


def test_embedding_shape_and_dtype(small_judge: ClipJudge) -> None:
    output = small_judge(_images(2))
    assert list(output) == ["embedding"]
    assert output["embedding"].shape == (2, 384) and output["embedding"].dtype == torch.float32
    assert small_judge.feature_dim == 384


def test_preprocessing_is_open_clips_evaluation_transform(small_judge: ClipJudge) -> None:
    import open_clip

    _, _, reference = open_clip.create_model_and_transforms("ViT-S-32", pretrained=None)
    images = _images(2, 150, 97, seed=3)
    pil = [Image.fromarray(np.ascontiguousarray(a)) for a in images.permute(0, 2, 3, 1).numpy()]
    expected = torch.stack([reference(image) for image in pil])
    assert torch.equal(small_judge.prepare(images), expected)


def test_tag_preprocessing_overrides_the_model_defaults(small_judge: ClipJudge) -> None:
    import open_clip

    from tokbench.judges.clip import _preprocess_config

    config = _preprocess_config(
        open_clip, small_judge.model, open_clip.get_pretrained_cfg("ViT-B-16-SigLIP", "webli")
    )
    assert config["mean"] == (0.5, 0.5, 0.5) and config["resize_mode"] == "squash"
    assert config["size"] == (224, 224)  # the network's input size wins


def test_bad_images_are_rejected(small_judge: ClipJudge) -> None:
    with pytest.raises(ConfigError, match="uint8"):
        small_judge(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ConfigError, match="N×3×H×W"):
        small_judge(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))


def test_zero_shot_classifier_is_normalised_and_cached(tiny_judge: ClipJudge, isolated_cache: Path) -> None:
    classifier = tiny_judge.zero_shot_classifier(["cat", "dog", "car"], ["a photo of a {}.", "a {}"])
    assert classifier.shape == (3, 32)
    assert torch.allclose(classifier.norm(dim=1), torch.ones(3), atol=1e-6)
    manual = torch.nn.functional.normalize(tiny_judge.encode_text(["a photo of a dog.", "a dog"]), dim=-1)
    assert torch.allclose(classifier[1], torch.nn.functional.normalize(manual.mean(0), dim=0), atol=1e-6)
    assert len(list((isolated_cache / "clip-classifiers").glob("*.safetensors"))) == 1
