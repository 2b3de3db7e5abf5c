"""Attention capture and the attention total variation loss, on hand-computable cases and the tiny model."""

from __future__ import annotations

import torch

from stableviton import AttentionStore, attention_tv_loss, cloth_query_mask
from stableviton.attention import attach_store, attention_centres
from stableviton.tiny import tiny_pipeline


def one_hot_maps(targets: torch.Tensor, key_hw=(4, 3)) -> torch.Tensor:
    """(B, queries) key indices -> (B, queries, keys) attention that looks at exactly that key."""
    return torch.nn.functional.one_hot(targets, key_hw[0] * key_hw[1]).float()


def test_centres_are_the_attended_key_coordinates():
    probs = one_hot_maps(torch.tensor([[0, 5, 11]]))
    assert attention_centres(probs, (4, 3)).tolist() == [[[0, 0], [1, 2], [3, 2]]]
    uniform = torch.full((1, 1, 12), 1 / 12)
    assert torch.allclose(attention_centres(uniform, (4, 3)), torch.tensor([[[1.5, 1.0]]]))


def test_total_variation_by_hand():
    # 2x2 query grid; queries look at keys (0,0), (0,1) / (2,0), (3,2)
    probs = one_hot_maps(torch.tensor([[0, 1, 6, 11]]))
    full = torch.ones(1, 2, 2, dtype=torch.bool)
    # vertical pairs: |(2,0)-(0,0)| = 2, |(3,2)-(0,1)| = 3+1 = 4 -> 6 / 2 pairs; horizontal: 1 and 1+2 -> 4 / 2
    assert torch.isclose(attention_tv_loss(probs, (2, 2), (4, 3), full, weight=1.0), torch.tensor(3.0 + 2.0))
    top_row = torch.tensor([[[True, True], [False, False]]])
    assert torch.isclose(attention_tv_loss(probs, (2, 2), (4, 3), top_row, weight=1.0), torch.tensor(1.0))
    empty = torch.zeros(1, 2, 2, dtype=torch.bool)
    loss = attention_tv_loss(probs, (2, 2), (4, 3), empty)
    assert loss.item() == 0.0 and not torch.isnan(loss)  # the official code divides by zero here


def test_cloth_query_mask_follows_the_official_resizing():
    mask = torch.zeros(1, 64, 48, dtype=torch.uint8)
    mask[:, 16:48, 8:40] = 255
    m = cloth_query_mask(mask, (8, 6), (4, 3))
    assert m.shape == (1, 4, 3) and m.dtype == torch.bool
    assert m[0].tolist() == [[False, False, False], [False, True, True], [False, True, True], [False, False, False]]


def test_atv_gradient_reaches_the_trainable_parts():
    pipe = tiny_pipeline(seed=5)
    store = AttentionStore(blocks=(4,), keep_graph=True, device=None, dtype=None)
    x = torch.randn(1, 13, 32, 24)
    g = torch.randn(1, 4, 32, 24)
    ctx = torch.randn(1, 1, 32)
    attach_store(pipe.unet, store)
    try:
        feats = pipe.garment_encoder(x, torch.tensor([500]), ctx, g,
                                     num_features=pipe.unet.num_garment_features).features
        pipe.unet(x, torch.tensor([500]), ctx, feats)
    finally:
        attach_store(pipe.unet, None)
    hw = pipe.unet.warp_block_sizes((32, 24))[4]
    loss = attention_tv_loss(store.maps[4][0], hw, hw, torch.ones(1, *hw, dtype=torch.bool))
    loss.backward()
    attn2 = pipe.unet.warp_blocks[4].attn.transformer_blocks[0].attn2
    assert attn2.to_q.weight.grad.abs().sum() > 0 and attn2.to_k.weight.grad.abs().sum() > 0
    assert pipe.garment_encoder.conv_in.weight.grad.abs().sum() > 0
    assert pipe.unet.warp_blocks[5].zero_conv.weight.grad is None  # later blocks do not shape block 4's map
