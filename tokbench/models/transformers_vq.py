"""The image tokenizers of three multimodal LLMs through the official architectures in transformers
(``ChameleonVQVAE``, ``Emu3VQVAE``, ``JanusVQVAE``), as discrete tokenizers: ``chameleon-vq``,
``emu3-vq`` and ``janus-vq``.

Every official pipeline feeds its VQ-VAE RGB in [-1, 1] (Emu3 and Janus normalise with mean = std =
0.5; Chameleon's own tokenizer computes ``u8 / 255 * 2 - 1``; transformers' ``ChameleonImageProcessor``
computes ``u8 * 0.0078 - 1`` instead, 0.55% short of 2/255, which we do not copy), so images in
[0, 1] go in as ``2x - 1``; outputs come back as ``(x + 1) / 2`` clamped to [0, 1] (the official
pipelines clip the same way, then truncate to uint8; tokbench's tracks quantise by rounding, at most
one level apart). Resizing and cropping belong to the suite: H and W must be multiples of the
downsampling factor. Tokens are row-major over the h×w grid.

* **Janus** (``deepseek-community/Janus-Pro-1B``, ``model.vqmodel.*``): LlamaGen's VQ-16. The official
  quantiser L2-normalises the latent and the codebook before the nearest-entry search; transformers'
  ``JanusVQVAEVectorQuantizer.forward`` searches the raw latent against the raw codebook (it
  normalises only when decoding), which picks other tokens whenever the stored rows are not unit
  norm (49 of 64 golden tokens). We quantise as the official code does; the library's modules do
  the rest. LlamaGen-named checkpoints (``gen_vision_model.*`` of deepseek-ai's Janus, LlamaGen's own)
  load through a key map.
* **Emu3** (``BAAI/Emu3-VisionTokenizer``): a spatio-temporal VQ-VAE. A single image is repeated over
  the temporal window (4 frames) to give one temporal token slice, and the first decoded frame is the
  image, as ``Emu3VQVAE.encode``/``decode`` and the official ``autoencode.py`` do.
* **Chameleon** (``facebook/chameleon-7b``): transformers ships only the encoder side
  (``ChameleonVQVAE`` has no decoder, and the hub conversion drops the VQGAN's ``decoder.*`` keys).
  The decoder of Chameleon's ``vqgan.ckpt`` is the taming-transformers decoder, which is
  ``JanusVQVAEDecoder`` without attention in the lowest level (Chameleon's ``attn_resolutions`` is
  empty) and with the levels numbered the other way; we build it so and map the keys. Reconstruction
  therefore needs the original ``tokenizer/vqgan.ckpt`` (``--weights``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F

from tokbench.errors import ConfigError, WeightsError
from tokbench.models.transformers_vq_base import (
    RANDOM_INIT_SEED,
    TransformersVq,
    VqRelease,
    import_transformers,
)
from tokbench.models.transformers_vq_weights import VqState

# -- Janus: LlamaGen's VQ-16 ----------------------------------------------------------------------

#: LlamaGen / deepseek-ai Janus parameter names → transformers JanusVQVAE names (both number the
#: decoder levels lowest resolution first).
LLAMAGEN_TO_JANUS = (
    (re.compile(r"^encoder\.conv_blocks\.(\d+)\.res\."), r"encoder.down.\1.block."),
    (re.compile(r"^encoder\.conv_blocks\.(\d+)\.attn\."), r"encoder.down.\1.attn."),
    (re.compile(r"^encoder\.conv_blocks\.(\d+)\.downsample\."), r"encoder.down.\1.downsample."),
    (re.compile(r"^decoder\.conv_blocks\.(\d+)\.res\."), r"decoder.up.\1.block."),
    (re.compile(r"^decoder\.conv_blocks\.(\d+)\.attn\."), r"decoder.up.\1.attn."),
    (re.compile(r"^decoder\.conv_blocks\.(\d+)\.upsample\."), r"decoder.up.\1.upsample."),
    (re.compile(r"^(encoder|decoder)\.mid\.0\."), r"\1.mid.block_1."),
    (re.compile(r"^(encoder|decoder)\.mid\.1\."), r"\1.mid.attn_1."),
    (re.compile(r"^(encoder|decoder)\.mid\.2\."), r"\1.mid.block_2."),
)
#: LlamaGen's training-only usage counter, never read at inference.
LLAMAGEN_TRAINING_BUFFERS = ("quantize.codebook_used",)


def llamagen_to_janus_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A LlamaGen-named VQ state dict with transformers ``JanusVQVAE`` parameter names."""
    renamed = {}
    for key, value in state.items():
        if key in LLAMAGEN_TRAINING_BUFFERS:
            continue
        for pattern, replacement in LLAMAGEN_TO_JANUS:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed


