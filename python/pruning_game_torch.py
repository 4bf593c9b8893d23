"""PyTorch modules from pruning-game model files.

A model file is safetensors with tensors named as the module's ``state_dict`` and two
metadata entries: ``input`` (per-sample shape and the preprocessing ``x = (byte * scale -
mean) / std``) and ``architecture`` — either a list of layers (``torch.nn.Sequential``) or
``{"graph": [node, ...]}``, each node ``{"name", "op", "inputs", ...sizes}``, built here as a
module whose submodules sit at the node names (``layer1.0.conv1``), so the ``state_dict``
keys are those of the file. ``load`` builds the module and loads the tensors with
``strict=True``; it refuses anything it does not know by name.

Usage as a script: ``python3 python/pruning_game_torch.py MODEL.safetensors`` loads the file
and prints the module and its parameter count. Needs only torch.
"""
import json
import struct
import sys

import torch
from torch import nn

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "U8": torch.uint8}


def read_safetensors(path):
    """Tensors (name -> torch.Tensor) and metadata (dict) of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        if t["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {t['dtype']}")
        start, end = t["data_offsets"]
        dtype = _DTYPES[t["dtype"]]
        if end == start:
            tensors[name] = torch.zeros(t["shape"], dtype=dtype)
        else:
            buf = bytearray(data[base + start:base + end])
            tensors[name] = torch.frombuffer(buf, dtype=dtype).reshape(t["shape"]).clone()
    return tensors, meta


def _sequential(arch):
    layers = []
    for e in arch:
        t = e["type"]
        if t == "linear":
            layers.append(nn.Linear(e["in"], e["out"]))
        elif t == "conv2d":
            layers.append(nn.Conv2d(e["in"], e["out"], e["kernel"], e["stride"], e["padding"]))
        elif t == "relu":
            layers.append(nn.ReLU())
        elif t == "maxpool2d":
            layers.append(nn.MaxPool2d(e["kernel"]))
        elif t == "flatten":
            layers.append(nn.Flatten())
        else:
            raise ValueError(f"unsupported layer type {t!r}")
    return nn.Sequential(*layers)


def _module(node):
    """The torch module of one graph node, or None for ops without one (add, gate)."""
    op = node["op"]
    if op == "linear":
        return nn.Linear(node["in"], node["out"], bias=node["bias"])
    if op == "conv2d":
        return nn.Conv2d(node["in"], node["out"], node["kernel"], node["stride"],
                         node["padding"], bias=node["bias"])
    if op == "batchnorm":
        cls = nn.BatchNorm1d if node["dims"] == 1 else nn.BatchNorm2d
        return cls(node["features"], eps=node["eps"], momentum=node["momentum"])
    if op == "relu":
        return nn.ReLU()
    if op == "maxpool2d":
        return nn.MaxPool2d(node["kernel"], node["stride"], node["padding"])
    if op == "avgpool2d":
        return nn.AvgPool2d(node["kernel"], node["stride"], node["padding"])
    if op == "globalavgpool":
        return nn.AdaptiveAvgPool2d(1)
    if op == "flatten":
        return nn.Flatten()
    if op in ("add", "gate"):
        return None
    raise ValueError(f"node {node['name']}: unsupported op {op!r}")


class GraphModule(nn.Module):
    """A network given as a list of nodes; submodules live at the nodes' dotted names."""

    def __init__(self, nodes):
        super().__init__()
        self.spec = nodes
        for node in nodes:
            m = _module(node)
            if m is not None:
                self._attach(node["name"], m)
            elif node["op"] == "gate" and not self._has_buffer(node["gate"]):
                # Gate vectors of a saved run state (exports have none).
                self._attach_buffer(node["gate"])

    def _parent(self, path):
        parent = self
        for part in path.split(".")[:-1]:
            if part not in parent._modules:
                parent.add_module(part, nn.Module())
            parent = parent._modules[part]
        return parent

    def _attach(self, path, module):
        self._parent(path).add_module(path.split(".")[-1], module)

    def _has_buffer(self, path):
        try:
            self.get_buffer(path)
            return True
        except AttributeError:
            return False

    def _attach_buffer(self, path):
        self._parent(path).register_buffer(path.split(".")[-1], torch.ones(0))

    def forward(self, x):
        values = {"input": x}
        out = x
        for node in self.spec:
            args = [values[i] for i in node["inputs"]]
            op = node["op"]
            if op == "add":
                out = args[0]
                for a in args[1:]:
                    out = out + a
            elif op == "gate":
                s = self.get_buffer(node["gate"])
                shape = [1, -1] + [1] * (args[0].dim() - 2)
                out = args[0] * s.view(shape)
            else:
                out = self.get_submodule(node["name"])(args[0])
            values[node["name"]] = out
        return out


def build(architecture):
    """The untrained module described by an ``architecture`` metadata value (str or parsed)."""
    arch = json.loads(architecture) if isinstance(architecture, str) else architecture
    if isinstance(arch, list):
        return _sequential(arch)
    return GraphModule(arch["graph"])


def load(path):
    """(module in eval mode, input spec) for a model file, loaded with ``strict=True``."""
    tensors, meta = read_safetensors(path)
    module = build(meta["architecture"])
    if isinstance(module, GraphModule):
        # Gate buffers take the file's shapes before the strict load checks them.
        for node in module.spec:
            if node["op"] == "gate" and node["gate"] in tensors:
                module._parent(node["gate"]).register_buffer(
                    node["gate"].split(".")[-1], torch.empty_like(tensors[node["gate"]]))
    module.load_state_dict(tensors, strict=True)
    module.eval()
    return module, json.loads(meta["input"])


def preprocess(raw, spec):
    """Network inputs from raw values (bytes for image data sets) and the file's input spec."""
    x = raw.to(torch.float32) * spec["scale"]
    return ((x - spec["mean"]) / spec["std"]).reshape([-1] + list(spec["shape"]))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: pruning_game_torch.py MODEL.safetensors")
    m, spec = load(sys.argv[1])
    print(m)
    print("parameters:", sum(p.numel() for p in m.parameters()), "input:", spec)
