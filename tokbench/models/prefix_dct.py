"""A small, real variable-length tokenizer: the first ``num_tokens`` zig-zag DCT coefficients.

``PrefixDct`` is the reference for token-count sweeps. It needs no weights, is deterministic and
cheap on a CPU, and keeps an ordered 1-D token sequence the way FlexTok and One-D-Piece do, so
cutting it to its first k tokens gives coarser but still whole images:

1. the image is converted to YCbCr (JPEG's full-range matrix) with luma centred on 0;
2. each channel gets a whole-image orthonormal 2-D DCT-II;
3. frequency positions (u, v) are ordered zig-zag (by diagonal u + v, alternating direction, as in
   JPEG), low frequencies first; token t is the (Y, Cb, Cr) coefficient triple at position t;
4. each coefficient is divided by a fixed step that shrinks with frequency (natural images'
   coefficients fall roughly as 1/frequency), rounded and clipped to ``levels`` integer levels;
   the token index is the mixed-radix number of the three levels, so the codebook has
   ``levels ** 3`` entries (4096, i.e. 12 bits per token, by default).

Decoding places the dequantised triples back, leaves the other coefficients at zero, inverts the
DCT and colour transform and clamps to [0, 1]. The codebook (``DiscreteTokenizer``) is the integer
level grid, the space where quantisation rounds to the nearest entry, so pFID applies as well.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar

import torch

from tokbench.adapters.base import Encoded, ModelCard, Tokenizer, VariableLengthTokenizer
from tokbench.adapters.discrete import DiscreteTokenizer
from tokbench.errors import ConfigError

#: Largest token count (positions of the spectrum kept); the image must have at least this many pixels.
MAX_TOKENS = 4096
_RGB_TO_YCBCR = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=torch.float64
)
#: Largest expected |coefficient| at radial frequency f > 0 is about AC_SCALE / f for luma (measured
#: on the embedded images at 256×256: the 99th percentile), a third of that for chroma.
_AC_SCALE = 48.0
_CHROMA_SCALE = (1.0, 1 / 3, 1 / 3)


@lru_cache(maxsize=8)
def dct_matrix(size: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix (float64, size×size): ``coefficients = D @ signal``."""
    n = torch.arange(size, dtype=torch.float64)
    matrix = torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size)) * math.sqrt(2 / size)
    matrix[0] /= math.sqrt(2)
    return matrix


@lru_cache(maxsize=8)
def zigzag_positions(height: int, width: int, count: int) -> torch.Tensor:
    """The first ``count`` (u, v) positions of an height×width spectrum in JPEG zig-zag order (count×2)."""
    positions: list[tuple[int, int]] = []
    diagonal = 0
    while len(positions) < count:
        cells = [(u, diagonal - u) for u in range(diagonal + 1) if u < height and diagonal - u < width]
        positions += cells if diagonal % 2 else cells[::-1]  # even diagonals run from bottom-left up
        diagonal += 1
    return torch.tensor(positions[:count], dtype=torch.int64)


def quantisation_steps(positions: torch.Tensor, height: int, width: int, levels: int) -> torch.Tensor:
    """Step of each (position, channel) (float64, T×3): the expected range split into ``levels``."""
    frequency = positions.to(torch.float64).norm(dim=1)
    dc_range = 0.5 * math.sqrt(height * width)
    amplitude = torch.where(frequency > 0, _AC_SCALE / frequency.clamp(min=1.0), dc_range)
    scale = torch.tensor(_CHROMA_SCALE, dtype=torch.float64)
    amplitude = torch.where(frequency[:, None] > 0, amplitude[:, None] * scale, amplitude[:, None])
    return 2 * amplitude / levels


