"""The compiled model call (`pipe.enable_compile()`, stableviton/compiled.py) against the eager pipeline, on CPU.

Inductor compiles are the cost here (~100+ C++ kernels per graph, about 1 s each on a loaded 2-core box), so only
two graphs go through inductor (fp32 and bf16 at 128x96); the recompile and guidance checks use dynamo with
`backend="eager"`, whose guards (what decides a recompile) are the same but which generates no code.
"""

from __future__ import annotations

import time

import pytest
import torch
from torch._dynamo.utils import counters

from stableviton import AttentionStore
from stableviton.tiny import tiny_pipeline

from .helpers import toy_inputs

H, W = 128, 96
BLOCKS = (3, 4, 5)
# Inductor fuses elementwise chains and reorders/vectorises reductions (GroupNorm, softmax, matmul tiling), so
# each op may differ from eager by a few float32 ulps; over ~100 layers and 2 model calls that grows to ~1e-6
# on the latents (3e-6 measured over 3 calls) and ~1e-7 on the maps (probabilities <= 1; 4e-7 measured).
LATENT_ATOL, MAP_ATOL = 1e-4, 1e-5


def fresh_dynamo() -> None:
    """Forget compiled code: dynamo would otherwise reuse another pipeline's graph of the same structure
    (parameters are graph inputs), which is correct but makes graph counts depend on test order."""
    torch._dynamo.reset()


def graphs() -> int:
    """Graphs compiled so far in this process (one per dynamo compile: a recompile adds one)."""
    return counters["stats"]["unique_graphs"]


def run(pipe, inputs, height=H, width=W, **kw):
    store = AttentionStore(blocks=BLOCKS, dtype=None)  # keep the maps' own dtype: compare them unrounded
    out = pipe(**inputs, height=height, width=width, num_inference_steps=1, output_type="latent",
               attention_store=store, generator=torch.Generator().manual_seed(1), **kw)  # PLMS: 2 model calls
    return out.images, store


def assert_maps_close(store, ref, atol):
    assert store.timesteps == ref.timesteps and store.sizes == ref.sizes
    for block in BLOCKS:
        assert store.maps[block].keys() == ref.maps[block].keys() and ref.maps[block]
        for step, m in ref.maps[block].items():
            assert store.maps[block][step].shape == m.shape and store.maps[block][step].dtype == m.dtype
            torch.testing.assert_close(store.maps[block][step], m, atol=atol, rtol=0)


@pytest.fixture(scope="module")
def inputs():
    return toy_inputs(H, W)


@pytest.fixture(scope="module")
def fp32(inputs):
    """Eager reference, then the inductor-compiled pipeline twice (first call compiles, second must not)."""
    fresh_dynamo()
    pipe = tiny_pipeline(seed=0)
    ref = run(pipe, inputs)
    pipe.enable_compile()
    start, t0 = graphs(), time.perf_counter()
    first = run(pipe, inputs)
    compile_s = time.perf_counter() - t0
    after_first = graphs()
    second = run(pipe, inputs)
    print(f"\ninductor fp32 {H}x{W}: first compiled call {compile_s:.1f} s")
    new_graphs = (after_first - start, graphs() - after_first)
    return dict(pipe=pipe, ref=ref, first=first, second=second, new_graphs=new_graphs)


def test_compiled_output_matches_eager(fp32):
    (ref, _), (out, _), (again, _) = fp32["ref"], fp32["first"], fp32["second"]
    torch.testing.assert_close(out, ref, atol=LATENT_ATOL, rtol=0)
    assert torch.equal(again, out)  # the same compiled code on the same inputs


def test_captured_maps_match_eager(fp32):
    assert_maps_close(fp32["first"][1], fp32["ref"][1], MAP_ATOL)
    assert_maps_close(fp32["second"][1], fp32["first"][1], 0.0)


def test_one_graph_and_no_recompile_for_the_same_shapes(fp32):
    assert fp32["new_graphs"] == (1, 0)  # one graph (no graph breaks) for both steps; none for the second call
    assert not counters["graph_break"]


def test_disable_compile_restores_the_eager_path(fp32, inputs):
    pipe = fp32["pipe"]
    pipe.disable_compile()
    out, store = run(pipe, inputs)
    assert torch.equal(out, fp32["ref"][0])
    assert_maps_close(store, fp32["ref"][1], 0.0)


def test_new_resolution_recompiles_and_old_one_is_reused(inputs):
    fresh_dynamo()
    pipe = tiny_pipeline(seed=0)
    pipe.enable_compile(backend="eager")
    start = graphs()
    run(pipe, inputs)
    run(pipe, toy_inputs(64, 64), height=64, width=64)
    assert graphs() - start == 2
    run(pipe, inputs)
    run(pipe, toy_inputs(64, 64), height=64, width=64)
    assert graphs() - start == 2


@pytest.mark.parametrize("unconditional_garment", [True, False])
def test_guidance_branches_and_capture(inputs, unconditional_garment):
    """Under guidance: both halves in one call, or a plain-U-Net call + a garment call (two graphs)."""
    pipe = tiny_pipeline(seed=0)
    kw = dict(guidance_scale=2.0, unconditional_garment=unconditional_garment)
    ref, ref_store = run(pipe, inputs, **kw)
    fresh_dynamo()
    pipe.enable_compile(backend="eager")
    start = graphs()
    out, store = run(pipe, inputs, **kw)
    assert graphs() - start == (1 if unconditional_garment else 2)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)  # same ops, no code generation
    assert_maps_close(store, ref_store, 1e-7)
    assert store.maps[BLOCKS[0]][0].shape[0] == 1  # the conditional half only


def test_bf16_compiles_and_follows_eager(inputs):
    pipe = tiny_pipeline(seed=0).to(torch.bfloat16)
    ref, ref_store = run(pipe, inputs)
    pipe.enable_compile()
    t0 = time.perf_counter()
    out, store = run(pipe, inputs)
    print(f"\ninductor bf16 {H}x{W}: first compiled call {time.perf_counter() - t0:.1f} s")
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    # bf16 keeps 8 mantissa bits: eager rounds after every op, inductor keeps fused chains in float32
    assert (out.float() - ref.float()).abs().max() < 0.05 * ref.float().abs().max()
    for step, m in ref_store.maps[4].items():
        assert (store.maps[4][step].float() - m.float()).abs().max() < 0.02
