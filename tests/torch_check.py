#!/usr/bin/env python3
"""Loads RUN/pruned.safetensors into torch.nn.Sequential from its metadata and checks that its
test accuracy equals report.json's `finetuned_accuracy`.

Usage: python3 tests/torch_check.py RUN [IDX_DIR]
IDX_DIR defaults to /usr/share/datasets/fashion-mnist (runs on IDX data only; the embedded
teacher-student task exists only in Rust). Needs torch and safetensors; not part of CI.
"""
import gzip
import json
import os
import struct
import sys

import torch
from safetensors import safe_open


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def find(dirname, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(dirname, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(os.path.join(dirname, stem))


# The repo's own module builds the torch module from the metadata.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from pruning_game_torch import build  # noqa: E402


def main():
    run = sys.argv[1]
    idx_dir = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    path = os.path.join(run, "pruned.safetensors")
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert not any(k.endswith(".gate") for k in tensors), "exported model must have no gates"
    model = build(json.loads(meta["architecture"]))
    model.load_state_dict(tensors, strict=True)
    spec = json.loads(meta["input"])
    images = read_idx(find(idx_dir, "t10k-images-idx3-ubyte")).float()
    labels = read_idx(find(idx_dir, "t10k-labels-idx1-ubyte")).long()
    x = (images * spec["scale"] - spec["mean"]) / spec["std"]
    x = x.reshape([x.shape[0]] + spec["shape"])
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    acc = (pred == labels).float().mean().item()
    report = json.load(open(os.path.join(run, "report.json")))
    want = report["finetuned_accuracy"]
    n = labels.shape[0]
    print(f"torch accuracy {acc:.4f}, report finetuned_accuracy {want:.4f} ({n} samples)")
    # Accuracies are counts over n samples; f32 summation order may flip at most a few
    # borderline samples.
    if abs(acc - want) * n > 2:
        sys.exit(1)


if __name__ == "__main__":
    main()
