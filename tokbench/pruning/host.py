"""The VLM host: transformers' ``LlavaForConditionalGeneration`` with a pruner applied through hooks.

Pre-LLM pruners run between the projector and the LLM: the host computes the image features with
the model's own ``get_image_features``, lets the pruner reduce them, and feeds the LLM embeddings
with as many image placeholders as tokens kept (the same ``masked_scatter`` the model uses, so the
``none`` pruner reproduces the unpruned logits bit for bit); a pruner that merges in the vision
layer's space (VisionZip) gets that layer's [CLS] token and the projector too. Intra-LLM pruners run
as forward pre-hooks on the decoder layers: at layer K the hidden states, rotary embeddings and
causal mask are cut to the kept positions, ranked by the attention captured from layer K-1 (eager
attention, FastV) or by layer K's own last-query attention (PyramidDrop), with the original
positions kept or renumbered as the pruner declares. No transformers code is forked; hooks are
removed after every call.

Items run one at a time (batch 1, as LLaVA's own evaluation scripts do).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from tokbench.adapters.base import LayerContext, PreLLMContext, Pruner
from tokbench.errors import ConfigError
from tokbench.pruning.prompts import PromptCodec


@dataclass
class Generation:
    """One answered item: the text, token counts per layer and the measured timings."""

    text: str
    new_tokens: int
    prefill_seconds: float
    decode_seconds: list[float]
    prompt_tokens: int
    #: Visual tokens seen by each decoder layer (pre-LLM budget, or the intra-LLM schedule).
    visual_tokens_per_layer: list[int]
    #: Sequence length seen by each decoder layer during prefill.
    sequence_per_layer: list[int]
    kept_index: list[int] = field(default_factory=list)


@dataclass
class Prefill:
    """The prefill's output: logits, cache, per-layer token counts."""

    logits: torch.Tensor
    past_key_values: Any
    prompt_tokens: int
    kept_index: torch.Tensor
    hook_state: _HookState

    @property
    def visual_tokens_per_layer(self) -> list[int]:
        """Visual tokens each decoder layer saw."""
        return self.hook_state.visual_counts

    @property
    def sequence_per_layer(self) -> list[int]:
        """Sequence length each decoder layer saw."""
        return self.hook_state.sequence_counts


