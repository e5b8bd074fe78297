"""Video autoencoders that diffusers ships, as continuous video tokenizers: the conventions of each
class, the shared adapter, and the generic ``diffusers-video-autoencoder``.

Clips enter as float32 N×T×3×H×W in [0, 1] and are given to the VAE as N×3×T×H×W in [-1, 1]. The
encoder's posterior mode (or plain latent) is normalised as each class's diffusers pipelines do before
their transformer sees it, and the inverse is applied before decoding, so the payload is the
generator's latent (float32 N×C×t×h×w), computed with each pipeline's own arithmetic (``(1 / s) · z``
and ``z / s`` round differently), so the round trip is bit-identical to the pipelines':

* CogVideoX, HunyuanVideo, HunyuanVideo-1.5, Allegro, EasyAnimate (Magvit), SVD's temporal decoder:
  ``z · scaling_factor``;
* LTX-Video and LTX-2: ``(z − latents_mean) · scaling_factor / latents_std`` (the VAE's buffers);
* Wan: ``(z − latents_mean) · (1 / latents_std)`` (config); Mochi: ``(z − mean) · scaling_factor / std``;
* Cosmos: ``(z − mean) · scaling_factor / std`` with its per-channel, per-latent-frame statistics
  (the video2world pipeline multiplies by its scheduler's ``sigma_data`` instead of
  ``scaling_factor``: a scheduler setting, not the VAE's, and the round trip is the same);
* VidTok: none (no diffusers pipeline uses it); its FSQ variant is discrete: ``bits`` is
  t·h·w·log2(codebook size).

Tiling, slicing and frame-wise (temporally tiled) encoding change the results, so they are switched
off, except for Allegro, whose diffusers class encodes only tiled: its clips must be exactly covered
by its tiles (24 frames + 16k, ``sample_size`` + k·stride pixels). Each class declares the frame
counts its temporal compression accepts (causal VAEs: ``multiple·k + 1``; CogVideoX decodes latent
frames in pairs, so 8k + 1) and its spatial multiple; other clips are refused naming the shape.
Named releases are in ``video_vae_zoo``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from tokbench.adapters.base import Encoded, VideoTokenizer
from tokbench.errors import AdapterOutputError, ConfigError
from tokbench.models.diffusers_autoencoders import DiffusersModel, FromRepository, plain_config_value
from tokbench.models.network_adapter import describe as describe_value

#: Model switches that tile or slice the work; each is set False unless the class needs it (recorded).
SWITCHES = ("use_tiling", "use_slicing", "use_framewise_encoding", "use_framewise_decoding")


def _view(values: Any, z: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=z.dtype, device=z.device).view(1, -1, 1, 1, 1)


def _scale(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    scale = model.config.scaling_factor
    return z / scale if inverse else z * scale


def _scale_reciprocal(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    """``z · s``, decoded as ``(1 / s) · z`` (the CogVideoX, Allegro, EasyAnimate and SVD pipelines)."""
    scale = model.config.scaling_factor
    return 1 / scale * z if inverse else scale * z


def _mean_std(
    mean: torch.Tensor, std: torch.Tensor, scale: float, z: torch.Tensor, inverse: bool
) -> torch.Tensor:
    return z * std / scale + mean if inverse else (z - mean) * scale / std


def _buffers(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    mean, std = _view(model.latents_mean, z), _view(model.latents_std, z)
    return _mean_std(mean, std, model.config.scaling_factor, z, inverse)


def _mochi(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    config = model.config
    return _mean_std(
        _view(config.latents_mean, z), _view(config.latents_std, z), config.scaling_factor, z, inverse
    )


def _wan(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    """``(z − mean) · (1 / std)``, decoded as ``z / (1 / std) + mean`` (the Wan pipelines)."""
    mean, inverse_std = _view(model.config.latents_mean, z), 1.0 / _view(model.config.latents_std, z)
    return z / inverse_std + mean if inverse else (z - mean) * inverse_std


def _cosmos(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    config = model.config
    if config.latents_mean is None or config.latents_std is None:
        return _scale(model, z, inverse)
    frames = z.shape[2]
    shape = (1, config.latent_channels, -1, 1, 1)
    mean = torch.as_tensor(config.latents_mean, dtype=z.dtype).view(shape)[:, :, :frames].to(z.device)
    std = torch.as_tensor(config.latents_std, dtype=z.dtype).view(shape)[:, :, :frames].to(z.device)
    return _mean_std(mean, std, config.scaling_factor, z, inverse)


def _none(model: Any, z: torch.Tensor, inverse: bool) -> torch.Tensor:
    return z


def _setting(model: Any, name: str) -> Any:
    """An attribute the class computed in ``__init__`` (e.g. LTX's compression ratios when the config
    leaves them None), else the config value (never diffusers' deprecated config-attribute fallback)."""
    value = vars(model).get(name)
    return model.config.get(name) if value is None else value


def _levels(model: Any) -> int:
    return 2 ** (len(model.config.block_out_channels) - 1)


def _spatial_ratio(model: Any) -> int:
    return int(_setting(model, "spatial_compression_ratio"))


def _causal(model: Any) -> tuple[int, int]:
    return int(_setting(model, "temporal_compression_ratio")), 1


@dataclass(frozen=True)
class VideoConvention:
    """How one diffusers video VAE class is called, normalised and what clip shapes it takes."""

    class_name: str
    #: ``(model, latents, inverse)`` → normalised latents (inverse: back to the VAE's own latents).
    normalise: Callable[[Any, torch.Tensor, bool], torch.Tensor]
    #: Model → (frame multiple, frame offset): T with (T − offset) % multiple == 0 and T >= offset.
    frames: Callable[[Any], tuple[int, int]]
    #: Model → spatial multiple of H and W.
    spatial: Callable[[Any], int]
    #: Names of the normalisation factors recorded (config keys, or model buffers for LTX).
    factor_keys: tuple[str, ...] = ("scaling_factor",)
    #: "video" (N×3×T×H×W in and out), "frames" (a 2-D encoder over frames, a temporal decoder),
    #: "vidtok" (causal front padding, a tensor from decode), "allegro" (tiled, decodes N×T×3×H×W).
    calling: str = "video"


def _ltx_compression(model: Any) -> tuple[int, int]:
    """(temporal, spatial) compression of an LTX or LTX-2 encoder, from its block types: a scaling block
    halves time and space ("conv", LTX-0.9.0's blocks, "spatiotemporal"), space ("spatial") or time
    ("temporal"). The classes' own attributes, when the config leaves them None, count every scaling
    block as both, which is wrong for LTX-2's default (spatial, temporal, spatio-temporal ×2) blocks."""
    config = model.config
    flags = config.spatio_temporal_scaling
    if isinstance(flags, bool):
        flags = [flags] * len(config.block_out_channels)
    temporal, spatial = config.patch_size_t, config.patch_size
    blocks = list(config.down_block_types)
    if blocks[-1] == "LTXVideo095DownBlock3D":  # LTX-0.9.5 builds one block fewer than its channel list
        blocks = blocks[: len(config.block_out_channels) - 1]
    for flag, block, kind in zip(flags, blocks, config.downsample_type, strict=False):
        kind = "conv" if block == "LTXVideoDownBlock3D" else kind  # 0.9.0 blocks ignore downsample_type
        if flag and kind in ("conv", "spatiotemporal", "temporal"):
            temporal *= 2
        if flag and kind in ("conv", "spatiotemporal", "spatial"):
            spatial *= 2
    return temporal, spatial


def _vidtok_frames(model: Any) -> tuple[int, int]:
    if model.is_causal:
        return int(_setting(model, "temporal_compression_ratio")), 1
    return int(model.num_sample_frames_batch_size), 0


def _allegro_frames(model: Any) -> tuple[int, int]:
    return int(model.stride[0]), int(model.kernel[0])


_MEAN_STD = ("latents_mean", "latents_std")

#: The video autoencoder classes the adapters accept, by ``_class_name``.
VIDEO_CONVENTIONS: dict[str, VideoConvention] = {
    c.class_name: c
    for c in (
        VideoConvention(
            "AutoencoderKLCogVideoX",
            _scale_reciprocal,
            lambda m: (2 * int(m.config.temporal_compression_ratio), 1),
            _levels,
            ("scaling_factor", "shift_factor", "invert_scale_latents"),
        ),
        VideoConvention("AutoencoderKLHunyuanVideo", _scale, _causal, _spatial_ratio),
        VideoConvention("AutoencoderKLHunyuanVideo15", _scale, _causal, _spatial_ratio),
        *(
            VideoConvention(
                name,
                _buffers,
                lambda m: (_ltx_compression(m)[0], 1),
                lambda m: _ltx_compression(m)[1],
                ("scaling_factor", *_MEAN_STD),
            )
            for name in ("AutoencoderKLLTXVideo", "AutoencoderKLLTX2Video")
        ),
        VideoConvention(
            "AutoencoderKLWan",
            _wan,
            lambda m: (2 ** sum(m.config.temperal_downsample), 1),
            lambda m: 2 ** (len(m.config.dim_mult) - 1) * (m.config.patch_size or 1),
            _MEAN_STD,
        ),
        VideoConvention(
            "AutoencoderKLMochi",
            _mochi,
            _causal,
            _spatial_ratio,
            ("scaling_factor", *_MEAN_STD),
        ),
        VideoConvention(
            "AutoencoderKLAllegro", _scale_reciprocal, _allegro_frames, _spatial_ratio, calling="allegro"
        ),
        VideoConvention(
            "AutoencoderKLCosmos", _cosmos, _causal, _spatial_ratio, ("scaling_factor", *_MEAN_STD)
        ),
        VideoConvention("AutoencoderKLMagvit", _scale_reciprocal, _causal, _spatial_ratio),
        VideoConvention(
            "AutoencoderVidTok",
            _none,
            _vidtok_frames,
            lambda m: 2 ** len(m.encoder.spatial_ds),
            ("regularizer", "codebook_size", "is_causal"),
            calling="vidtok",
        ),
        VideoConvention(
            "AutoencoderKLTemporalDecoder", _scale_reciprocal, lambda m: (1, 0), _levels, calling="frames"
        ),
    )
}


def video_convention_for(class_name: str, owner: str) -> VideoConvention:
    """The convention of ``class_name``, or a ``ConfigError`` naming it and the supported classes."""
    if class_name not in VIDEO_CONVENTIONS:
        raise ConfigError(
            f"{owner}: {class_name!r} is not a supported diffusers video autoencoder (image autoencoders: "
            f"use diffusers-autoencoder); supported: {', '.join(VIDEO_CONVENTIONS)}"
        )
    return VIDEO_CONVENTIONS[class_name]


class DiffusersVideoAutoencoderBase(DiffusersModel, VideoTokenizer):
    """A diffusers video VAE as a continuous video tokenizer: clips in [0, 1] → generator latents
    (the pipeline's normalisation applied) → clips in [0, 1], clamped."""

    version: ClassVar[str] = "1"

    convention: VideoConvention
    config: dict[str, Any]

    def _attach(self, model: torch.nn.Module, convention: VideoConvention, label: str) -> None:
        self.model = model.eval().requires_grad_(False)
        self.convention, self.label, self.config = convention, label, dict(model.config)
        for switch in SWITCHES:
            if hasattr(model, switch):
                setattr(model, switch, False)
        if convention.calling == "allegro":
            model.enable_tiling()  # the class has no untiled path
        self.frame_multiple, self.frame_offset = convention.frames(model)
        self.spatial_multiple = convention.spatial(model)

    @classmethod
    def wrap(cls, model: torch.nn.Module, label: str) -> DiffusersVideoAutoencoderBase:
        """An adapter around an already built model of a supported class (e.g. a reduced config, for
        tests), without weights provenance."""
        convention = video_convention_for(type(model).__name__, label)
        adapter = DiffusersVideoAutoencoderBase.__new__(DiffusersVideoAutoencoderBase)
        adapter.commit, adapter._sha256, adapter.source = None, None, f"model({type(model).__name__})"
        adapter._attach(model.float(), convention, label)
        return adapter

    @property
    def discrete(self) -> bool:
        """A VidTok FSQ model: its latents are codebook entries with a size in bits."""
        return self.convention.calling == "vidtok" and self.model.regularizer == "fsq"

    def factors(self) -> dict[str, Any]:
        """The latent-normalisation factors in use (config values, or the model's buffers)."""
        found = {}
        for key in self.convention.factor_keys:
            buffers = dict(self.model.named_buffers())
            value = buffers[key].tolist() if key in buffers else self.config.get(key)
            found[key] = plain_config_value(value)
        return found

    def describe(self) -> dict[str, Any]:
        """The class, where its weights came from, the normalisation and the tiling switches."""
        return {
            **self._provenance(),
            "frames": {"multiple": self.frame_multiple, "offset": self.frame_offset},
            "spatial_multiple": self.spatial_multiple,
            "normalisation": self.factors(),
            "switches": {s: bool(getattr(self.model, s)) for s in SWITCHES if hasattr(self.model, s)},
        }

    def shape_rule(self) -> str:
        """The clip shapes this model takes, in words (for errors)."""
        m, o = self.frame_multiple, self.frame_offset
        frames = f"T = {o} + {m}k" if o else f"T a multiple of {m}"
        if self.convention.calling == "allegro":
            kernel, stride = self.model.kernel, self.model.stride
            return (
                f"{frames}; H = {kernel[1]} + {stride[1]}k and W = {kernel[2]} + {stride[2]}k "
                "(Allegro's tiles must cover the clip)"
            )
        return f"{frames}; H and W multiples of {self.spatial_multiple}"

    def _fits(self, height: int, width: int) -> bool:
        if self.convention.calling == "allegro":
            kernel, stride = self.model.kernel, self.model.stride
            return all(
                side >= k and (side - k) % s == 0
                for side, k, s in ((height, kernel[1], stride[1]), (width, kernel[2], stride[2]))
            )
        return height % self.spatial_multiple == 0 and width % self.spatial_multiple == 0

    def _check_clips(self, clips: Any) -> None:
        fits = (
            isinstance(clips, torch.Tensor)
            and clips.dtype == torch.float32
            and clips.ndim == 5
            and clips.shape[2] == 3
            and self.accepts_frames(clips.shape[1])
            and self._fits(clips.shape[3], clips.shape[4])
        )
        if not fits:
            raise ConfigError(
                f"{self.label}: encode expects float32 clips [N, T, 3, H, W] in [0, 1] with "
                f"{self.shape_rule()}; got {describe_value(clips)}"
            )

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        """The VAE's own latents (1×C×t×h×w) of one clip, 1×T×3×H×W in [-1, 1]."""
        calling = self.convention.calling
        if calling == "frames":  # a 2-D encoder over the frames
            return self.model.encode(x[0]).latent_dist.mode().transpose(0, 1)[None]
        x = x.transpose(1, 2)
        if calling == "vidtok" and self.model.is_causal:  # as AutoencoderVidTok.forward pads
            x = torch.cat([x[:, :, :1]] * (self.model.temporal_compression_ratio - 1) + [x], dim=2)
        output = self.model.encode(x)
        return output[0] if isinstance(output, tuple) else output.latent_dist.mode()

    def _pixels(self, z: torch.Tensor, frames: int) -> torch.Tensor:
        """One clip (1×T×3×H×W in [-1, 1]) decoded from the VAE's own latents."""
        calling = self.convention.calling
        if calling == "frames":
            return self.model.decode(z[0].transpose(0, 1).contiguous(), num_frames=frames).sample[None]
        if calling == "vidtok":
            return self.model.decode(z).transpose(1, 2)
        if calling == "allegro":
            return self.model.decode(z).sample  # already N×T×3×H×W
        return self.model.decode(z).sample.transpose(1, 2)

    def encode(self, clips: torch.Tensor) -> Encoded:
        """Encode clip by clip (as the video2world pipelines do): a clip's latents never depend on
        the batch, and HunyuanVideo-1.5's causal attention mask fails on batches of several clips."""
        self._check_clips(clips)
        n, t = clips.shape[:2]
        with torch.inference_mode():
            x = clips.to(self._device) * 2.0 - 1.0
            latents = torch.cat([self._latents(x[i : i + 1]) for i in range(n)])
            payload = self.convention.normalise(self.model, latents, False).float().clone()
        positions = int(math.prod(payload.shape[2:]))
        bits = None
        if self.discrete:
            per_clip = positions * math.log2(self.model.config.codebook_size)
            bits = torch.full((n,), per_clip, dtype=torch.float64)
        return Encoded(payload=(payload, t), bits=bits, num_tokens=positions)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        """Decode clip by clip to float32 N×T×3×H×W in [0, 1]."""
        payload = encoded.payload
        if not (
            isinstance(payload, tuple)
            and len(payload) == 2
            and isinstance(payload[0], torch.Tensor)
            and payload[0].dtype == torch.float32
            and payload[0].ndim == 5
        ):
            raise ConfigError(f"{self.label}: decode expects this adapter's (latents, frames) payload")
        latents, frames = payload
        with torch.inference_mode():
            z = self.convention.normalise(self.model, latents.to(self._device), True)
            pixels = torch.cat([self._pixels(z[i : i + 1], frames) for i in range(z.shape[0])])
            pixels = ((pixels.float() + 1.0) / 2.0).clamp(0.0, 1.0)
        if pixels.shape[1] != frames:
            raise AdapterOutputError(
                f"{self.label}: decoded {pixels.shape[1]} frames from latents of {frames}; "
                f"{self.shape_rule()}"
            )
        return pixels.contiguous().clone()


class DiffusersVideoAutoencoder(FromRepository, DiffusersVideoAutoencoderBase):
    """Any supported diffusers video autoencoder, read from a hub repository or a local folder
    (arguments: ``FromRepository``); classes other than ``VIDEO_CONVENTIONS``' raise a ``ConfigError``
    naming the class."""

    model_name = "diffusers-video-autoencoder"
    find_convention = staticmethod(video_convention_for)
