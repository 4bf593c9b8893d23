#!/usr/bin/env python3
"""Is a pruned network under-fitted? Loads RUN/pruned.safetensors into PyTorch, prints its loss
and accuracy on the training and the test set, then (with EPOCHS > 0) trains it further and
trains the same shape from a fresh PyTorch initialisation, both with Adam 1e-3 and cosine decay
over EPOCHS epochs, batch 128, and prints the same figures for both.

Usage: python3 benches/torch_refit.py RUN [EPOCHS] [IDX_DIR]
Needs torch and safetensors; not part of CI (docs/pruning.md quotes its output).
"""
import json
import os
import sys

import torch
from safetensors import safe_open

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from torch_check import build, find, read_idx  # noqa: E402

BATCH = 128


def load_split(idx_dir, stem, spec):
    images = read_idx(find(idx_dir, stem + "-images-idx3-ubyte")).float()
    labels = read_idx(find(idx_dir, stem + "-labels-idx1-ubyte")).long()
    x = (images * spec["scale"] - spec["mean"]) / spec["std"]
    return x.reshape([x.shape[0]] + spec["shape"]), labels


def measure(model, splits):
    parts = []
    with torch.no_grad():
        for name, (x, y) in splits.items():
            z = model(x)
            loss = torch.nn.functional.cross_entropy(z, y).item()
            acc = (z.argmax(1) == y).float().mean().item()
            parts.append(f"{name} loss {loss:.4f} accuracy {acc:.4f}")
    return ", ".join(parts)


def train(model, x, y, epochs, seed):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    steps = epochs * (x.shape[0] // BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=order)
        for i in range(0, x.shape[0] - BATCH + 1, BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            schedule.step()


def main():
    run = sys.argv[1]
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    idx_dir = sys.argv[3] if len(sys.argv) > 3 else "/usr/share/datasets/fashion-mnist"
    with safe_open(os.path.join(run, "pruned.safetensors"), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    arch = json.loads(meta["architecture"])
    spec = json.loads(meta["input"])
    splits = {
        "train": load_split(idx_dir, "train", spec),
        "test": load_split(idx_dir, "t10k", spec),
    }
    pruned = build(arch)
    pruned.load_state_dict(tensors, strict=True)
    print(f"pruned as exported: {measure(pruned, splits)}")
    if epochs == 0:
        return
    x, y = splits["train"]
    train(pruned, x, y, epochs, seed=0)
    print(f"pruned + {epochs} epochs: {measure(pruned, splits)}")
    fresh = build(arch)
    train(fresh, x, y, epochs, seed=0)
    print(f"same shape, fresh init, {epochs} epochs: {measure(fresh, splits)}")


if __name__ == "__main__":
    main()
