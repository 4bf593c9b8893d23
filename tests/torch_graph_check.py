#!/usr/bin/env python3
"""Loads DIR/model.safetensors strictly through python/pruning_game_torch.py and checks its
eval-mode logits on DIR/inputs.f32 against DIR/logits.f32 (written by the Rust test
`exports_load_strictly_in_pytorch`). Tolerance 1e-4 relative to the logits' scale: both sides
compute in f32 with different summation orders (im2col GEMM here, oneDNN there), about 1e-6
relative per layer over ~20 layers.

Usage: python3 tests/torch_graph_check.py DIR
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import pruning_game_torch as pgt  # noqa: E402

d = sys.argv[1]
model, spec = pgt.load(os.path.join(d, "model.safetensors"))
x = torch.from_numpy(__import__("numpy").fromfile(os.path.join(d, "inputs.f32"), dtype="<f4"))
want = torch.from_numpy(__import__("numpy").fromfile(os.path.join(d, "logits.f32"), dtype="<f4"))
x = x.reshape([-1] + list(spec["shape"]))
torch.set_num_threads(1)
with torch.no_grad():
    got = model(x).reshape(-1)
err = (got - want).abs().max().item()
scale = max(1.0, want.abs().max().item())
print(f"max |torch - rust| = {err:.3g} (scale {scale:.3g})")
sys.exit(0 if err <= 1e-4 * scale else 1)
