"""PyTorch modules from pruning-game model files.

A model file is safetensors with tensors named as the module's ``state_dict`` and two
metadata entries: ``input`` (per-sample shape and the preprocessing ``x = (byte * scale -
mean) / std``) and ``architecture`` — either a list of layers (``torch.nn.Sequential``) or
``{"graph": [node, ...]}``, each node ``{"name", "op", "inputs", ...sizes}``, built here as a
module whose submodules sit at the node names (``layer1.0.conv1``), so the ``state_dict``
keys are those of the file. ``load`` builds the module and loads the tensors with
``strict=True``; it refuses anything it does not know by name. ``from_torch`` goes the other
way: it writes a PyTorch model of the supported kinds into a file the Rust graph loader
reads, refusing any other module by name.

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


def resnet_architecture(depth, classes=10, in_channels=1):
    """The graph of the crate's small-image ResNet (``Graph::resnet``): a 3×3 stem at 16
    channels, three stages of ``(depth - 2) / 6`` basic blocks at 16, 32 and 64 channels (the
    first block of stages 2 and 3 halves the size with stride 2 and a 1×1 downsample
    shortcut), global average pooling and a linear classifier. Names are the ``state_dict``
    keys of torchvision's ResNet (``layer1.0.conv1``, ``layer2.0.downsample.0``)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth {depth}: a ResNet for small images has depth 6n + 2, n >= 1")

    def conv(name, src, cin, cout, kernel, stride):
        return {"name": name, "op": "conv2d", "inputs": [src], "in": cin, "out": cout,
                "kernel": kernel, "stride": stride, "padding": kernel // 2, "bias": False}

    def bn(name, src, features):
        return {"name": name, "op": "batchnorm", "inputs": [src], "features": features,
                "dims": 2, "eps": 1e-5, "momentum": 0.1}

    nodes = [conv("conv1", "input", in_channels, 16, 3, 1), bn("bn1", "conv1", 16),
             {"name": "relu", "op": "relu", "inputs": ["bn1"]}]
    prev, width = "relu", 16
    for stage, out in enumerate((16, 32, 64), start=1):
        for block in range((depth - 2) // 6):
            p = f"layer{stage}.{block}"
            stride = 2 if block == 0 and stage > 1 else 1
            nodes += [conv(f"{p}.conv1", prev, width, out, 3, stride),
                      bn(f"{p}.bn1", f"{p}.conv1", out),
                      {"name": f"{p}.relu1", "op": "relu", "inputs": [f"{p}.bn1"]},
                      conv(f"{p}.conv2", f"{p}.relu1", out, out, 3, 1),
                      bn(f"{p}.bn2", f"{p}.conv2", out)]
            shortcut = prev
            if stride != 1 or width != out:
                nodes += [conv(f"{p}.downsample.0", prev, width, out, 1, stride),
                          bn(f"{p}.downsample.1", f"{p}.downsample.0", out)]
                shortcut = f"{p}.downsample.1"
            nodes += [{"name": f"{p}.add", "op": "add", "inputs": [f"{p}.bn2", shortcut]},
                      {"name": f"{p}.relu2", "op": "relu", "inputs": [f"{p}.add"]}]
            prev, width = f"{p}.relu2", out
    nodes += [{"name": "avgpool", "op": "globalavgpool", "inputs": [prev]},
              {"name": "flatten", "op": "flatten", "inputs": ["avgpool"]},
              {"name": "fc", "op": "linear", "inputs": ["flatten"], "in": 64, "out": classes,
               "bias": True}]
    return {"graph": nodes}


def resnet(depth, classes=10, in_channels=1):
    """An untrained :func:`resnet_architecture` module, initialised as PyTorch initialises
    its layers; train it in PyTorch and :func:`from_torch` writes it for ``prune --init``."""
    return build(resnet_architecture(depth, classes, in_channels))


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
    spec = json.loads(meta["input"])
    module.input_spec = spec  # from_torch writes the module back with the same preprocessing
    return module, spec


def _pair(value, what, name):
    """One int from an int or a square pair, refusing rectangles by name."""
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"{name}: {what} {tuple(value)} is not square (unsupported)")
        value = value[0]
    return int(value)


def _entry(name, inputs, m):
    """The graph-file node of one module; unsupported modules and settings are refused."""
    kind = type(m).__name__

    def refuse(why):
        raise ValueError(f"{name}: {kind} {why} is not supported by the pruning-game graph format")

    node = {"name": name, "inputs": list(inputs)}
    if type(m) is nn.Linear:
        node.update(op="linear", bias=m.bias is not None)
        node["in"], node["out"] = m.in_features, m.out_features
    elif type(m) is nn.Conv2d:
        if m.groups != 1 or _pair(m.dilation, "dilation", name) != 1:
            refuse("with groups or dilation")
        if m.padding_mode != "zeros" or isinstance(m.padding, str):
            refuse(f"with padding {m.padding!r} ({m.padding_mode})")
        node.update(op="conv2d", kernel=_pair(m.kernel_size, "kernel", name),
                    stride=_pair(m.stride, "stride", name),
                    padding=_pair(m.padding, "padding", name), bias=m.bias is not None)
        node["in"], node["out"] = m.in_channels, m.out_channels
    elif type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
        if not (m.affine and m.track_running_stats) or m.momentum is None:
            refuse("without affine parameters, running statistics or a momentum")
        node.update(op="batchnorm", features=m.num_features,
                    dims=1 if type(m) is nn.BatchNorm1d else 2, eps=m.eps, momentum=m.momentum)
    elif type(m) is nn.ReLU:
        node.update(op="relu")
    elif type(m) in (nn.MaxPool2d, nn.AvgPool2d):
        if m.ceil_mode:
            refuse("with ceil_mode")
        if type(m) is nn.MaxPool2d and _pair(m.dilation, "dilation", name) != 1:
            refuse("with dilation")
        if type(m) is nn.AvgPool2d and (not m.count_include_pad or m.divisor_override):
            refuse("without count_include_pad or with divisor_override")
        kernel = _pair(m.kernel_size, "kernel", name)
        node.update(op="maxpool2d" if type(m) is nn.MaxPool2d else "avgpool2d", kernel=kernel,
                    stride=kernel if m.stride is None else _pair(m.stride, "stride", name),
                    padding=_pair(m.padding, "padding", name))
    elif type(m) is nn.AdaptiveAvgPool2d:
        if _pair(m.output_size, "output_size", name) != 1:
            refuse(f"with output size {m.output_size}")
        node.update(op="globalavgpool")
    elif type(m) is nn.Flatten:
        if m.start_dim != 1 or m.end_dim != -1:
            refuse(f"over dims {m.start_dim}..{m.end_dim}")
        node.update(op="flatten")
    else:
        raise ValueError(f"{name}: unsupported module {kind} (supported: Linear, Conv2d, "
                         "BatchNorm1d, BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, "
                         "AdaptiveAvgPool2d(1), Flatten)")
    return node


def _graph_nodes(module):
    """The graph nodes of a supported module, each checked against the module it names."""
    if isinstance(module, GraphModule):
        nodes = []
        for node in module.spec:
            if node["op"] in ("add", "gate"):
                nodes.append(dict(node))
            else:
                nodes.append(_entry(node["name"], node["inputs"],
                                    module.get_submodule(node["name"])))
        return nodes
    if type(module) is nn.Sequential:
        nodes, previous = [], "input"
        for name, m in module.named_children():
            nodes.append(_entry(name, [previous], m))
            previous = name
        if not nodes:
            raise ValueError("an empty nn.Sequential has no layers to export")
        return nodes
    raise ValueError(f"unsupported module {type(module).__name__}: from_torch takes an "
                     "nn.Sequential of supported layers or a network from pruning_game_torch.build")


_CODES = {torch.float32: "F32", torch.int64: "I64"}


def write_safetensors(path, tensors, metadata):
    """Writes ``tensors`` (name -> tensor) and string ``metadata`` as a safetensors file,
    atomically (a temporary file in the same folder, then a rename)."""
    import os

    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _CODES:
            t = t.to(torch.float32)
        data = t.numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _CODES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
    os.replace(tmp, path)


def from_torch(module, path, input_shape=None, scale=1.0, mean=0.0, std=1.0):
    """Writes a PyTorch model to ``path`` in the graph model-file format (``docs/graphs.md``).

    ``module``: an ``nn.Sequential`` of Linear, Conv2d, BatchNorm1d/2d, ReLU, MaxPool2d,
    AvgPool2d, AdaptiveAvgPool2d(1) and Flatten, or a network built by :func:`build`. Any
    other module, or a supported one with settings the format cannot hold (groups, dilation,
    ceil_mode, rectangular kernels), raises ``ValueError`` naming it. ``input_shape`` is the
    per-sample shape (default: the ``input_spec`` that :func:`load` attached); ``scale``,
    ``mean`` and ``std`` the preprocessing ``x = (raw * scale - mean) / std``.
    """
    nodes = _graph_nodes(module)
    if input_shape is None:
        spec = getattr(module, "input_spec", None)
        if spec is None:
            raise ValueError("input_shape is required (the per-sample shape, e.g. [1, 28, 28])")
        input_shape, scale, mean, std = spec["shape"], spec["scale"], spec["mean"], spec["std"]
    tensors = dict(module.state_dict())
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"{name}: tensor has non-finite values")
    spec = {"shape": [int(d) for d in input_shape], "scale": float(scale),
            "mean": float(mean), "std": float(std)}
    write_safetensors(path, tensors, {"architecture": json.dumps({"graph": nodes}),
                                      "input": json.dumps(spec), "format": "pt"})