class PrefixDct(VariableLengthTokenizer, DiscreteTokenizer, Tokenizer):
    """Keeps the first ``num_tokens`` zig-zag DCT coefficient triples, each one codebook index.

    ``levels`` (even, 2–64) quantisation levels per channel give a codebook of ``levels ** 3``
    entries; ``bits`` is ``num_tokens × log2(levels ** 3)`` per image. Images are
    ``resolution``×``resolution`` (the recon suite's 256 by default); the payload is the int64
    N×num_tokens token indices.
    """

    version: ClassVar[str] = "1"

    @classmethod
    def cards(cls) -> tuple[ModelCard, ...]:
        """The default configuration: 256 tokens of a 4096-entry codebook at 256×256."""
        return (
            ModelCard(
                family="prefix-DCT (tokbench reference)",
                spec="prefix-dct",
                kind="discrete",
                tokens=256,
                codebook=16**3,
                resolution=256,
                verification="none",
                note="tokbench's own weightless reference for token-count sweeps; no official code exists",
            ),
        )

    supported_num_tokens: ClassVar[range] = range(1, MAX_TOKENS + 1)

    def __init__(self, num_tokens: int = 256, levels: int = 16, resolution: int = 256) -> None:
        self.num_tokens = self.check_num_tokens(num_tokens)
        if isinstance(levels, bool) or not isinstance(levels, int) or not 2 <= levels <= 64 or levels % 2:
            raise ConfigError(f"prefix-dct: levels must be an even integer in [2, 64], got {levels!r}")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution**2 < num_tokens:
            raise ConfigError(
                f"prefix-dct: resolution must be an integer with resolution² >= num_tokens={num_tokens}, "
                f"got {resolution!r}"
            )
        self.levels = levels
        self.resolution = resolution
        self.positions = zigzag_positions(resolution, resolution, num_tokens)
        self.steps = quantisation_steps(self.positions, resolution, resolution, levels)

    @property
    def codebook_size(self) -> int:
        return self.levels**3

    def encode_indices(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_latents(images)[0]

    def encode_latents(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token indices int64 N×T and the unrounded levels they quantise, float64 N×T×3: each
        coefficient divided by its step, the space of ``codebook()``."""
        self._check_images(images)
        size, positions = self.resolution, self.positions
        ycbcr = torch.einsum("ij,njhw->nihw", _RGB_TO_YCBCR, images.to("cpu", torch.float64))
        ycbcr[:, 0] -= 0.5
        spectrum = dct_matrix(size) @ ycbcr @ dct_matrix(size).T
        coefficients = spectrum[:, :, positions[:, 0], positions[:, 1]].transpose(1, 2)  # N×T×3
        latents = coefficients / self.steps
        half = self.levels // 2
        quantised = torch.round(latents).clamp(-half, half - 1).to(torch.int64) + half
        radix = torch.tensor([self.levels**2, self.levels, 1], dtype=torch.int64)
        return (quantised * radix).sum(dim=2).to(images.device), latents.to(images.device)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        if not (
            isinstance(indices, torch.Tensor)
            and indices.dtype == torch.int64
            and indices.ndim == 2
            and indices.shape[1] == self.num_tokens
        ):
            raise ConfigError(
                f"prefix-dct: decode expects int64 indices [N, {self.num_tokens}], got {_describe(indices)}"
            )
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ConfigError(f"prefix-dct: token indices must be in [0, {self.codebook_size})")
        size, positions = self.resolution, self.positions
        levels = self._levels_of(indices.to("cpu"))
        spectrum = torch.zeros(indices.shape[0], 3, size, size, dtype=torch.float64)
        spectrum[:, :, positions[:, 0], positions[:, 1]] = (levels * self.steps).transpose(1, 2)
        ycbcr = dct_matrix(size).T @ spectrum @ dct_matrix(size)
        ycbcr[:, 0] += 0.5
        rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_YCBCR), ycbcr)
        return rgb.clamp(0.0, 1.0).to(torch.float32).to(indices.device)

    def _levels_of(self, indices: torch.Tensor) -> torch.Tensor:
        """Signed quantisation levels (float64, one trailing axis of 3) of token indices."""
        digits = torch.stack(
            [indices // self.levels**2, (indices // self.levels) % self.levels, indices % self.levels], dim=-1
        )
        return (digits - self.levels // 2).to(torch.float64)

    def codebook(self) -> torch.Tensor:
        """The K×3 grid of signed levels; index k decodes to ``codebook()[k] × step`` per channel."""
        return self._levels_of(torch.arange(self.codebook_size)).to(torch.float32)

    def encode(self, images: torch.Tensor) -> Encoded:
        indices = self.encode_indices(images)
        return Encoded(payload=indices, bits=self.token_bits(images.shape[0]), num_tokens=self.num_tokens)

    def decode(self, encoded: Encoded) -> torch.Tensor:
        return self.decode_indices(encoded.payload)

    def _check_images(self, images: object) -> None:
        size = self.resolution
        if not (
            isinstance(images, torch.Tensor)
            and images.dtype == torch.float32
            and tuple(images.shape[1:]) == (3, size, size)
        ):
            raise ConfigError(
                f"prefix-dct: expects float32 images [N, 3, {size}, {size}] in [0, 1] (set resolution= "
                f"for another size), got {_describe(images)}"
            )


def _describe(value: object) -> str:
    return f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
