#!/usr/bin/env python3
"""Loads DIR/model.safetensors strictly through python/pruning_game_torch.py and checks its
eval-mode logits on DIR/inputs.f32 against DIR/logits.f32 (written by the Rust test
`exports_load_strictly_in_pytorch`). Tolerance 1e-4 relative to the logits' scale: both sides
compute in f32 with different summation orders (im2col GEMM here, oneDNN there), about 1e-6
relative per layer over ~20 layers.

With `--resnet DEPTH`, the file's architecture must also be the module's own
`resnet_architecture(DEPTH)` node for node, so a ResNet built in PyTorch with
`pruning_game_torch.resnet` is the network the crate's builder makes.

Usage: python3 tests/torch_graph_check.py DIR [--resnet DEPTH]
"""
import itertools
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import pruning_game_torch as pgt  # noqa: E402

d = sys.argv[1]
model, spec = pgt.load(os.path.join(d, "model.safetensors"))
x = torch.from_numpy(np.fromfile(os.path.join(d, "inputs.f32"), dtype="<f4"))
want = torch.from_numpy(np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4"))
x = x.reshape([-1] + list(spec["shape"]))
if len(sys.argv) == 4 and sys.argv[2] == "--resnet":
    classes = want.numel() // x.shape[0]
    own = pgt.resnet_architecture(int(sys.argv[3]), classes, spec["shape"][0])["graph"]

    def f32(node):  # the crate stores eps and momentum as f32
        return node and {k: float(np.float32(v)) if isinstance(v, float) else v
                         for k, v in node.items()}

    pairs = [(f32(a), f32(b)) for a, b in itertools.zip_longest(model.spec, own)]
    diff = next(((a, b) for a, b in pairs if a != b), None)
    if diff:
        sys.exit(f"the file's graph is not pruning_game_torch.resnet_architecture: {diff}")
torch.set_num_threads(1)
with torch.no_grad():
    got = model(x).reshape(-1)
err = (got - want).abs().max().item()
scale = max(1.0, want.abs().max().item())
print(f"max |torch - rust| = {err:.3g} (scale {scale:.3g})")
sys.exit(0 if err <= 1e-4 * scale else 1)