class LlavaHost:
    """A LLaVA-family model, its prompt codec and the pruning hooks."""

    def __init__(self, model: Any, codec: PromptCodec, name: str, random_weights: bool, template: str):
        inner = getattr(model, "model", None)
        if (
            getattr(inner, "vision_tower", None) is None
            or getattr(inner, "multi_modal_projector", None) is None
        ):
            raise ConfigError(
                f"VLM {name!r} has no vision tower/projector: the prune suite needs a LLaVA-family "
                "LlavaForConditionalGeneration checkpoint (e.g. llava-hf/llava-1.5-7b-hf)"
            )
        self.model = model.eval()
        self.codec = codec
        self.name = name
        self.random_weights = random_weights
        self.template = template
        config = model.config
        self.feature_layer = config.vision_feature_layer
        self.select_strategy = config.vision_feature_select_strategy
        if not isinstance(self.feature_layer, int) or self.select_strategy != "default":
            raise ConfigError(
                f"VLM {name!r}: only a single vision feature layer with the 'default' (drop [CLS]) strategy "
                f"is supported, got layer={self.feature_layer!r}, strategy={self.select_strategy!r}"
            )
        vision = config.vision_config
        side = vision.image_size // vision.patch_size
        self.grid = (side, side)
        self.num_visual_tokens = side * side
        self.num_layers = config.text_config.num_hidden_layers
        self.image_size = vision.image_size

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return next(self.model.parameters()).device

    def attention_implementation(self) -> dict[str, str]:
        """The attention implementation of the vision tower and of the LLM (goes into the record)."""
        config = self.model.config
        return {
            "vision": str(config.vision_config._attn_implementation),
            "text": str(config.text_config._attn_implementation),
        }

    def configure_for(self, pruner: Pruner) -> dict[str, str]:
        """Set ``attention_for(pruner)`` on the model and return it, checked to be the effective one."""
        wanted = attention_for(pruner)
        self.model.set_attn_implementation({"vision_config": wanted["vision"], "text_config": wanted["text"]})
        effective = self.attention_implementation()
        if effective != wanted:
            raise ConfigError(f"VLM {self.name!r}: asked for attention {wanted}, the model runs {effective}")
        return effective

    def prompt_ids(self, question: str) -> list[int]:
        """Token ids of the templated prompt with exactly one image placeholder."""
        ids = self.codec.encode(self.template.format(question=question))
        if ids.count(self.codec.image_token_id) != 1:
            raise ConfigError(f"VLM {self.name!r}: the prompt template must hold exactly one <image>")
        return ids

    def _vision_layer(self) -> torch.nn.Module:
        tower = self.model.model.vision_tower
        layers = getattr(getattr(tower, "encoder", None), "layers", None)
        if layers is None:
            layers = tower.vision_model.encoder.layers
        index = self.feature_layer - 1 if self.feature_layer > 0 else len(layers) + self.feature_layer
        return layers[index]

    @torch.no_grad()
    def prefill(
        self,
        pixel_values: torch.Tensor,
        ids: list[int],
        pruner: Pruner,
        keep: int,
        generator: torch.Generator | None = None,
        all_logits: bool = False,
    ) -> Prefill:
        """Vision tower, projector, pruner and the LLM prefill for one image and prompt."""
        inner = self.model.model
        captured: dict[str, torch.Tensor] = {}
        handles = []
        if pruner.needs_attention and pruner.stage == "pre-llm":
            layer = self._vision_layer()
            handles.append(layer.self_attn.register_forward_hook(_store(captured, "attentions", 1)))
            handles.append(layer.self_attn.k_proj.register_forward_hook(_store(captured, "keys", None)))
        try:
            outputs = inner.get_image_features(
                pixel_values=pixel_values.to(self.device, self.model.dtype),
                vision_feature_layer=self.feature_layer,
                vision_feature_select_strategy=self.select_strategy,
                output_hidden_states=True,
                return_dict=True,
            )
        finally:
            for handle in handles:
                handle.remove()
        features = torch.stack(list(outputs.pooler_output))
        if pruner.needs_attention and pruner.stage == "pre-llm" and captured.get("attentions") is None:
            raise ConfigError(f"VLM {self.name!r}: the vision tower returned no attention maps (needs eager)")
        text_ids = torch.tensor([i for i in ids if i != self.codec.image_token_id], device=self.device)
        vision_states = outputs.hidden_states[self.feature_layer]
        context = PreLLMContext(
            tokens=features,
            vision_features=vision_states[:, 1:],
            prefix_features=vision_states[:, :1],
            projector=inner.multi_modal_projector,
            grid=self.grid,
            vision_attentions=captured.get("attentions"),
            vision_keys=captured.get("keys"),
            text_embeddings=inner.get_input_embeddings()(text_ids)[None],
            generator=generator,
        )
        if pruner.stage == "pre-llm":
            reduced = pruner.reduce(context, keep)
            if reduced.tokens.shape[1] != keep:
                raise ConfigError(
                    f"pruner {type(pruner).__name__} returned {reduced.tokens.shape[1]} tokens "
                    f"for budget {keep}"
                )
            visual, kept_index = reduced.tokens, reduced.index
        else:
            visual, kept_index = features, torch.arange(features.shape[1], device=self.device)[None]
        slot = ids.index(self.codec.image_token_id)
        full = ids[:slot] + [self.codec.image_token_id] * visual.shape[1] + ids[slot + 1 :]
        input_ids = torch.tensor([full], device=self.device)
        embeds = inner.get_input_embeddings()(input_ids)
        mask = (input_ids == self.codec.image_token_id).unsqueeze(-1).to(embeds.device)
        embeds = embeds.masked_scatter(mask, visual.to(embeds.dtype))
        state = _HookState(visual=torch.arange(slot, slot + visual.shape[1], device=self.device))
        with _layer_hooks(self, pruner, keep, state, prefill=True):
            out = self.model(inputs_embeds=embeds, use_cache=True, logits_to_keep=0 if all_logits else 1)
        if not state.visual_counts:
            state.visual_counts = [visual.shape[1]] * self.num_layers
            state.sequence_counts = [len(full)] * self.num_layers
        return Prefill(
            logits=out.logits,
            past_key_values=out.past_key_values,
            prompt_tokens=len(full),
            kept_index=kept_index[0],
            hook_state=state,
        )

    @torch.no_grad()
    def warm_up(
        self,
        pixel_values: torch.Tensor,
        question: str,
        pruner: Pruner,
        keep: int,
        generator: torch.Generator | None = None,
    ) -> None:
        """One untimed prefill and decode step, so lazy initialisation never lands in a timed item."""
        ids = self.prompt_ids(question)
        pre = self.prefill(pixel_values, ids, pruner, keep, generator)
        token = pre.logits[:, -1].argmax(-1)
        if getattr(pruner, "reranks_per_token", False):
            self.prefill(pixel_values, [*ids, int(token)], pruner, keep, generator)
        else:
            with _layer_hooks(self, pruner, keep, pre.hook_state, prefill=False):
                self.model(
                    input_ids=token[:, None],
                    past_key_values=pre.past_key_values,
                    use_cache=True,
                    logits_to_keep=1,
                )
        _synchroniser(self.device)()

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.Tensor,
        question: str,
        pruner: Pruner,
        keep: int,
        max_new_tokens: int,
        generator: torch.Generator | None = None,
    ) -> Generation:
        """Greedy decoding (LLaVA's evaluation setting: temperature 0), timing prefill and each token."""
        ids = self.prompt_ids(question)
        sync = _synchroniser(self.device)
        start = time.perf_counter()
        pre = self.prefill(pixel_values, ids, pruner, keep, generator)
        token = pre.logits[:, -1].argmax(-1)
        sync()
        prefill_seconds = time.perf_counter() - start
        produced, decode_seconds = [int(token)], []
        past = pre.past_key_values
        rerank = getattr(pruner, "reranks_per_token", False)
        hooks = nullcontext() if rerank else _layer_hooks(self, pruner, keep, pre.hook_state, prefill=False)
        with hooks:
            while len(produced) < max_new_tokens and produced[-1] != self.codec.eos_token_id:
                start = time.perf_counter()
                if rerank:  # no cache: the whole sequence again, pruned anew (FastV's own scripts)
                    logits = self.prefill(pixel_values, ids + produced, pruner, keep, generator).logits
                else:
                    out = self.model(
                        input_ids=token[:, None], past_key_values=past, use_cache=True, logits_to_keep=1
                    )
                    logits, past = out.logits, out.past_key_values
                token = logits[:, -1].argmax(-1)
                sync()
                decode_seconds.append(time.perf_counter() - start)
                produced.append(int(token))
        text_ids = [t for t in produced if t != self.codec.eos_token_id]
        return Generation(
            text=self.codec.decode(text_ids),
            new_tokens=len(produced),
            prefill_seconds=prefill_seconds,
            decode_seconds=decode_seconds,
            prompt_tokens=pre.prompt_tokens,
            visual_tokens_per_layer=pre.visual_tokens_per_layer,
            sequence_per_layer=pre.sequence_per_layer,
            kept_index=pre.kept_index.tolist(),
        )


