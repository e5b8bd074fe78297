"""TiTok (Yu et al., 2024) as a network: its frozen ``TiTokConfig``, the 1D ViT encoder and decoder,
the VQ codebook and the diagonal-Gaussian posterior, assembled with the MaskGIT-VQGAN pixel decoder
of the two-stage models (``titok_pixel_decoder``) in ``TiTokModel``.

An independent implementation written against the architecture notes in
``shared/reference/titok/README.md``; parameter names follow the official checkpoints so their
state dicts load strictly. The official code's quirks are kept on purpose and marked "quirk".
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from tokbench.errors import ConfigError
from tokbench.models.checkpoints import adopt_state_dict
from tokbench.models.titok_pixel_decoder import PixelCodebook, PixelDecoder, PixelDecoderConfig

#: The MaskGIT-VQGAN pixel codebook size; the legacy decoder head predicts logits over it.
PIXEL_CODEBOOK_SIZE = 1024


@dataclass(frozen=True)
class ViTConfig:
    """One ViT: width, depth, heads and the square patch size (MLP ratio 4 in every official model)."""

    width: int
    num_layers: int
    num_heads: int
    patch_size: int
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class TiTokConfig:
    """Everything that fixes a TiTok network's shape and behaviour.

    ``is_legacy`` selects the token-mixing encoder reshape and the 1024-logit decoder head, and
    ``finetune_decoder`` attaches the pixel codebook and decoder: the two go together (two-stage
    models). ``quantize_mode`` is ``vq`` (tokens in a codebook of ``codebook_size``) or ``vae``
    (continuous latents of ``token_size`` channels per token).
    """

    image_size: int
    encoder: ViTConfig
    decoder: ViTConfig
    num_latent_tokens: int
    token_size: int
    quantize_mode: str = "vq"
    codebook_size: int | None = None
    use_l2_norm: bool = False
    is_legacy: bool = False
    finetune_decoder: bool = False
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)

    def __post_init__(self) -> None:
        vq, pixel_upsampling = self.quantize_mode == "vq", 2 ** (len(self.pixel_decoder.channel_mult) - 1)
        checks = (
            (self.quantize_mode in ("vq", "vae"), "quantize_mode must be 'vq' or 'vae'"),
            (not vq or (self.codebook_size or 0) > 1, "a vq model needs codebook_size > 1"),
            (vq or (self.codebook_size is None and not self.use_l2_norm), "a vae model has no codebook"),
            (self.finetune_decoder == self.is_legacy, "finetune_decoder and is_legacy go together"),
            (vq or not self.finetune_decoder, "finetune_decoder (two-stage) needs quantize_mode 'vq'"),
            (
                all(self.image_size % v.patch_size == 0 for v in (self.encoder, self.decoder)),
                "patch sizes must divide image_size",
            ),
            (
                all(v.width % v.num_heads == 0 for v in (self.encoder, self.decoder)),
                "heads must divide width",
            ),
            (
                not self.finetune_decoder or self.decoder.patch_size == pixel_upsampling,
                "the pixel decoder must upsample by the decoder patch size",
            ),
        )
        for ok, rule in checks:
            if not ok:
                raise ConfigError(f"TiTokConfig: {rule}; got {self}")

    @property
    def encoder_channels(self) -> int:
        """Channels the encoder emits per token: token_size, twice that for the VAE (mean, logvar)."""
        return self.token_size * (2 if self.quantize_mode == "vae" else 1)

    @property
    def bits_per_token(self) -> float | None:
        """log2(codebook size) for VQ models; None for continuous (VAE) latents."""
        return math.log2(self.codebook_size) if self.codebook_size else None


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``.

    Works in sequence-first layout (L, B, W), as ``nn.MultiheadAttention`` does by default, with
    exact (erf) GELU and LayerNorm eps 1e-5.
    """

    def __init__(self, width: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, num_heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(c_fc=nn.Linear(width, hidden), gelu=nn.GELU(), c_proj=nn.Linear(hidden, width))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.ln_1(x)
        x = x + self.attn(normed, normed, normed, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


def _run_blocks(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """Run batch-first tokens (B, L, W) through sequence-first blocks and back."""
    x = x.permute(1, 0, 2)
    for block in blocks:
        x = block(x)
    return x.permute(1, 0, 2)


def _blocks(vit: ViTConfig) -> nn.ModuleList:
    return nn.ModuleList(
        ResidualAttentionBlock(vit.width, vit.num_heads, vit.mlp_ratio) for _ in range(vit.num_layers)
    )


class TiTokEncoder(nn.Module):
    """Image patches plus N learned latent tokens through a ViT; the latents become a [B, C, 1, N]
    map (C = token_size for VQ, 2·token_size — mean and logvar — for the VAE)."""

    def __init__(self, config: TiTokConfig) -> None:
        super().__init__()
        vit, n = config.encoder, config.num_latent_tokens
        self.grid_size = config.image_size // vit.patch_size
        self.width, self.num_latent_tokens, self.is_legacy = vit.width, n, config.is_legacy
        self.out_channels = config.encoder_channels
        scale = vit.width**-0.5
        # Own parameters first: the official state dict lists them before the child modules.
        self.class_embedding = nn.Parameter(scale * torch.randn(1, vit.width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid_size**2 + 1, vit.width))
        self.latent_token_positional_embedding = nn.Parameter(scale * torch.randn(n, vit.width))
        self.patch_embed = nn.Conv2d(3, vit.width, kernel_size=vit.patch_size, stride=vit.patch_size)
        self.ln_pre = nn.LayerNorm(vit.width)
        self.transformer = _blocks(vit)
        self.ln_post = nn.LayerNorm(vit.width)
        self.conv_out = nn.Conv2d(vit.width, self.out_channels, kernel_size=1, bias=True)

    def forward(self, pixel_values: torch.Tensor, latent_tokens: torch.Tensor) -> torch.Tensor:
        batch = pixel_values.shape[0]
        patches = self.patch_embed(pixel_values).flatten(2).transpose(1, 2)  # B, g², W
        x = torch.cat([self.class_embedding.expand(batch, 1, -1).to(patches.dtype), patches], dim=1)
        x = x + self.positional_embedding.to(x.dtype)
        latents = latent_tokens.expand(batch, -1, -1).to(x.dtype) + self.latent_token_positional_embedding
        x = torch.cat([x, latents], dim=1)  # [cls, patches…, latents…]
        x = _run_blocks(self.transformer, self.ln_pre(x))
        latents = self.ln_post(x[:, 1 + self.grid_size**2 :])  # B, N, W
        if self.is_legacy:
            # quirk: a plain reshape of (B, N, W) to (B, W, N, 1) mixes features across tokens.
            latents = latents.reshape(batch, self.width, self.num_latent_tokens, 1)
        else:
            latents = latents.permute(0, 2, 1).unsqueeze(-1)
        latents = self.conv_out(latents)  # B, C, N, 1
        return latents.reshape(batch, self.out_channels, 1, self.num_latent_tokens)


def _patches_to_image(x: torch.Tensor, p: int) -> torch.Tensor:
    """``b (p1 p2 c) h w -> b c (h p1) (w p2)``: per-patch RGB predictions to an image."""
    b, _, h, w = x.shape
    x = x.reshape(b, p, p, 3, h, w).permute(0, 3, 4, 1, 5, 2)  # b, c, h, p1, w, p2
    return x.reshape(b, 3, h * p, w * p)


class TiTokDecoder(nn.Module):
    """Latent tokens plus g² mask tokens through a ViT; the mask tokens become a g×g map.

    Legacy (two-stage) models end in a 1×1-conv head predicting 1024-way pixel-codebook logits;
    the others predict p·p·3 pixels per patch, rearrange them and apply a 3×3 conv.
    """

    def __init__(self, config: TiTokConfig) -> None:
        super().__init__()
        vit, n, p = config.decoder, config.num_latent_tokens, config.decoder.patch_size
        self.grid_size, self.patch_size = config.image_size // p, p
        self.width, self.num_latent_tokens, self.is_legacy = vit.width, n, config.is_legacy
        scale = vit.width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(1, vit.width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid_size**2 + 1, vit.width))
        self.mask_token = nn.Parameter(scale * torch.randn(1, 1, vit.width))
        self.latent_token_positional_embedding = nn.Parameter(scale * torch.randn(n, vit.width))
        self.decoder_embed = nn.Linear(config.token_size, vit.width, bias=True)
        self.ln_pre = nn.LayerNorm(vit.width)
        self.transformer = _blocks(vit)
        self.ln_post = nn.LayerNorm(vit.width)
        if config.is_legacy:
            self.ffn = nn.Sequential(
                nn.Conv2d(vit.width, 2 * vit.width, 1),
                nn.Tanh(),
                nn.Conv2d(2 * vit.width, PIXEL_CODEBOOK_SIZE, 1),
            )
            self.conv_out: nn.Module = nn.Identity()
        else:
            self.ffn = nn.Sequential(nn.Conv2d(vit.width, p * p * 3, 1))  # then _patches_to_image
            self.conv_out = nn.Conv2d(3, 3, 3, padding=1, bias=True)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        batch, channels, height, length = latent.shape
        if height != 1 or length != self.num_latent_tokens:
            expected = f"[B, C, 1, {self.num_latent_tokens}]"
            raise ValueError(f"TiTok decoder expects a {expected} latent, got {tuple(latent.shape)}")
        x = self.decoder_embed(latent.reshape(batch, channels, length).permute(0, 2, 1))
        x = x + self.latent_token_positional_embedding[:length]
        masks = self.mask_token.expand(batch, self.grid_size**2, -1).to(x.dtype)
        masks = torch.cat([self.class_embedding.expand(batch, 1, -1).to(x.dtype), masks], dim=1)
        masks = masks + self.positional_embedding.to(x.dtype)
        x = torch.cat([masks, x], dim=1)  # [cls, masks…, latents…]
        x = _run_blocks(self.transformer, self.ln_pre(x))
        x = self.ln_post(x[:, 1 : 1 + self.grid_size**2])
        x = x.permute(0, 2, 1).reshape(batch, self.width, self.grid_size, self.grid_size)
        x = self.ffn(x.contiguous())
        return x if self.is_legacy else self.conv_out(_patches_to_image(x, self.patch_size))


class VectorQuantizer(nn.Module):
    """Nearest-codebook-entry quantizer (``embedding.weight`` [K, C]), optionally on L2-normalised
    vectors (then lookups return normalised rows)."""

    def __init__(self, codebook_size: int, token_size: int, use_l2_norm: bool) -> None:
        super().__init__()
        self.use_l2_norm = use_l2_norm
        self.embedding = nn.Embedding(codebook_size, token_size)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)

    def distances(self, vectors: torch.Tensor) -> torch.Tensor:
        """Squared distances (M, K) of M vectors (M, C) to every entry: ``|z|² + |e|² − 2 z·e``."""
        codebook = self.embedding.weight
        if self.use_l2_norm:
            vectors = F.normalize(vectors, dim=-1)
            codebook = F.normalize(codebook, dim=-1)
        return (
            vectors.pow(2).sum(dim=1, keepdim=True)
            + codebook.pow(2).sum(dim=1)
            - 2 * torch.einsum("md,dk->mk", vectors, codebook.t())
        )

    def search_vectors(self, latent: torch.Tensor) -> torch.Tensor:
        """A [B, C, 1, N] latent as the float32 [B, N, C] vectors the nearest-entry search compares
        (l2-normalised with use_l2_norm)."""
        vectors = latent.float()[:, :, 0].transpose(1, 2)
        return F.normalize(vectors, dim=-1) if self.use_l2_norm else vectors

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook rows for integer indices of any shape, appended as the last dimension."""
        rows = self.embedding(indices)
        return F.normalize(rows, dim=-1) if self.use_l2_norm else rows

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantise a [B, C, 1, N] latent; return the straight-through latent and tokens [B, 1, N]."""
        z = latent.float().permute(0, 2, 3, 1).contiguous()  # B, 1, N, C
        tokens = self.distances(z.reshape(-1, z.shape[-1])).argmin(dim=1)  # first index wins a tie
        quantized = self.lookup(tokens).view(z.shape)  # already normalised with use_l2_norm
        if self.use_l2_norm:
            z = F.normalize(z, dim=-1)
        # quirk: the official encode returns the straight-through value, not bitwise the codebook row.
        quantized = z + (quantized - z)
        return quantized.permute(0, 3, 1, 2).contiguous(), tokens.view(z.shape[0], z.shape[1], z.shape[2])


@dataclass(frozen=True)
class GaussianPosterior:
    """The VAE posterior: mean and logvar split along channels, logvar clamped to [−30, 20]."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @classmethod
    def from_moments(cls, moments: torch.Tensor) -> GaussianPosterior:
        mean, logvar = torch.chunk(moments.float(), 2, dim=1)
        return cls(mean=mean, logvar=logvar.clamp(-30.0, 20.0))

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample(self, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``mean + std·noise``; the noise is drawn from torch's global RNG when not given."""
        if noise is None:
            noise = torch.randn(self.mean.shape, device=self.mean.device)
        return self.mean + self.std * noise


def _official_init(module: nn.Module) -> None:
    """The official init of the ViT parts: N(0, 0.02) weights (the official trunc_normal_ cuts at
    ±2, i.e. ±100σ, so it never truncates), zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class TiTokModel(nn.Module):
    """A TiTok tokenizer network; its ``state_dict`` keys equal the official checkpoints'.

    Images are float32 [B, 3, H, W] in [0, 1] (no mean/std normalisation). Outputs of ``decode``,
    ``decode_tokens`` and ``forward`` are raw (not clamped), as in the official code.
    """

    def __init__(self, config: TiTokConfig) -> None:
        super().__init__()
        self.config = config
        width = config.encoder.width
        self.latent_tokens = nn.Parameter(width**-0.5 * torch.randn(config.num_latent_tokens, width))
        self.encoder = TiTokEncoder(config)
        self.decoder = TiTokDecoder(config)
        if config.quantize_mode == "vq":
            self.quantize = VectorQuantizer(config.codebook_size or 0, config.token_size, config.use_l2_norm)
        if config.finetune_decoder:
            self.pixel_quantize = PixelCodebook(PIXEL_CODEBOOK_SIZE, config.pixel_decoder.z_channels)
            self.pixel_decoder = PixelDecoder(config.pixel_decoder)

    @classmethod
    def random_init(cls, config: TiTokConfig, seed: int = 0) -> TiTokModel:
        """Random weights with the official init recipe, reproducible from ``seed`` (tests only).

        Uses a forked RNG, so torch's global random state is left as it was.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config)
            model.encoder.apply(_official_init)
            model.decoder.apply(_official_init)
        return model.eval()

    @classmethod
    def from_state_dict(cls, config: TiTokConfig, state_dict: Mapping[str, torch.Tensor]) -> TiTokModel:
        """Build without allocating random weights and adopt ``state_dict``: keys and shapes must match
        exactly (strict), values are taken as float32."""
        with torch.device("meta"):
            model = cls(config)
        adopt_state_dict(model, state_dict, "TiTok config")
        return model.eval()

    def posterior(self, moments: torch.Tensor) -> GaussianPosterior:
        """The VAE posterior of an encoder output [B, 2C, 1, N]."""
        return GaussianPosterior.from_moments(moments)

    def encode(self, images: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """VQ: token ids, int64 [B, 1, N]. VAE: the posterior mean [B, C, 1, N], or a draw from it
        (torch's global RNG) when ``sample``."""
        moments = self.encoder(images, self.latent_tokens)
        if self.config.quantize_mode == "vq":
            return self.quantize(moments)[1]
        posterior = self.posterior(moments)
        return posterior.sample() if sample else posterior.mode()

    def encode_latents(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """VQ: token ids int64 [B, N] (as ``encode``) and the quantiser's input vectors [B, N, C]
        (l2-normalised with use_l2_norm), from one encoder pass."""
        moments = self.encoder(images, self.latent_tokens)
        return self.quantize(moments)[1][:, 0], self.quantize.search_vectors(moments)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """A continuous latent [B, C, 1, N] to raw pixels [B, 3, H, W]."""
        decoded = self.decoder(latent)
        if self.config.finetune_decoder:  # soft mixture of pixel-codebook entries, not an argmax
            decoded = self.pixel_decoder(self.pixel_quantize.mix(decoded))
        return decoded

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """VQ: token ids [B, 1, N] or [B, N] to raw pixels. VAE: a latent [B, C, 1, N] to raw pixels."""
        if self.config.quantize_mode == "vae":
            return self.decode(tokens)
        if tokens.dim() == 3:
            tokens = tokens.squeeze(1)
        rows = self.quantize.lookup(tokens)  # B, N, C
        return self.decode(rows.permute(0, 2, 1).unsqueeze(2).contiguous())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``decode(encode)`` as the official ``forward``: the straight-through VQ latent, or a VAE
        posterior sample (global RNG)."""
        moments = self.encoder(images, self.latent_tokens)
        if self.config.quantize_mode == "vq":
            latent = self.quantize(moments)[0]
        else:
            latent = self.posterior(moments).sample()
        return self.decode(latent)
