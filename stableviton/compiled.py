"""One model call (garment encoder + U-Net) under `torch.compile`, with the warp blocks' attention capture intact.

At 512x384 a sampler step is ~1 ms of GPU compute behind ~50 ms of kernel launches; CUDA graphs
(`mode="reduce-overhead"`) replay the whole step as one launch. Shapes are static (`dynamic=False`): each
(batch, resolution, dtype, captured blocks, with/without garment) is compiled once and reused for every step,
and the timestep goes in as a tensor so that its value is never baked into a graph.

Capture: eagerly, the warp processors hand head-averaged maps to an `AttentionStore`, whose `wants` depends on
the step counter, a Python int that would make every step a new graph. While compiled, the processors see a
`_MapRecorder` instead, whose only state is the static set of blocks to record; the maps it receives are traced
values that the compiled function returns as extra outputs, and the real store records them outside the graph
(same slicing and dtype cast as eagerly). CUDA-graph outputs live in buffers the next replay overwrites, so
under that mode eps and the maps are cloned before they leave.
"""

from __future__ import annotations

import torch

from .attention import AttentionStore, attach_store

# Distinct shapes x capture sets x branches are separate graphs of one function; dynamo's default limit (8) would
# silently fall back to eager after a few resolutions.
RECOMPILE_LIMIT = 64


class _MapRecorder:
    """What the warp processors record into while traced: a static block set, maps kept as graph values."""

    def __init__(self):
        self.blocks: tuple[int, ...] = ()
        self.maps: dict[int, torch.Tensor] = {}

    def wants(self, block: int) -> bool:
        return block in self.blocks

    def record(self, block: int, probs: torch.Tensor) -> None:
        self.maps[block] = probs


def _current_store(unet):
    return unet.warp_blocks[0].attn.transformer_blocks[0].attn2.processor.store


class CompiledDenoiser:
    """eps = U-Net(x, t, context, garment-encoder features), compiled; `garment_latent=None` = the plain U-Net.

    `mode=None` picks `"reduce-overhead"` (CUDA graphs) for CUDA inputs and inductor's default elsewhere;
    `dynamic=False` keeps every graph specialised to its shapes (what CUDA graphs need anyway). `backend="eager"`
    runs dynamo's graphs without inductor: same guards and recompiles, no code generation (cheap tests).
    """

    def __init__(self, unet, garment_encoder, mode: str | None = None, fullgraph: bool = False,
                 backend: str = "inductor"):
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
        self.unet, self.garment_encoder = unet, garment_encoder
        self.mode, self.fullgraph, self.backend = mode, fullgraph, backend
        self._recorder = _MapRecorder()
        self._compiled: dict[str | None, object] = {}

    def _model_call(self, x, t, context, garment_latent):
        """The traced region: eps and the maps of the recorder's blocks, in `blocks` order."""
        if garment_latent is None:
            return self.unet(x, t, context, None).sample, ()
        features = self.garment_encoder(x, t, context, garment_latent,
                                        num_features=self.unet.num_garment_features).features
        eps = self.unet(x, t, context, features).sample
        return eps, tuple(self._recorder.maps.pop(b) for b in self._recorder.blocks)

    def _function(self, device: torch.device):
        """The compiled callable for this device type, and whether it replays CUDA graphs."""
        mode = None
        if self.backend == "inductor":
            mode = self.mode or ("reduce-overhead" if device.type == "cuda" else None)
        if mode not in self._compiled:
            self._compiled[mode] = torch.compile(self._model_call, backend=self.backend, mode=mode, dynamic=False,
                                                 fullgraph=self.fullgraph)
        return self._compiled[mode], device.type == "cuda" and mode in ("reduce-overhead", "max-autotune")

    def __call__(self, x: torch.Tensor, t, context: torch.Tensor, garment_latent: torch.Tensor | None,
                 store: AttentionStore | None = None) -> torch.Tensor:
        """eps; the maps `store` wants at its current step are recorded into it."""
        fn, cuda_graphs = self._function(x.device)
        t = torch.as_tensor(t, device=x.device)  # a tensor input: the value is data, not a guard
        blocks = () if store is None or garment_latent is None else tuple(b for b in store.blocks if store.wants(b))
        self._recorder.blocks = blocks
        previous = _current_store(self.unet)
        attach_store(self.unet, self._recorder)
        try:
            if cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            eps, maps = fn(x, t, context, garment_latent)
        finally:
            attach_store(self.unet, previous)
            self._recorder.maps.clear()
        if cuda_graphs:  # the next replay overwrites these buffers; the sampler and the store keep them
            eps, maps = eps.clone(), tuple(m.clone() for m in maps)
        for block, probs in zip(blocks, maps):
            store.record(block, probs)
        return eps

    def predict_noise(self, x, t, context, garment_latent, split: bool, store: AttentionStore | None = None):
        """The pipeline's `_predict_noise`: with `split` the unconditional half runs the plain U-Net."""
        if split:
            (x_u, x_c), (ctx_u, ctx_c) = x.chunk(2), context.chunk(2)
            return torch.cat([self(x_u, t, ctx_u, None), self(x_c, t, ctx_c, garment_latent.chunk(2)[1], store)])
        return self(x, t, context, garment_latent, store)
