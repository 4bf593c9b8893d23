"""Trains the repository's small-image ResNet in PyTorch on Fashion-MNIST and writes it for
`pruning-game prune --init` — the first leg of the round trip PyTorch → prune → PyTorch.

    python3 benches/torch_train_resnet.py [--depth 8] [--epochs 4] [--seed 0] [--threads 2]
        [--data /usr/share/datasets/fashion-mnist] [--out runs/torch_resnet/model.safetensors]

The network is `pruning_game_torch.resnet(depth)`, trained the way `examples/train_resnet.rs`
trains its own: SGD 0.1, momentum 0.9, weight decay 5e-4, a cosine schedule stepped per
batch, batch 128, random 2-pixel crops (zero padding of the raw image) and horizontal flips.
Inputs are preprocessed as the crate's Fashion-MNIST spec (`x = (byte / 255 - 0.286) /
0.353`), which the file records, so the Rust side reads the same numbers. Prints the test
accuracy in evaluation mode; the file is written only after training finished.
`benches/torch_pruning_resnet.py` reuses the data and training functions.
"""
import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import pruning_game_torch as pgt  # noqa: E402
from torch_load_check import read_idx  # noqa: E402

SPEC = {"shape": [1, 28, 28], "scale": 1 / 255, "mean": 0.286, "std": 0.353}


def normalise(raw):
    return (raw.float() * SPEC["scale"] - SPEC["mean"]) / SPEC["std"]


def augment(raw, gen, pad=2):
    """Random crops from the zero-padded raw images and horizontal flips, per sample."""
    n, h, w = raw.shape
    padded = torch.zeros((n, h + 2 * pad, w + 2 * pad), dtype=raw.dtype)
    padded[:, pad:pad + h, pad:pad + w] = raw
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, :, None]
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, :]
    out = padded[torch.arange(n)[:, None, None], rows, cols]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def fashion_mnist(data):
    """(raw train images, train labels, normalised test images, test labels); exits with the
    missing file's name if the data set is not there."""
    def idx(name):
        path = os.path.join(data, name)
        if not os.path.isfile(path):
            sys.exit(f"{path}: missing (install dataset-fashion-mnist or pass --data)")
        return torch.from_numpy(read_idx(path).copy())

    return (idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz").long(),
            normalise(idx("t10k-images-idx3-ubyte.gz")).unsqueeze(1),
            idx("t10k-labels-idx1-ubyte.gz").long())


def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(y)


def train(model, train_x, train_y, epochs, lr, gen, batch=128, on_epoch=None):
    """SGD with momentum 0.9 and weight decay 5e-4 from `lr` along a per-batch cosine to 0,
    on augmented batches drawn by `gen`; `on_epoch(epoch, seconds)` after each epoch."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, epochs * math.ceil(len(train_y) / batch))
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(epochs):
        start = time.time()
        model.train()
        order = torch.randperm(len(train_y), generator=gen)
        for i in range(0, len(order), batch):
            b = order[i:i + batch]
            loss = loss_fn(model(normalise(augment(train_x[b], gen)).unsqueeze(1)), train_y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if on_epoch:
            on_epoch(epoch, time.time() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default="runs/torch_resnet/model.safetensors")
    args = ap.parse_args()
    if args.epochs < 1 or args.batch < 1:
        sys.exit("--epochs and --batch must be at least 1")
    try:
        pgt.resnet_architecture(args.depth)  # a depth that is not 6n + 2, before any work
    except ValueError as e:
        sys.exit(f"--{e}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train_x, train_y, test_x, test_y = fashion_mnist(args.data)
    model = pgt.resnet(args.depth)  # initialised from the seed just set

    def report(epoch, seconds):
        acc = accuracy(model, test_x, test_y)
        print(f"epoch {epoch + 1}: test accuracy {acc:.4f} ({seconds:.0f} s)", flush=True)

    train(model, train_x, train_y, args.epochs, 0.1, gen, args.batch, report)
    acc = accuracy(model, test_x, test_y)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    pgt.from_torch(model, args.out, SPEC["shape"], SPEC["scale"], SPEC["mean"], SPEC["std"])
    print(f"{args.out}: resnet-{args.depth}, torch test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