_CSR_PARTS = ("indptr", "indices", "values", "shape")
_NUMPY = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "U32": "<u4", "U8": "u1"}


def read_csr(path):
    """(dense ``state_dict``, metadata) of a CSR model file (``docs/formats.md``): each
    weight stored as ``{w}.indptr`` (int64), ``{w}.indices`` (uint32), ``{w}.values``
    (float32) and ``{w}.shape`` (int64) becomes the dense tensor ``{w}`` through
    ``torch.sparse_csr_tensor`` (which checks the parts); every other tensor is read as is.
    Needs numpy for the uint32 indices."""
    import numpy as np

    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    if meta.get("sparse_layout") != "csr":
        raise ValueError(f"{path}: not a CSR model file (metadata sparse_layout is not 'csr')")
    state, parts = {}, {}
    for name, t in header.items():
        if t["dtype"] not in _NUMPY:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {t['dtype']}")
        start, end = t["data_offsets"]
        a = np.frombuffer(data, dtype=_NUMPY[t["dtype"]], count=(end - start) // np.dtype(
            _NUMPY[t["dtype"]]).itemsize, offset=8 + n + start).reshape(t["shape"])
        base, _, part = name.rpartition(".")
        if part in _CSR_PARTS and base.endswith(".weight"):
            parts.setdefault(base, {})[part] = a
        else:
            state[name] = torch.from_numpy(a.copy())
    for base, p in parts.items():
        missing = [k for k in _CSR_PARTS if k not in p]
        if missing:
            raise ValueError(f"{path}: tensor {base}: missing CSR parts {missing}")
        shape = [int(d) for d in p["shape"]]
        rows, cols = shape[0], int(np.prod(shape[1:], dtype=np.int64))
        csr = torch.sparse_csr_tensor(
            torch.from_numpy(p["indptr"].astype(np.int64)),
            torch.from_numpy(p["indices"].astype(np.int64)),
            torch.from_numpy(p["values"].copy()),
            size=(rows, cols), check_invariants=True)
        state[base] = csr.to_dense().reshape(shape)
    return state, meta


def load_csr(path):
    """(module in eval mode, input spec) for a CSR model file, its dense ``state_dict``
    (:func:`read_csr`) loaded with ``strict=True``."""
    state, meta = read_csr(path)
    module = build(meta["architecture"])
    module.load_state_dict(state, strict=True)
    module.eval()
    spec = json.loads(meta["input"])
    module.input_spec = spec
    return module, spec


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
