"""What decides whether a published number is comparable with one tokbench measured.

``SOURCE_FACTS`` states, per published source, how its numbers were measured (FID implementation,
resize convention, data, preprocessing, quantisation, save step), each fact with where it was
established; ``protocol_mismatches`` compares those facts with a reproduced record's protocol.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# --- what each source's numbers were measured with -----------------------------------------------------

#: The value of a fact that a source does not state: never equal to anything, so never comparable.
UNKNOWN = "unknown"

#: rFID and pFID of lxa9867/ImageFolder's tokenizer training script (its README model zoo).
_IMAGEFOLDER_PFID: dict[str, Any] = {
    # lxa9867/ImageFolder tokenizer/tokenizer_image/xqgan_train.py: Evaluator of evaluator.py (ADM's)
    "fid": "ADM TensorFlow evaluator (classify_image_graph_def.pb, pool_3)",
    # lxa9867/ImageFolder evaluator.py: uint8 batch fed to ExpandDims:0, the graph's ResizeBilinear
    "resize": "tf1-bilinear",
    # lxa9867/ImageFolder tokenizer/tokenizer_image/xqgan_train.py: reference statistics of gt
    "reference": "the preprocessed originals of the evaluated images",
    # lxa9867/ImageFolder configs/VQ-4096.yaml: val_data_path ImageNet2012/val
    "dataset": "imagenet-1k-val",
    # lxa9867/ImageFolder xqgan_train.py: the whole val folder, DistributedSampler, drop_last=False
    "images": 50000,
    # lxa9867/ImageFolder xqgan_train.py + dataset/augmentation.py: ADM's center_crop_arr
    "preprocess": "adm-center-crop",
    # lxa9867/ImageFolder xqgan_train.py: clamp(127.5 * x + 128, 0, 255).to(uint8) for both
    "quantization": "clamp(127.5x + 128, 0, 255).to(uint8) (round half up)",
    # lxa9867/ImageFolder xqgan_train.py: uint8 arrays go straight to the evaluator, no file round trip
    "save": "lossless",
    # lxa9867/ImageFolder README.md and tokenizer_image/latent_perturbation.py: alpha, beta, delta unstated
    "perturbation": UNKNOWN,
}

#: The TokBench project page leaderboard (wjf5203/TokBench home_page.html), at every resolution.
_TOKBENCH_PAGE: dict[str, Any] = {
    # wjf5203/TokBench eval_text.py (--arch parseq, --vocab french); eval_face.py (antelopev2)
    "judges": {"ocr": "doctr-parseq", "face": "insightface-glintr100"},
    # wjf5203/TokBench eval.sh: eval_text.py --batch_size 64 (tokbench/textface/settings.py)
    "ocr_batches": "official",
    # wjf5203/TokBench home_page.html links huggingface.co/datasets/Junfeng5/TokBench
    "dataset": "tokbench:hub",
    # wjf5203/TokBench home_page.html states no image count
    "images": UNKNOWN,
    # tokbench/data/preprocess.py LetterboxLanczos: the official scripts' smart_padding
    "preprocess": "letterbox-lanczos",
    # wjf5203/TokBench home_page.html: each model's own reconstruction script, not stated
    "quantization": UNKNOWN,
    # tokbench/textface/saving.py: the official *_rec.py save under the original's name (JPEG q75)
    "save": "as-original",
    # wjf5203/TokBench home_page.html names no compute_all_metrics.py release (rows dated 2025-05-20;
    # a77070c of 2025-05-16 starts faces at 0, 855802d later drops small faces)
    "bucket_edges": UNKNOWN,
}

#: The TokBench-Video leaderboard of the same page (short sides 256 and 480).
_TOKBENCH_VIDEO_PAGE: dict[str, Any] = {
    # wjf5203/TokBench video_eval.sh (855802d): eval_text.py (parseq, french) and eval_face.py (antelopev2)
    "judges": {"ocr": "doctr-parseq", "face": "insightface-glintr100"},
    # wjf5203/TokBench video_eval.sh: eval_text.py --batch_size 64 (tokbench/textface/video_settings.py)
    "ocr_batches": "official",
    # wjf5203/TokBench home_page.html: the hub dataset; its video files were not inspected offline
    "dataset": UNKNOWN,
    # wjf5203/TokBench home_page.html states no video or frame count
    "images": UNKNOWN,
    # wjf5203/TokBench video_scripts/*_rec.py: each model's own uint8 conversion (truncation in most)
    "quantization": UNKNOWN,
    # wjf5203/TokBench video_scripts/*_rec.py: imageio.get_writer defaults (libx264 crf 25, 16-px scaling)
    "save": "imageio-libx264",
    # wjf5203/TokBench compute_all_metrics.py: video edges exist only in the later release 855802d
    "bucket_edges": "855802d",
}

#: Facts per (table, source) and suite; a row belongs to the first source its ``source`` cell starts
#: with. Each line's comment names where the fact was established (repository path, or tokbench's
#: own module where an earlier issue established it); "unknown" where the source does not state it.
SOURCE_FACTS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("tokenizers_imagenet256.csv", "bytedance/1d-tokenizer README_TiTok.md"): {
        "recon": {
            # bytedance/1d-tokenizer evaluator/inception.py: torch-fidelity's InceptionV3, FID_WEIGHTS_URL
            "fid": "torch-fidelity InceptionV3 with the pytorch-fid weights pt_inception-2015-12-05, float64",
            # bytedance/1d-tokenizer evaluator/inception.py: interpolate_bilinear_2d_like_tensorflow1x to 299
            "resize": "tf1-bilinear",
            # bytedance/1d-tokenizer evaluator/evaluator.py: update(real_images, fake_images), both pooled
            "reference": "the preprocessed originals of the evaluated images",
            # bytedance/1d-tokenizer configs/training/TiTok/stage2/titok_l32.yaml: eval_shards imagenet-val
            "dataset": "imagenet-1k-val",
            # bytedance/1d-tokenizer data/convert_imagenet_to_wds.py: HF imagenet-1k val written as "jpg"
            "source_images": "HF imagenet-1k validation, re-encoded to JPEG in webdataset shards",
            # bytedance/1d-tokenizer README_TiTok.md states no count (the training eval reads 10 shards)
            "images": UNKNOWN,
            # bytedance/1d-tokenizer data/webdataset_reader.py: eval_transform Resize(BICUBIC) + CenterCrop
            "preprocess": "imagenet-center-crop",
            # bytedance/1d-tokenizer utils/train_utils.py eval_reconstruction; evaluator/evaluator.py update
            "quantization": "reconstruction rounded to k/255, then (x*255).to(uint8) (truncation) for both",
            # bytedance/1d-tokenizer evaluator/evaluator.py: tensors go straight to Inception, no file
            "save": "lossless",
        },
        "gen": {
            # bytedance/1d-tokenizer README_TiTok.md: guided-diffusion/evaluations/evaluator.py
            "fid": "ADM TensorFlow evaluator (classify_image_graph_def.pb, pool_3)",
            # openai/guided-diffusion evaluations/evaluator.py: uint8 batch fed to ExpandDims:0, the graph
            # resizes with TF1 ResizeBilinear
            "resize": "tf1-bilinear",
            # bytedance/1d-tokenizer README_TiTok.md: VIRTUAL_imagenet256_labeled.npz
            "dataset": "VIRTUAL_imagenet256_labeled.npz",
            # bytedance/1d-tokenizer sample_imagenet_titok.py: num_fid_samples = 50000
            "images": 50000,
            # bytedance/1d-tokenizer sample_imagenet_titok.py: list(range(1000)) * 50 labels
            "classes": "50 per class",
            # bytedance/1d-tokenizer demo_util.py sample_fn: clamp(0, 1), (x*255).to(uint8)
            "quantization": "clamp to [0, 1], (x*255).to(uint8) (truncation)",
            # bytedance/1d-tokenizer sample_imagenet_titok.py: samples saved as .png (lossless) into .npz
            "save": "lossless",
        },
    },
    ("pfid_imagenet256.csv", "lxa9867/ImageFolder README model zoo"): {"pfid": _IMAGEFOLDER_PFID},
    ("pfid_imagenet256.csv", "lxa9867/ImageFolder RobustTok-README.md"): {
        "pfid": _IMAGEFOLDER_PFID,  # the model zoo row of README.md, measured by the same code
        "gen": {
            # lxa9867/ImageFolder RobustTok-README.md: python3 evaluator.py VIRTUAL_imagenet256_labeled.npz
            "fid": "ADM TensorFlow evaluator (classify_image_graph_def.pb, pool_3)",
            # lxa9867/ImageFolder evaluator.py: uint8 batch fed to ExpandDims:0, the graph's ResizeBilinear
            "resize": "tf1-bilinear",
            # lxa9867/ImageFolder RobustTok-README.md: VIRTUAL_imagenet256_labeled.npz
            "dataset": "VIRTUAL_imagenet256_labeled.npz",
            # lxa9867/ImageFolder sample_imagenet_rar.py: num_fid_samples = 50000
            "images": 50000,
            # lxa9867/ImageFolder sample_imagenet_rar.py: list(range(num_classes)) * 50 labels
            "classes": "50 per class",
            # lxa9867/ImageFolder demo_util.py: clamp(127.5 * x + 128, 0, 255).to(uint8)
            "quantization": "clamp(127.5x + 128, 0, 255).to(uint8) (round half up)",
            # lxa9867/ImageFolder sample_imagenet_rar.py: samples saved as .png (lossless) into .npz
            "save": "lossless",
        },
    },
    ("tokbench_image_256.csv", "TokBench project page leaderboard"): {"tokbench": _TOKBENCH_PAGE},
    ("tokbench_image_512_1024_mean.csv", "TokBench project page leaderboard"): {"tokbench": _TOKBENCH_PAGE},
    ("tokbench_video.csv", "TokBench-Video leaderboard"): {"tokbench-video": _TOKBENCH_VIDEO_PAGE},
    ("vlm_pruning_llava15_7b.csv", "secondary compilation (ocy1/PIO-FVLM README)"): {
        "prune": {
            # vlm_pruning_llava15_7b.csv and ocy1/PIO-FVLM README.md: LLaVA-1.5-7B, checkpoint not named
            "base_model": "LLaVA-1.5-7B",
            # ocy1/PIO-FVLM README.md compiles each method's paper: benchmark files, splits not stated
            "dataset": UNKNOWN,
            # ocy1/PIO-FVLM README.md: decoding settings of the compiled numbers not stated
            "decoding": UNKNOWN,
        },
    },
}


# --- builders -----------------------------------------------------------------------------------------


def source_facts(table: str, source: str, suite: str) -> dict[str, Any]:
    """``{source_name, facts}``: the first ``SOURCE_FACTS`` source that ``source`` starts with in
    ``table`` and its facts for ``suite``; a source not in the table yet states nothing, so it gets
    every fact the known sources of ``suite`` have, as "unknown"."""
    for (known_table, prefix), suites in SOURCE_FACTS.items():
        if known_table == table and source.startswith(prefix) and suite in suites:
            return {"source_name": prefix, "facts": dict(suites[suite])}
    keys = sorted({key for suites in SOURCE_FACTS.values() for key in suites.get(suite, {})})
    return {"source_name": source, "facts": dict.fromkeys(keys, UNKNOWN)}


# --- comparability with reproduced protocols ------------------------------------------------------------


def _dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _preprocess_name(protocol: dict) -> Any:
    """The preprocessing's name (TokBench: the one letterbox of every resolution)."""
    letterboxes = _dig(protocol, "preprocess", "letterbox")
    if isinstance(letterboxes, list):
        names = {_dig(entry, "name") for entry in letterboxes}
        return names.pop() if len(names) == 1 else None
    return _dig(protocol, "preprocess", "name")


