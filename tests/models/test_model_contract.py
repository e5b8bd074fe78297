"""The adapter contract over every registered model (plugins included), as timm's test_models.py does
for its registry: each name in ``MODELS.names()`` is built offline at a tiny size (random weights of
the real architecture, or none) and held to its kind's contract.

- Tokenizers: ``encode`` returns an ``Encoded`` (bits None or N finite sizes), ``decode`` returns
  float32 N×3×H×W in [0, 1], finite, the input's shape; the input is left untouched and the same
  input gives the same output whatever the global RNG state.
- Video tokenizers: the same on float32 N×T×3×H×W clips (a panning picture, ``frames`` long, a
  count the tokenizer's temporal compression accepts), decoded to the input's shape.
- Generators: ``sample(conditions, seeds)`` returns float32 N×3×H×W in [0, 1]; the same seeds give
  the same images, another seed changes its own image and no other.
- Pruners: pre-LLM ``reduce`` returns the budgeted number of tokens with distinct in-range indices
  (a selection is exactly the indexed tokens, in order; a kept [CLS] comes first, index -1);
  intra-LLM ``schedule`` and ``select_in_layer`` keep the budget from layer K on; both are
  deterministic for a fixed ``torch.Generator`` seed.

A registered name without an entry in ``CASES`` fails: a model cannot be registered without a case.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers_vq_tiny import tiny_transformers_vq

from tokbench.adapters.base import (
    Adapter,
    Encoded,
    Generator,
    LayerContext,
    PreLLMContext,
    Pruner,
    ReducedTokens,
    Tokenizer,
    VideoTokenizer,
    resolve_budget,
)
from tokbench.adapters.registry import MODELS, build_model
from tokbench.errors import ConfigError
from tokbench.models.files import FileReconstructions, FileSamples
from tokbench.tensors import quantize_uint8, tensor_to_pil
from tokbench.tracks.checks import check_bits, check_images

BATCH = 3
IDS = [f"contract-{i}" for i in range(BATCH)]


@dataclass(frozen=True)
class ContractCase:
    """How to build one registered model offline, tiny, and what to feed it.

    ``image_size`` is a tokenizer's input side or a generator's output side; ``conditions`` are a
    generator's conditions (None: class labels ``0, 1, …`` modulo ``num_classes``).
    """

    build: Callable[[], Adapter]
    image_size: int = 32
    conditions: tuple[Any, ...] | None = None
    #: Optional packages the model needs (skipped with the reason when one is not installed).
    requires: tuple[str, ...] = ()
    #: Over ~10 s on two busy cores: marked ``slow`` (still run in CI).
    slow: bool = False
    #: Frames per clip of a video tokenizer's input.
    frames: int = 9


def _spec(spec: str) -> Callable[[], Adapter]:
    """A factory that builds through the public path, ``build_model(spec)``."""
    return lambda: build_model(spec).adapter


def _tiny_titok() -> Adapter:
    """The default variant (l32: two-stage, legacy decoder head) shrunk to 32×32 images, 8 tokens,
    one-layer ViTs of width 32 and a 64-entry codebook."""
    from tokbench.models.titok import VARIANTS, PixelDecoderConfig, TiTok, TiTokModel, ViTConfig

    vit = ViTConfig(32, 1, 2, 16)
    config = dataclasses.replace(
        VARIANTS["l32"].config,
        image_size=32,
        encoder=vit,
        decoder=vit,
        num_latent_tokens=8,
        codebook_size=64,
        pixel_decoder=PixelDecoderConfig(32, 32, num_res_blocks=1),
    )
    return TiTok.from_model(TiTokModel.random_init(config, seed=0), name="contract-l32")


def _tiny_llamagen_vq() -> Adapter:
    """The ds16 design (five levels, attention at the lowest, asymmetric-pad downsampling) at
    widths 32/64, one encoder res block per level, z 32 and a 64-entry codebook: 2×2 tokens at 32×32."""
    from tokbench.models.llamagen_vq import VARIANTS, LlamaGenVQ, LlamaGenVQModel

    mult = (1, 1, 1, 1, 2)
    config = dataclasses.replace(
        VARIANTS["ds16-c2i"].config,
        codebook_size=64,
        encoder_ch_mult=mult,
        decoder_ch_mult=mult,
        z_channels=32,
        ch=32,
        num_res_blocks=1,
    )
    return LlamaGenVQ.from_model(LlamaGenVQModel.random_init(config, seed=0), name="contract-ds16")


def _tiny_diffusers_autoencoder(name: str) -> Callable[[], Adapter]:
    """A named diffusers-autoencoder adapter wrapping its class at a reduced config (the release
    configs are full size: hundreds of millions of weights)."""

    def build() -> Adapter:
        from diffusers_autoencoder_tiny import tiny_model

        cls = MODELS.get(name)
        return cls.from_model(tiny_model(cls.class_name))

    return build


def _generic_diffusers_autoencoder() -> Adapter:
    """``diffusers-autoencoder`` reading a reduced AutoencoderKL (FLUX.1 factors) saved to a folder."""
    import tempfile

    from diffusers_autoencoder_tiny import tiny_model

    with tempfile.TemporaryDirectory() as folder:
        tiny_model("AutoencoderKL").save_pretrained(folder)
        return build_model(f"diffusers-autoencoder:repo={folder}").adapter


def _tiny_video_vae(name: str) -> Callable[[], Adapter]:
    """A named video VAE adapter wrapping its class at a reduced config (video_vae_tiny.py)."""

    def build() -> Adapter:
        from video_vae_tiny import tiny_video_model

        cls = MODELS.get(name)
        return cls.from_model(tiny_video_model(cls.class_name))

    return build


def _generic_video_vae() -> Adapter:
    """``diffusers-video-autoencoder`` reading a reduced AutoencoderKLHunyuanVideo saved to a folder."""
    from video_vae_tiny import tiny_video_model

    with tempfile.TemporaryDirectory() as folder:
        tiny_video_model("AutoencoderKLHunyuanVideo").save_pretrained(folder)
        return build_model(f"diffusers-video-autoencoder:repo={folder}").adapter


def _tiny_open_magvit2() -> Adapter:
    """The f16 design of imagenet_256_L shrunk to width 32, one block per level and 10 LFQ bits:
    a 2×2 token grid at 32×32."""
    from tokbench.models.open_magvit2 import VARIANTS, OpenMagvit2, OpenMagvit2Model

    config = dataclasses.replace(
        VARIANTS["imagenet_256_L"].config, ch=32, ch_mult=(1, 1, 1, 1, 1), num_res_blocks=1, bits=10
    )
    return OpenMagvit2.from_model(OpenMagvit2Model.random_init(config, seed=0), name="contract-256")


def _tiny_var_vqvae() -> Adapter:
    """The released design (partially shared φ, K=4, L2 search, the 10-scale 256-px schedule) on a
    two-level network of width 32 with a 64-entry codebook: a 16×16 latent at 32×32, 680 tokens."""
    from tokbench.models.var_vqvae import VARIANTS, VarVqvae, VarVqvaeModel

    config = dataclasses.replace(
        VARIANTS[256].config, vocab_size=64, z_channels=8, ch=32, ch_mult=(1, 1), num_res_blocks=1
    )
    return VarVqvae.from_model(VarVqvaeModel.random_init(config, seed=0), name="contract-var")


def _tiny_dit() -> Adapter:
    """DiT-XL/2's transformer config (patch 2, adaLN-zero, learned sigma) shrunk to one layer of
    2×8 heads on a 4×4 latent, and the SD VAE config shrunk to three levels (f4): 16×16 samples."""
    from diffusers import AutoencoderKL

    from tokbench.models.diffusers_vae import VARIANTS as VAE_VARIANTS
    from tokbench.models.dit import DiT, build_transformer, transformer_config

    config = transformer_config(4) | {"num_layers": 1, "num_attention_heads": 2, "attention_head_dim": 8}
    vae_config = dict(VAE_VARIANTS["sd-ft-ema"].config) | {
        "block_out_channels": [8, 16, 16],
        "down_block_types": ["DownEncoderBlock2D"] * 3,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "sample_size": 16,
    }
    transformer = build_transformer(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        # DiT zero-initialises its adaLN and output layers: give them weights so that the
        # transformer's output (and with it guidance and the learned variance) is not identically 0.
        for parameter in transformer.parameters():
            parameter.data.normal_(0.0, 0.05)
        vae = AutoencoderKL(**vae_config)
    return DiT.from_modules(transformer, vae, guidance_scale=2.0, steps=2, sampler="ddpm")


#: One case per registered model name. Adding a model to the registry needs an entry here.
CASES: dict[str, ContractCase] = {
    # weightless codecs and baselines
    "identity": ContractCase(_spec("identity")),
    "resize": ContractCase(_spec("resize:factor=2")),
    "jpeg": ContractCase(_spec("jpeg:quality=30")),
    "webp": ContractCase(_spec("webp:quality=30")),
    "prefix-dct": ContractCase(_spec("prefix-dct:num_tokens=16,resolution=32")),
    # learned tokenizers: the real architectures with seeded random weights
    "titok": ContractCase(_tiny_titok),
    "llamagen-vq": ContractCase(_tiny_llamagen_vq),
    "var-vqvae": ContractCase(_tiny_var_vqvae),
    "open-magvit2": ContractCase(_tiny_open_magvit2),
    # the full-size KL-f8 (no smaller public path) at its smallest useful input: 2×2 latents
    "sd-vae": ContractCase(_spec("sd-vae:random_init=true"), image_size=16, requires=("diffusers",)),
    # the full-size LDM VQ-f4 at 16×16: 4×4 tokens
    "diffusers-vq": ContractCase(
        _spec("diffusers-vq:random_init=true"), image_size=16, requires=("diffusers",)
    ),
    # transformers VQ-VAEs at tiny configs of their classes (transformers_vq_tiny.py)
    **{
        name: ContractCase(partial(tiny_transformers_vq, name), requires=("transformers",))
        for name in ("chameleon-vq", "emu3-vq", "janus-vq")
    },
    # diffusers image autoencoders at reduced configs of their classes (diffusers_autoencoder_tiny.py)
    **{
        name: ContractCase(_tiny_diffusers_autoencoder(name), image_size=16, requires=("diffusers",))
        for name in ("dc-ae", "flux2-vae", "qwen-image-vae", "hunyuan-image-vae", "rae")
    },
    "diffusers-autoencoder": ContractCase(
        _generic_diffusers_autoencoder, image_size=16, requires=("diffusers",)
    ),
    # video codecs and baselines (PyAV, FFmpeg inside)
    **{
        name: ContractCase(_spec(spec), requires=("av",))
        for name, spec in (("h264", "h264:crf=30"), ("h265", "h265:crf=30"), ("av1", "av1:crf=40,preset=12"))
    },
    "video-identity": ContractCase(_spec("video-identity")),
    "video-resize": ContractCase(_spec("video-resize:factor=2")),
    # diffusers video VAEs at reduced configs of their classes (video_vae_tiny.py)
    **{
        name: ContractCase(_tiny_video_vae(name), requires=("diffusers",))
        for name in ("cogvideox-vae", "hunyuan-video-vae", "cosmos-vae", "wan-vae")
    },
    "diffusers-video-autoencoder": ContractCase(_generic_video_vae, requires=("diffusers",)),
    # generators
    "dit": ContractCase(_tiny_dit, image_size=16, requires=("diffusers",)),
    # outputs made elsewhere, read from files (their own contract: check_files)
    "reconstructions": ContractCase(lambda: _files_model("reconstructions")),
    "samples": ContractCase(lambda: _files_model("samples")),
    # VLM visual-token pruners ("none" keeps every token: a ratio of 1)
    "none": ContractCase(_spec("none:budget=1.0")),
    "random": ContractCase(_spec("random:budget=0.25")),
    "pool": ContractCase(_spec("pool:budget=0.25")),
    "cls-attn": ContractCase(_spec("cls-attn:budget=0.25")),
    "divprune": ContractCase(_spec("divprune:budget=0.25")),
    "visionzip": ContractCase(_spec("visionzip:budget=0.25")),
    "tome": ContractCase(_spec("tome:budget=0.25")),
    "tome-vit": ContractCase(_spec("tome-vit:budget=0.25")),
    "fastv": ContractCase(_spec("fastv:budget=0.25")),
    "fastv-official": ContractCase(_spec("fastv-official:budget=0.25")),
    "pdrop": ContractCase(_spec("pdrop:budget=0.25")),
}


def _registered() -> list[Any]:
    """Every registered name as a test parameter, marked ``slow`` where its case says so."""
    return [
        pytest.param(name, marks=[pytest.mark.slow] if name in CASES and CASES[name].slow else [], id=name)
        for name in MODELS.names()
    ]


def contract_case(name: str) -> ContractCase:
    """The case of ``name``; fails the test when there is none."""
    case = CASES.get(name)
    if case is None:
        pytest.fail(
            f"add a contract case for model {name!r}: an entry in CASES of tests/models/"
            "test_model_contract.py that builds it offline at a tiny size",
            pytrace=False,
        )
    return case


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: the tiny inputs gain nothing from more and lose much to oversubscription
    on a shared machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("name", _registered())
def test_registered_model_keeps_its_contract(name: str) -> None:
    case = contract_case(name)
    for module in case.requires:
        pytest.importorskip(module, reason=f"{name} needs {module} (pip install 'tokbench[{module}]')")
    registered = MODELS.get(name)
    adapter = case.build()
    assert isinstance(adapter, registered), f"the case of {name!r} builds {type(adapter).__name__}"
    assert adapter.to(torch.device("cpu")) is adapter
    sha = adapter.weights_sha256
    assert sha is None or re.fullmatch(r"[0-9a-f]{64}", sha), f"{name}: weights_sha256={sha!r}"
    if isinstance(adapter, FileReconstructions | FileSamples):
        check_files(name, adapter)
    elif isinstance(adapter, Tokenizer):
        assert adapter.kind == "tokenizer"
        check_tokenizer(name, adapter, case)
    elif isinstance(adapter, VideoTokenizer):
        assert adapter.kind == "video-tokenizer"
        check_video_tokenizer(name, adapter, case)
    elif isinstance(adapter, Generator):
        assert adapter.kind == "generator"
        check_generator(name, adapter, case)
    elif isinstance(adapter, Pruner):
        assert adapter.kind == "pruner"
        check_pruner(name, adapter)
    else:
        pytest.fail(f"{name!r} is neither a Tokenizer, a Generator nor a Pruner: {type(adapter).__mro__}")


def test_every_case_names_a_registered_model() -> None:
    stale = sorted(set(CASES) - set(MODELS.names()))
    assert not stale, f"contract cases for unregistered models: {stale}"


def test_a_model_without_a_case_fails_naming_it() -> None:
    with pytest.raises(pytest.fail.Exception, match="add a contract case for model 'not-a-model'"):
        contract_case("not-a-model")


# ---------------------------------------------------------------------------------------- tokenizers


def contract_images(count: int, side: int) -> torch.Tensor:
    """Smooth random images (coarse noise upsampled), float32 in [0, 1], the same on every call."""
    coarse = torch.rand((count, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    return torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear").clamp(0.0, 1.0)


def _files_model(name: str) -> Adapter:
    """``reconstructions:DIR`` / ``samples:DIR`` on a fresh folder of BATCH images of 32×32."""
    folder = Path(tempfile.mkdtemp(prefix="tokbench-contract-"))
    for index, image in enumerate(contract_images(BATCH, 32)):
        tensor_to_pil(image).save(folder / f"{IDS[index]}.png")
    return build_model(f"{name}:{folder}").adapter


def check_files(name: str, adapter: FileReconstructions | FileSamples) -> None:
    """Files made elsewhere: never encode/decode/sample; read back exactly what was written."""
    expected = quantize_uint8(contract_images(BATCH, 32))
    if isinstance(adapter, FileSamples):
        assert adapter.images.count == BATCH and adapter.num_classes is None
        assert torch.equal(torch.cat(list(adapter.images.batches(2))), expected)
        with pytest.raises(ConfigError, match="drawn elsewhere"):
            adapter.sample([0], [0])
        return
    read = torch.stack([adapter.read(IDS[i], IDS[i], (32, 32)) for i in range(BATCH)])
    assert torch.equal(read, expected), f"{name}: the files do not read back as written"
    with pytest.raises(ConfigError, match="made elsewhere"):
        adapter.encode(contract_images(1, 32))


def check_tokenizer(name: str, tokenizer: Tokenizer, case: ContractCase) -> None:
    images = contract_images(BATCH, case.image_size)
    original = images.clone()
    encoded = tokenizer.encode(images)
    assert isinstance(encoded, Encoded), f"{name}: encode() returned {type(encoded).__name__}"
    bits = check_bits(encoded.bits, BATCH, name, IDS)
    tokens = encoded.num_tokens
    assert tokens is None or (isinstance(tokens, int) and tokens > 0), f"{name}: num_tokens={tokens!r}"
    decoded = tokenizer.decode(encoded)
    check_images(decoded, images.shape, name, IDS)
    assert torch.equal(images, original), f"{name}: encode/decode changed its input"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)  # another global RNG state: the round trip must not depend on it
        encoded_again = tokenizer.encode(images)
        again = tokenizer.decode(encoded_again)
    assert torch.equal(decoded, again), f"{name}: the same images decode differently"
    bits_again = check_bits(encoded_again.bits, BATCH, name, IDS)
    assert (bits is None and bits_again is None) or torch.equal(bits, bits_again)


def contract_clips(count: int, frames: int, side: int) -> torch.Tensor:
    """Smooth random pictures panning one pixel a frame: float32 N×T×3×H×W in [0, 1], fixed."""
    coarse = torch.rand((count, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    wide = torch.nn.functional.interpolate(coarse, size=(side, side + frames), mode="bilinear")
    return torch.stack([wide[..., t : t + side] for t in range(frames)], dim=1).clamp(0.0, 1.0)


def check_video_tokenizer(name: str, tokenizer: VideoTokenizer, case: ContractCase) -> None:
    assert tokenizer.accepts_frames(case.frames), f"{name}: give the case a frame count it accepts"
    clips = contract_clips(BATCH, case.frames, case.image_size)
    original = clips.clone()
    encoded = tokenizer.encode(clips)
    assert isinstance(encoded, Encoded), f"{name}: encode() returned {type(encoded).__name__}"
    bits = check_bits(encoded.bits, BATCH, name, IDS)
    tokens = encoded.num_tokens
    assert tokens is None or (isinstance(tokens, int) and tokens > 0), f"{name}: num_tokens={tokens!r}"
    decoded = tokenizer.decode(encoded)
    check_images(decoded, clips.shape, name, IDS)
    assert torch.equal(clips, original), f"{name}: encode/decode changed its input"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)  # another global RNG state: the round trip must not depend on it
        encoded_again = tokenizer.encode(clips)
        again = tokenizer.decode(encoded_again)
    assert torch.equal(decoded, again), f"{name}: the same clips decode differently"
    bits_again = check_bits(encoded_again.bits, BATCH, name, IDS)
    assert (bits is None and bits_again is None) or torch.equal(bits, bits_again)


# ---------------------------------------------------------------------------------------- generators


def check_generator(name: str, generator: Generator, case: ContractCase) -> None:
    assert set(generator.settings()) == set(generator.sampling_settings)
    classes = generator.num_classes
    if case.conditions is not None:
        conditions = list(case.conditions[:BATCH])
    else:
        assert classes is not None and classes > 0, f"{name}: give the case conditions (no num_classes)"
        conditions = [i % classes for i in range(BATCH)]
    seeds = [11, 12, 13]
    shape = torch.Size((BATCH, 3, case.image_size, case.image_size))
    images = generator.sample(conditions, seeds)
    check_images(images, shape, name, IDS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)  # another global RNG state: only the seeds may matter
        again = generator.sample(conditions, seeds)
    assert torch.equal(images, again), f"{name}: the same seeds gave different images"
    other = generator.sample(conditions, [21, *seeds[1:]])
    check_images(other, shape, name, IDS)
    assert not torch.allclose(other[0], images[0]), f"{name}: another seed gave the same image"
    # image i is drawn from seeds[i] alone (up to float round-off across batch compositions)
    torch.testing.assert_close(other[1:], images[1:], rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------------------- pruners

GRID = (6, 6)
VISUAL = GRID[0] * GRID[1]
DIM, VISION_DIM, KEY_DIM, HEADS, PREFIX = 16, 12, 8, 2, 1
NUM_LAYERS = 8
TEXT_BEFORE, TEXT_AFTER = 3, 5


def _softmax_attention(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=generator).mul(3.0).softmax(dim=-1)


def pre_llm_context(pruner: Pruner, seed: int = 0) -> PreLLMContext:
    """Random visual tokens of a 6×6 grid with a [CLS] prefix and a linear projector; attention maps
    and keys only for pruners that declare ``needs_attention`` (as the host does), and a fresh
    seeded generator."""
    g = torch.Generator().manual_seed(100)
    sequence = PREFIX + VISUAL
    attentions = keys = None
    if pruner.needs_attention:
        attentions = _softmax_attention(g, BATCH, HEADS, sequence, sequence)
        keys = torch.randn((BATCH, sequence, KEY_DIM), generator=g)
    tokens = torch.randn((BATCH, VISUAL, DIM), generator=g)
    vision_features = torch.randn((BATCH, VISUAL, VISION_DIM), generator=g)
    text_embeddings = torch.randn((BATCH, TEXT_BEFORE + TEXT_AFTER, DIM), generator=g)
    projection = torch.randn((VISION_DIM, DIM), generator=g)
    return PreLLMContext(
        tokens=tokens,
        vision_features=vision_features,
        grid=GRID,
        vision_attentions=attentions,
        vision_keys=keys,
        num_prefix=PREFIX,
        text_embeddings=text_embeddings,
        generator=torch.Generator().manual_seed(seed),
        prefix_features=torch.randn((BATCH, PREFIX, VISION_DIM), generator=g),
        projector=lambda features: features @ projection,
    )


def layer_context(layer: int, visual: int) -> LayerContext:
    """Decoder layer ``layer`` with ``visual`` visual tokens between text tokens, random attention
    (the previous layer's map and this layer's last-query row)."""
    g = torch.Generator().manual_seed(200 + layer)
    length = TEXT_BEFORE + visual + TEXT_AFTER
    return LayerContext(
        layer=layer,
        attentions=_softmax_attention(g, BATCH, HEADS, length, length),
        visual_positions=torch.arange(TEXT_BEFORE, TEXT_BEFORE + visual),
        hidden_states=torch.randn((BATCH, length, DIM), generator=g),
        query_attention=_softmax_attention(g, BATCH, HEADS, length),
    )


def check_indices(name: str, index: torch.Tensor, keep: int, available: int, ordered: bool) -> None:
    """``B×keep`` int64 indices in ``[0, available)``, distinct per row (increasing if ``ordered``)."""
    assert index.dtype == torch.int64 and tuple(index.shape) == (BATCH, keep), (
        f"{name}: index {index.dtype} {tuple(index.shape)}, expected int64 {(BATCH, keep)}"
    )
    assert int(index.min()) >= 0 and int(index.max()) < available, f"{name}: index out of [0, {available})"
    for row in index:
        assert len(set(row.tolist())) == keep, f"{name}: an index appears twice in {row.tolist()}"
        if ordered:
            assert torch.equal(row, row.sort().values), f"{name}: a selection is not in original order"


def check_pruner(name: str, pruner: Pruner) -> None:
    keep = resolve_budget(pruner.budget, VISUAL)
    if pruner.stage == "pre-llm":
        check_pre_llm(name, pruner, keep)
    else:
        assert pruner.stage == "intra-llm", f"{name}: stage={pruner.stage!r}"
        check_intra_llm(name, pruner, keep)


def check_pre_llm(name: str, pruner: Pruner, keep: int) -> None:
    assert pruner.schedule(NUM_LAYERS, keep) == [], f"{name}: a pre-LLM pruner has no in-LLM schedule"
    context = pre_llm_context(pruner)
    tokens = context.tokens.clone()
    reduced = pruner.reduce(context, keep)
    assert isinstance(reduced, ReducedTokens), f"{name}: reduce() returned {type(reduced).__name__}"
    out = reduced.tokens
    assert out.dtype == tokens.dtype and tuple(out.shape) == (BATCH, keep, DIM), (
        f"{name}: tokens {out.dtype} {tuple(out.shape)} for budget {keep}, expected {(BATCH, keep, DIM)}"
    )
    assert bool(torch.isfinite(out).all()), f"{name}: non-finite tokens"
    assert torch.equal(context.tokens, tokens), f"{name}: reduce() changed its input tokens"
    kept_prefix = int((reduced.index[0] < 0).sum())  # a kept [CLS] (index -1) comes first
    assert kept_prefix <= PREFIX and bool((reduced.index[:, :kept_prefix] == -1).all()), (
        f"{name}: index -1 (a prefix token) only in the first {PREFIX} slot(s): {reduced.index.tolist()}"
    )
    patches = reduced.index[:, kept_prefix:]
    check_indices(name, patches, keep - kept_prefix, VISUAL, ordered=not pruner.merges_tokens)
    if not pruner.merges_tokens:  # a selection is the indexed tokens themselves
        expected = torch.stack([tokens[b, reduced.index[b]] for b in range(BATCH)])
        assert torch.equal(out, expected), f"{name}: selected tokens differ from tokens[index]"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)  # another global RNG state: only the context's generator may matter
        again = pruner.reduce(pre_llm_context(pruner), keep)
    assert torch.equal(out, again.tokens) and torch.equal(reduced.index, again.index), (
        f"{name}: the same context and generator seed gave another reduction"
    )


def check_intra_llm(name: str, pruner: Pruner, keep: int) -> None:
    schedule = pruner.schedule(NUM_LAYERS, keep)
    assert schedule and schedule[0][1] == keep, f"{name}: schedule {schedule} does not start at {keep}"
    layers, counts = [layer for layer, _ in schedule], [count for _, count in schedule]
    assert layers == sorted(set(layers)) and layers[0] >= 1 and layers[-1] < NUM_LAYERS, (
        f"{name}: schedule layers {layers} not increasing within [1, {NUM_LAYERS})"
    )
    assert counts == sorted(counts, reverse=True) and counts[-1] >= 1, f"{name}: counts {counts}"
    with pytest.raises(NotImplementedError):
        pruner.reduce(pre_llm_context(pruner), keep)
    visual = VISUAL
    for layer, count in schedule:
        chosen = pruner.select_in_layer(layer_context(layer, visual), count)
        check_indices(name, chosen, count, visual, ordered=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(12345)
            again = pruner.select_in_layer(layer_context(layer, visual), count)
        assert torch.equal(chosen, again), f"{name}: layer {layer} selected differently on the same input"
        visual = count
