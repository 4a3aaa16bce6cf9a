"""PyTorch embeddings for ``fastface eval --backend torch``: the same metrics on the source
model, so a conversion's accuracy delta is one command. Imports torch when called."""
from __future__ import annotations

import numpy as np


def torch_embedder(checkpoint, backbone: str | None = None):
    """(embed_fn, (width, height)) for a fastface checkpoint or an arcface_torch state dict.
    Inputs are RGB, (x - 127.5) / 127.5, as fastface and arcface_torch train."""
    import torch

    from ..train.backbones import get_backbone

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    run = state.get("run", {}) if isinstance(state, dict) else {}
    weights = state.get("backbone", state) if isinstance(state, dict) else state
    name = backbone or run.get("backbone")
    if name is None:
        raise ValueError(f"{checkpoint} does not name its backbone: pass --backbone")
    size = int(run.get("image_size", 112))
    kwargs = {"num_features": int(run["embedding_size"])} if "embedding_size" in run else {}
    model = get_backbone(name, input_size=size, **kwargs)
    model.load_state_dict(weights, strict=True)
    model.eval()

    @torch.no_grad()
    def embed(crops):
        batch = torch.from_numpy(np.ascontiguousarray(np.stack(crops)[..., ::-1].transpose(0, 3, 1, 2)))
        return model((batch.float() - 127.5) / 127.5).numpy()

    return embed, (size, size)