def _judge_names(protocol: dict) -> dict[str, Any]:
    """``{alias: judge name}`` of the protocol's judges."""
    return {alias: _dig(judge, "name") for alias, judge in (protocol.get("judges") or {}).items()}


#: Where a reproduced record's protocol states each fact a reported source can be compared on.
_REPRODUCED_FACTS: dict[str, Callable[[dict], Any]] = {
    "resize": lambda protocol: _dig(protocol, "judges", "inception", "resize"),
    "dataset": lambda protocol: _dig(protocol, "dataset", "name"),
    "images": lambda protocol: _dig(protocol, "dataset", "items_requested"),
    "preprocess": _preprocess_name,
    "quantization": lambda protocol: _dig(protocol, "quantization", "name") or protocol.get("quantization"),
    "perturbation": lambda protocol: _dig(protocol, "suite", "settings", "perturbation"),
    # recon, pfid and gen score the uint8 arrays themselves: no save step is a lossless one
    "save": lambda protocol: _dig(protocol, "save", "mode") or "lossless",
    "bucket_edges": lambda protocol: _dig(protocol, "suite", "settings", "bucket_edges"),
    "ocr_batches": lambda protocol: _dig(protocol, "ocr_batches", "mode"),
    "judges": _judge_names,
    "decoding": lambda protocol: protocol.get("decoding"),
}


