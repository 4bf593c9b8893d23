"""Loads a model exported by `Graph::export` into the torch module built from the
safetensors metadata (python/pruning_game_torch.py), and measures its test accuracy on an IDX test set.

    python benches/torch_load_check.py model.safetensors [/usr/share/datasets/fashion-mnist]

The tensors load with `load_state_dict(strict=True)`: no renaming or reshaping.
"""
import gzip
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file


# The repo's own module builds the torch module from the metadata.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from pruning_game_torch import build  # noqa: E402


def read_idx(path):
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    nd = raw[3]
    dims = struct.unpack(">" + "I" * nd, raw[4 : 4 + 4 * nd])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def main():
    model_path = sys.argv[1]
    data = Path(sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist")
    with safe_open(model_path, framework="pt") as f:
        meta = f.metadata()
    arch, spec = json.loads(meta["architecture"]), json.loads(meta["input"])
    model = build(arch)
    model.load_state_dict(load_file(model_path), strict=True)
    model.eval()
    imgs = read_idx(data / "t10k-images-idx3-ubyte.gz").astype(np.float64)
    labels = torch.from_numpy(read_idx(data / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    x = (imgs * spec["scale"] - spec["mean"]) / spec["std"]
    x = torch.from_numpy(x.astype(np.float32)).reshape(len(labels), *spec["shape"])
    with torch.no_grad():
        acc = (model(x).argmax(1) == labels).float().mean().item()
    print(f"{model_path}: torch test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
