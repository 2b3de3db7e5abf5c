"""The zero cross-attention maps: capture during sampling, and the attention total variation (ATV) loss.

Only the warp blocks' cross-attention (`attn2`) gets an explicit-softmax processor, and it materialises the
probabilities only for the (step, block) pairs a store asks for; everything else keeps SDPA. The recorded maps
are head-averaged, as the paper visualises them and as the ATV loss uses them.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F


class AttentionStore:
    """Collects head-averaged warp-block cross-attention maps, `maps[block][step] -> (B, queries, keys)`.

    `blocks`: warp block indices (0..8 for SD-1.x; 3, 4, 5 give the 32x24 maps at 512x384; 4 carries the ATV
    loss). `steps`: sampler step indices to keep (None = all). `keep_graph=True` keeps the maps differentiable
    on their device (training); otherwise they are detached and moved to `device`/`dtype` to spare memory.
    """

    def __init__(
        self,
        blocks: Iterable[int] = (3, 4, 5),
        steps: Iterable[int] | None = None,
        keep_graph: bool = False,
        device: str | torch.device | None = "cpu",
        dtype: torch.dtype | None = torch.float16,
    ):
        self.blocks = tuple(sorted(set(blocks)))
        self.steps = None if steps is None else set(steps)
        self.keep_graph = keep_graph
        self.device = device  # where `finalize` puts the maps; during sampling they stay on the model's device
        self.dtype = dtype
        self.maps: dict[int, dict[int, torch.Tensor]] = {b: {} for b in self.blocks}
        self.sizes: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {}  # block -> (query hw, key hw)
        self.timesteps: dict[int, int] = {}
        self.step = 0
        self.batch_slice = slice(None)  # the conditional half under classifier-free guidance

    def wants(self, block: int) -> bool:
        return block in self.maps and (self.steps is None or self.step in self.steps)

    def record(self, block: int, probs: torch.Tensor) -> None:
        probs = probs[self.batch_slice]
        if not self.keep_graph:  # no device copy here: a GPU->CPU copy per step would stall the sampler
            probs = probs.detach().to(dtype=self.dtype or probs.dtype)
        self.maps[block][self.step] = probs

    def finalize(self) -> "AttentionStore":
        """Move the recorded maps to `device` once sampling is done."""
        if self.device is not None and not self.keep_graph:
            self.maps = {b: {s: m.to(self.device) for s, m in d.items()} for b, d in self.maps.items()}
        return self

    def reset(self) -> None:
        self.maps = {b: {} for b in self.blocks}
        self.timesteps = {}
        self.step = 0

    def map(self, block: int, step: int, query_yx: tuple[int, int], sample: int = 0) -> torch.Tensor:
        """The (key_h, key_w) map of one query token, given by its (row, col) on the block's query grid."""
        (qh, qw), (kh, kw) = self.sizes[block]
        y, x = query_yx
        if not (0 <= y < qh and 0 <= x < qw):
            raise IndexError(f"query {query_yx} outside the {qh}x{qw} grid of block {block}")
        return self.maps[block][step][sample, y * qw + x].reshape(kh, kw)

    def grid(self, block: int, step: int, sample: int = 0) -> torch.Tensor:
        """All maps of a block and step as (query_h, query_w, key_h, key_w)."""
        (qh, qw), (kh, kw) = self.sizes[block]
        return self.maps[block][step][sample].reshape(qh, qw, kh, kw)


class WarpAttentionProcessor:
    """Attention processor for a warp block's `attn2`: SDPA normally, explicit softmax when recording."""

    def __init__(self, block: int):
        self.block = block
        self.store: AttentionStore | None = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        batch = hidden_states.shape[0]
        heads = attn.heads
        q, k, v = attn.to_q(hidden_states), attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        head_dim = q.shape[-1] // heads
        q, k, v = (t.view(batch, -1, heads, head_dim).transpose(1, 2) for t in (q, k, v))
        if self.store is not None and self.store.wants(self.block):
            scores = torch.matmul(q, k.transpose(-1, -2)) * attn.scale
            probs = scores.softmax(dim=-1, dtype=torch.float32)
            self.store.record(self.block, probs.mean(dim=1))
            out = torch.matmul(probs.to(v.dtype), v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(q.dtype)
        return attn.to_out[1](attn.to_out[0](out))


def install_warp_processors(unet) -> list[WarpAttentionProcessor]:
    """Give every warp block's cross-attention a capturing processor (inactive until a store is attached)."""
    processors = []
    for k, block in enumerate(unet.warp_blocks):
        proc = WarpAttentionProcessor(k)
        for tb in block.attn.transformer_blocks:
            tb.attn2.set_processor(proc)
        processors.append(proc)
    return processors


def attach_store(unet, store: AttentionStore | None) -> None:
    for block in unet.warp_blocks:
        for tb in block.attn.transformer_blocks:
            proc = tb.attn2.processor
            if not isinstance(proc, WarpAttentionProcessor):
                raise RuntimeError("warp processors were replaced (set_attn_processor?); call install_warp_processors")
            proc.store = store


# ---------------------------------------------------------------------------------------------------------------
# Attention total variation loss


def attention_centres(probs: torch.Tensor, key_hw: tuple[int, int]) -> torch.Tensor:
    """Attention-weighted expected key position (row, col) per query: (B, queries, 2), in key-grid units."""
    kh, kw = key_hw
    rows = torch.arange(kh, device=probs.device, dtype=probs.dtype).repeat_interleave(kw)
    cols = torch.arange(kw, device=probs.device, dtype=probs.dtype).repeat(kh)
    return probs @ torch.stack([rows, cols], dim=-1)


def cloth_query_mask(warped_cloth_mask: torch.Tensor, latent_hw: tuple[int, int],
                     query_hw: tuple[int, int]) -> torch.Tensor:
    """Queries inside the warped garment, following the official resizing: the pixel mask (255 = garment)
    nearest-resized to latent size, inverted, nearest-resized to the query grid, `>= 0.5` = not garment."""
    m = warped_cloth_mask.float()
    if m.ndim == 3:
        m = m[:, None]
    if m.max() > 1:
        m = m / 255.0
    m = F.interpolate(m, size=latent_hw, mode="nearest")
    not_cloth = F.interpolate(1.0 - m, size=query_hw, mode="nearest") >= 0.5
    return ~not_cloth[:, 0]


def attention_tv_loss(probs: torch.Tensor, query_hw: tuple[int, int], key_hw: tuple[int, int],
                      query_mask: torch.Tensor, weight: float = 1e-3) -> torch.Tensor:
    """`weight` x total variation of the expected key coordinates over neighbouring garment queries.

    Each direction is normalised by its number of garment-garment neighbour pairs (summed over batch and both
    coordinates, as the official loss); an empty mask gives 0 instead of the official division by zero.
    """
    qh, qw = query_hw
    c = attention_centres(probs, key_hw).reshape(-1, qh, qw, 2)
    m = query_mask.to(c.dtype)
    pair_y = m[:, 1:] * m[:, :-1]
    pair_x = m[:, :, 1:] * m[:, :, :-1]
    tv_y = ((c[:, 1:] - c[:, :-1]).abs().sum(-1) * pair_y).sum() / pair_y.sum().clamp_min(1)
    tv_x = ((c[:, :, 1:] - c[:, :, :-1]).abs().sum(-1) * pair_x).sum() / pair_x.sum().clamp_min(1)
    return weight * (tv_y + tv_x)