def compares_with(
    reported_suite: str,
    reproduced_suite: str,
    reported_kind: str | None = None,
    reproduced_kind: str | None = None,
) -> bool:
    """Whether a reproduced suite measures what a reported suite reports: the suite or a variant of it
    named ``<suite>-...`` (``recon`` and ``recon-clean`` both measure ``recon``'s rFID) that evaluates
    the same kind of model (``tokbench-video`` evaluates video tokenizers: it is no variant of
    ``tokbench``). Kinds are the records' ``model.kind``; an unknown kind does not rule a suite out."""
    if reported_kind and reproduced_kind and reported_kind != reproduced_kind:
        return False
    return reproduced_suite == reported_suite or reproduced_suite.startswith(f"{reported_suite}-")


def _same(stated: Any, measured: Any) -> bool:
    """A stated fact equals a measured one; a stated mapping needs only its own keys to match."""
    if isinstance(stated, dict):
        return isinstance(measured, dict) and all(_same(v, measured.get(k)) for k, v in stated.items())
    return stated == measured and stated != UNKNOWN


def _shown(value: Any) -> str:
    """A fact as text: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def protocol_mismatches(reported: dict, reproduced: dict) -> list[str]:
    """Why a reported record's numbers were not measured like a reproduced record's; [] if they were.

    Every fact of the reported protocol that a reproduced protocol states is compared (Inception
    resize, dataset, image count, preprocessing, quantisation, perturbation, save step, bucket edges,
    judges, decoding); an ``unknown`` fact never matches, and a suite that does not measure the
    reported one (``compares_with``) is never comparable.
    """
    kinds = (reported.get("model", {}).get("kind"), reproduced.get("model", {}).get("kind"))
    if not compares_with(reported["suite"]["name"], reproduced["suite"]["name"], *kinds):
        return [f"suite {reproduced['suite']['name']} does not measure {reported['suite']['name']}"]
    facts = _dig(reported, "protocol", "facts") or {}
    compared = [key for key in facts if key in _REPRODUCED_FACTS]
    if not compared:
        return ["the source states no fact a reproduced protocol can be compared on"]
    reasons = []
    for key in compared:
        stated, measured = facts[key], _REPRODUCED_FACTS[key](reproduced.get("protocol") or {})
        if _same(stated, measured):
            continue
        if stated == UNKNOWN:
            reasons.append(f"{key} not stated by the source")
        elif measured is None:
            reasons.append(f"{key} {_shown(stated)} in the source, not stated by the reproduced protocol")
        else:
            reasons.append(f"{key} {_shown(stated)} in the source, {_shown(measured)} reproduced")
    return reasons


def fact_summary(facts: dict) -> str:
    """The facts a reader checks first, e.g. ``tf1-bilinear, imagenet-1k-val, 50000 images``."""
    parts = [_shown(facts[key]) for key in ("resize", "dataset") if key in facts]
    if "images" in facts:
        parts.append(f"{_shown(facts['images'])} images")
    return ", ".join(parts)