def attention_for(pruner: Pruner) -> dict[str, str]:
    """The attention implementation per tower for ``pruner``: eager where it reads attention maps
    (vision pre-LLM, text intra-LLM), else SDPA; the unpruned baseline states its own (``attention``)."""
    requested = getattr(pruner, "attention", None)
    if requested is not None:
        return dict(requested)
    if not pruner.needs_attention:
        return {"vision": "sdpa", "text": "sdpa"}
    if pruner.stage == "pre-llm":
        return {"vision": "eager", "text": "sdpa"}
    return {"vision": "sdpa", "text": "eager"}


def _store(captured: dict[str, torch.Tensor], key: str, item: int | None):
    def hook(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        captured[key] = output if item is None else output[item]

    return hook


def _synchroniser(device: torch.device):
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@dataclass
class _HookState:
    """What the layer hooks of one generation share: the original prefill positions kept at each
    decoder layer (from the first drop on), the visual positions and the captured attention."""

    visual: torch.Tensor
    kept: torch.Tensor | None = None
    layer_kept: dict[int, torch.Tensor] = field(default_factory=dict)
    visual_counts: list[int] = field(default_factory=list)
    sequence_counts: list[int] = field(default_factory=list)
    attentions: torch.Tensor | None = None
    prefill_length: int = 0


@contextmanager
def _layer_hooks(
    host: LlavaHost, pruner: Pruner, keep: int, state: _HookState, prefill: bool
) -> Iterator[None]:
    """Install the intra-LLM pre-hooks (and, in prefill, the attention capture at layer K-1) on
    every decoder layer; without a schedule nothing is installed."""
    schedule = dict(pruner.schedule(host.num_layers, keep)) if pruner.stage == "intra-llm" else {}
    if not schedule:
        yield
        return
    first = min(schedule)
    language_model = host.model.model.language_model
    handles = []
    for index, layer in enumerate(language_model.layers):
        if prefill and pruner.needs_attention and index + 1 in schedule:
            handles.append(layer.self_attn.register_forward_hook(_capture_attention(state)))
        hook = (
            _prefill_hook(pruner, state, index, schedule, first)
            if prefill
            else _decode_hook(pruner, state, index, first, language_model.rotary_emb)
        )
        handles.append(layer.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _capture_attention(state: _HookState):
    def hook(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        if output[1] is None:
            raise ConfigError(
                "intra-LLM pruning needs the LLM's attention maps: load it with eager attention"
            )
        state.attentions = output[1]

    return hook


def _with_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _prefill_hook(pruner: Pruner, state: _HookState, index: int, schedule: dict[int, int], first: int):
    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hidden = args[0] if args else kwargs["hidden_states"]
        if hidden.shape[0] != 1:
            raise ConfigError("the pruning host runs one item at a time (batch 1)")
        if state.kept is None:
            state.kept = torch.arange(hidden.shape[1], device=hidden.device)
            state.prefill_length = hidden.shape[1]
        cos, sin = kwargs["position_embeddings"]
        if index in schedule:
            positions = _positions(pruner, state.kept)
            rotary = (cos[:, positions], sin[:, positions])
            hidden = _drop_visual(pruner, state, index, schedule[index], hidden, module, rotary)
        state.visual_counts.append(int(state.visual.numel()))
        state.sequence_counts.append(int(hidden.shape[1]))
        if index < first:
            return args, kwargs
        kept = state.kept
        state.layer_kept[index] = kept
        positions = _positions(pruner, kept)
        kwargs = {**kwargs, "position_embeddings": (cos[:, positions], sin[:, positions])}
        if kwargs.get("position_ids") is not None:
            kwargs["position_ids"] = kwargs["position_ids"][:, positions]
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor):
            kwargs["attention_mask"] = mask[:, :, kept][:, :, :, kept]
        return _with_hidden(args, kwargs, hidden)

    return hook


def _positions(pruner: Pruner, kept: torch.Tensor) -> torch.Tensor:
    """Prefill positions of the ``kept`` tokens: the originals (gaps kept) or renumbered 0..L'-1."""
    return torch.arange(kept.numel(), device=kept.device) if pruner.renumbers_positions else kept


def _drop_visual(
    pruner: Pruner,
    state: _HookState,
    index: int,
    keep: int,
    hidden: torch.Tensor,
    layer: torch.nn.Module,
    rotary: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """Cut ``hidden`` to the text tokens plus the ``keep`` visual tokens the pruner selects."""
    if pruner.needs_attention and state.attentions is None:
        raise ConfigError(f"no attention was captured before decoder layer {index}")
    query = last_query_attention(layer, hidden, rotary) if pruner.needs_query_attention else None
    context = LayerContext(index, state.attentions, state.visual, hidden, query)
    chosen = pruner.select_in_layer(context, keep)[0]
    visual_set = torch.zeros(hidden.shape[1], dtype=torch.bool, device=hidden.device)
    visual_set[state.visual] = True
    keep_mask = ~visual_set
    keep_mask[state.visual[chosen]] = True
    current = torch.nonzero(keep_mask)[:, 0]
    state.kept = state.kept[current]
    state.visual = torch.nonzero(visual_set[current])[:, 0]
    state.attentions = None
    return hidden[:, current]


def last_query_attention(
    layer: torch.nn.Module, hidden: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """B×H×L attention of the last token in decoder ``layer`` over ``hidden`` (what PyramidDrop's
    ``pdrop_rank_drop`` computes): the layer's input norm, q/k projections, RoPE with ``rotary``
    (cos, sin at the current positions), logits / sqrt(head_dim), softmax in float32 cast back to
    the model's dtype. The last row of the causal mask hides nothing (batch 1, no padding); grouped
    kv heads are repeated."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    attention = layer.self_attn
    normed = layer.input_layernorm(hidden)
    b, length, _ = normed.shape
    head_dim = attention.head_dim
    query = attention.q_proj(normed).view(b, length, -1, head_dim).transpose(1, 2)
    key = attention.k_proj(normed).view(b, length, -1, head_dim).transpose(1, 2)
    query, key = apply_rotary_pos_emb(query, key, *rotary)
    key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
    logits = torch.matmul(query[:, :, -1:], key.transpose(2, 3)) / math.sqrt(head_dim)
    return torch.softmax(logits, dim=-1, dtype=torch.float32).to(query.dtype)[:, :, 0]


def _decode_hook(pruner: Pruner, state: _HookState, index: int, first: int, rotary: torch.nn.Module):
    def hook(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if index < first:
            return args, kwargs
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor):
            extra = torch.arange(state.prefill_length, mask.shape[-1], device=mask.device)
            columns = torch.cat([state.layer_kept[index], extra])
            kwargs = {**kwargs, "attention_mask": mask[..., columns]}
        if pruner.renumbers_positions:
            hidden = args[0] if args else kwargs["hidden_states"]
            dropped = state.prefill_length - state.layer_kept[index].numel()
            positions = kwargs["position_ids"] - dropped
            kwargs = {**kwargs, "position_ids": positions, "position_embeddings": rotary(hidden, positions)}
        return args, kwargs

    return hook