JANUS = VqRelease(
    key="janus-vq",
    family="Janus VQ",
    class_name="JanusVQVAE",
    config={
        "embed_dim": 8,
        "num_embeddings": 16384,
        "latent_channels": 256,
        "base_channels": 128,
        "channel_multiplier": [1, 1, 2, 2, 4],
        "num_res_blocks": 2,
        "num_patches": 24,
        "dropout": 0.0,
    },
    hub_id="deepseek-community/Janus-Pro-1B",
    prefixes=("model.vqmodel.", "gen_vision_model.", ""),
    resolution=384,
    paper="Chen et al. Janus-Pro. arXiv:2501.17811; the tokenizer is LlamaGen's VQ-16 (arXiv:2406.06525)",
    verification="library: transformers JanusVQVAE + golden: reference/llamagen_vq",
    note="quantised as the official code (L2-normalised latent and codebook), not as JanusVQVAE.encode",
)


class JanusVq(TransformersVq):
    """Janus(-Pro)'s generation tokenizer: 16384 codes of dimension 8, f16, 24×24 tokens at 384 px."""

    release: ClassVar[VqRelease] = JANUS

    def state_to_model_keys(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if any(key.startswith("encoder.conv_blocks.") for key in state):
            return llamagen_to_janus_keys(state)
        return state

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The official search: nearest L2-normalised codebook row to the L2-normalised latent."""
        n, d, h, w = z.shape
        rows = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, d), dim=-1)
        codes = self.codebook()
        distances = rows.pow(2).sum(dim=1, keepdim=True) + codes.pow(2).sum(dim=1) - 2.0 * (rows @ codes.t())
        return distances.argmin(dim=1).reshape(n, h, w), rows.reshape(n, h, w, d)

    def codebook(self) -> torch.Tensor:
        """The L2-normalised K×8 codebook (the official code normalises the stored rows at use)."""
        return F.normalize(self.model.quantize.embedding.weight.detach().float(), dim=-1)

    def pixels(self, grid: torch.Tensor) -> torch.Tensor:
        entries = F.normalize(self.model.quantize.embedding(grid), dim=-1)
        hidden = self.model.post_quant_conv(entries.permute(0, 3, 1, 2).contiguous())
        return self.model.decoder(hidden)


# -- Emu3: a spatio-temporal VQ-VAE -----------------------------------------------------------------

EMU3 = VqRelease(
    key="emu3-vq",
    family="Emu3 VQ",
    class_name="Emu3VQVAE",
    config={
        "codebook_size": 32768,
        "embed_dim": 4,
        "latent_channels": 4,
        "double_latent": False,
        "in_channels": 3,
        "out_channels": 3,
        "temporal_downsample_factor": 4,
        "base_channels": 256,
        "channel_multiplier": [1, 2, 2, 4],
        "num_res_blocks": 2,
        "attn_resolutions": [3],
    },
    hub_id="BAAI/Emu3-VisionTokenizer",
    prefixes=("model.vqmodel.", ""),
    resolution=512,
    paper="Wang et al. Emu3: Next-Token Prediction is All You Need. arXiv:2409.18869",
    verification="library: transformers Emu3VQVAE",
    note="the processor resizes to 512²–1024² pixels (multiples of 8); tokens = 4096 at 512×512",
)


class Emu3Vq(TransformersVq):
    """Emu3's vision tokenizer: 32768 codes of dimension 4, f8 spatially, 4 frames → 1 temporally."""

    release: ClassVar[VqRelease] = EMU3

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The image repeated over the temporal window, encoded to one temporal slice N×D×h×w."""
        video = x.unsqueeze(1).repeat(1, int(self.config["temporal_downsample_factor"]), 1, 1, 1)
        hidden = self.model.encoder(video).permute(0, 2, 1, 3, 4)  # N×C×T×h×w
        return self.model.quant_conv(hidden)[:, :, 0]

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        indices = self.model.quantize(z.unsqueeze(1))[:, 0]
        return indices, z.permute(0, 2, 3, 1)

    def pixels(self, grid: torch.Tensor) -> torch.Tensor:
        return self.model.decode(grid)  # an N×h×w grid decodes as an image: the first frame


# -- Chameleon: the library's encoder, taming's decoder --------------------------------------------

CHAMELEON = VqRelease(
    key="chameleon-vq",
    family="Chameleon VQ",
    class_name="ChameleonVQVAE",
    config={
        "embed_dim": 256,
        "num_embeddings": 8192,
        "double_latent": False,
        "latent_channels": 256,
        "resolution": 512,
        "in_channels": 3,
        "base_channels": 128,
        "channel_multiplier": [1, 1, 2, 2, 4],
        "num_res_blocks": 2,
        "attn_resolutions": None,
        "dropout": 0.0,
        "attn_type": "vanilla",
    },
    hub_id="facebook/chameleon-7b",
    prefixes=("model.vqmodel.", ""),
    resolution=512,
    paper="Chameleon Team. Chameleon: Mixed-Modal Early-Fusion Foundation Models. arXiv:2405.09818",
    verification="library: transformers ChameleonVQVAE",
    note=(
        "the hub checkpoint has no VQGAN decoder (transformers drops it); reconstruction needs the "
        "original tokenizer/vqgan.ckpt via --weights"
    ),
    gated=True,
)
CHAMELEON_PARTS = ("encoder.", "decoder.", "quantize.", "quant_conv.", "post_quant_conv.")


class ChameleonVq(TransformersVq):
    """Chameleon's image tokenizer: 8192 codes of dimension 256, f16, 32×32 tokens at 512 px.

    ``weights`` must be the original release's ``tokenizer/vqgan.ckpt`` (or a state dict with its
    keys): the transformers checkpoint on the hub holds no decoder.
    """

    release: ClassVar[VqRelease] = CHAMELEON

    def _read_weights(self, weights: str | None, revision: str | None) -> VqState:
        if weights is None:
            raise WeightsError(
                f"chameleon-vq: {CHAMELEON.hub_id} cannot reconstruct: transformers' Chameleon checkpoint "
                "keeps only the VQGAN encoder (its conversion drops the decoder.* keys). Pass --weights "
                "PATH (model spec chameleon-vq:weights=PATH) with the original Chameleon release's "
                "tokenizer/vqgan.ckpt, which holds encoder, quantiser and decoder."
            )
        return super()._read_weights(weights, revision)

    def build(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """``ChameleonVQVAE`` plus taming's decoder, built from ``JanusVQVAEDecoder`` (the same blocks)
        with the lowest level's attention removed (Chameleon has no attention resolutions)."""
        if self.config.get("attn_resolutions"):
            raise ConfigError("chameleon-vq: only attn_resolutions=None (the released VQGAN) is supported")
        model = super().build(device)
        from transformers.models.janus.modeling_janus import JanusVQVAEDecoder

        config = import_transformers("JanusVQVAEConfig")(
            **{k: self.config[k] for k in ("base_channels", "channel_multiplier", "num_res_blocks")},
            latent_channels=self.config["latent_channels"],
            dropout=self.config["dropout"],
            out_channels=3,
        )
        with torch.random.fork_rng(devices=[]), torch.device(device):
            torch.manual_seed(RANDOM_INIT_SEED + 1)
            decoder = JanusVQVAEDecoder(config)
        decoder.up[0].attn = torch.nn.ModuleList()
        model.decoder = decoder.float()
        return model

    def state_to_model_keys(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The VQGAN's keys (training-loss modules dropped), taming's ``decoder.up.i`` (highest
        resolution first) renumbered to ``decoder.up.(L-1-i)``."""
        last = len(self.config["channel_multiplier"]) - 1
        pattern = re.compile(r"^decoder\.up\.(\d+)\.")
        return {
            pattern.sub(lambda m: f"decoder.up.{last - int(m.group(1))}.", key): value
            for key, value in state.items()
            if key.startswith(CHAMELEON_PARTS)
        }
