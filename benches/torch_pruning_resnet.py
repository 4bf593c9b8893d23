"""The tool users would pick instead: Torch-Pruning (DepGraph; Fang et al., "DepGraph:
Towards Any Structural Pruning", CVPR 2023) prunes the same trained ResNet in PyTorch, so its
figures stand beside the game's in one table.

    pip install torch-pruning   # not a dependency of the crate
    python3 benches/torch_pruning_resnet.py MODEL.safetensors [--macs 0.5,0.3,0.15]
        [--importance magnitude,bn-scale,taylor] [--epochs 3] [--lr 0.01] [--seed 0]
        [--threads 2] [--train-samples N] [--data DIR] [--csv runs/torch_pruning.csv]

`MODEL.safetensors` is the file `prune --init` reads (for example the output of
`benches/torch_train_resnet.py`). For each importance and each fraction of the dense MACs, the
network is loaded afresh and pruned by Torch-Pruning's `MetaPruner` (channel groups from its
dependency graph, the classifier left alone) in small steps, with no training between them,
until its MACs are at or below the fraction; then it is fine-tuned for `--epochs` epochs with
the recipe of `benches/torch_train_resnet.py` from `--lr` (give it the game's whole budget
after the trained model: `--epochs` plus the fine-tune epochs of the `prune` run). Taylor
importance reads the gradients of one training batch of 128 before each step, in evaluation
mode, so the trained running statistics stay as they are. Prints and writes, per run: MACs
and parameters kept, test accuracy right after pruning and after the fine-tune, and the
forward latency in PyTorch of the dense and the pruned network (best of 5 passes over 2000
test images in batches of 250, interleaved).
"""
import argparse
import copy
import csv
import os
import sys
import time

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(_HERE, "..", "python")]
import torch_train_resnet as recipe  # noqa: E402
import pruning_game_torch as pgt  # noqa: E402

try:
    import torch_pruning as tp
except ImportError:
    sys.exit("needs torch-pruning: pip install torch-pruning")

# Each step removes 1/STEPS of every group's channels more (rounded down), so the MACs fall in
# steps of well under 1% of the dense network's.
STEPS = 200

IMPORTANCES = {
    "magnitude": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "bn-scale": lambda: tp.importance.BNScaleImportance(),
    "taylor": lambda: tp.importance.GroupTaylorImportance(),
}


def latency_ms(model, x, batch=250, repeats=5):
    model.eval()
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(x), batch):
                model(x[i:i + batch])
            best = min(best, (time.perf_counter() - start) * 1e3)
    return best


def prune_to(model, fraction, importance, example, batch):
    """Prunes `model` in place until its MACs are at most `fraction` of the dense ones."""
    dense_macs, _ = tp.utils.count_ops_and_params(model, example)
    pruner = tp.pruner.MetaPruner(model, example, importance=IMPORTANCES[importance](),
                                  pruning_ratio=1.0, iterative_steps=STEPS,
                                  ignored_layers=[model.get_submodule("fc")])
    macs = dense_macs
    while macs > fraction * dense_macs:
        if importance == "taylor":
            model.zero_grad()
            x, y = batch
            torch.nn.functional.cross_entropy(model(x), y).backward()
        if pruner.current_step >= STEPS:
            raise RuntimeError(f"{importance}: stopped at {macs / dense_macs:.3f} of the MACs")
        pruner.step()
        macs, _ = tp.utils.count_ops_and_params(model, example)
    return macs / dense_macs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--macs", default="0.5,0.3,0.15")
    ap.add_argument("--importance", default="magnitude,bn-scale,taylor")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-samples", type=int, default=None)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--csv", default="runs/torch_pruning.csv")
    args = ap.parse_args()
    fractions = [float(f) for f in args.macs.split(",")]
    importances = args.importance.split(",")
    unknown = [i for i in importances if i not in IMPORTANCES]
    if unknown or not all(0 < f <= 1 for f in fractions) or args.epochs < 0:
        sys.exit(f"--importance takes {sorted(IMPORTANCES)} (got {unknown}), --macs fractions "
                 "in (0, 1], --epochs >= 0")
    dense, spec = pgt.load(args.model)
    if spec["shape"] != recipe.SPEC["shape"]:
        sys.exit(f"{args.model}: input shape {spec['shape']}, the script trains on 1x28x28")
    torch.set_num_threads(args.threads)
    train_x, train_y, test_x, test_y = recipe.fashion_mnist(args.data)
    if args.train_samples:
        train_x, train_y = train_x[:args.train_samples], train_y[:args.train_samples]
    example = test_x[:1]
    dense_acc = recipe.accuracy(dense, test_x, test_y)
    _, dense_params = tp.utils.count_ops_and_params(dense, example)
    print(f"dense: test accuracy {dense_acc:.4f}, {dense_params} parameters", flush=True)
    rows = []
    for importance in importances:
        for fraction in fractions:
            torch.manual_seed(args.seed)
            gen = torch.Generator().manual_seed(args.seed)
            model = copy.deepcopy(dense)
            b = torch.randperm(len(train_y), generator=gen)[:128]
            batch = (recipe.normalise(train_x[b]).unsqueeze(1), train_y[b])
            # Taylor's gradients come from evaluation-mode passes, which leave the running
            # statistics of the trained network as they are.
            model.eval()
            kept_macs = prune_to(model, fraction, importance, example, batch)
            _, params = tp.utils.count_ops_and_params(model, example)
            pruned_acc = recipe.accuracy(model, test_x, test_y)
            recipe.train(model, train_x, train_y, args.epochs, args.lr, gen)
            tuned_acc = recipe.accuracy(model, test_x, test_y)
            x = test_x[:2000]
            lat_dense, lat_pruned = float("inf"), float("inf")
            for _ in range(3):
                lat_dense = min(lat_dense, latency_ms(dense, x))
                lat_pruned = min(lat_pruned, latency_ms(model, x))
            row = {"importance": importance, "macs_target": fraction,
                   "macs_kept": round(kept_macs, 4), "params_kept": params,
                   "pruned_accuracy": round(pruned_acc, 4),
                   "finetuned_accuracy": round(tuned_acc, 4), "dense_accuracy": round(dense_acc, 4),
                   "latency_ms_dense": round(lat_dense, 2), "latency_ms_pruned": round(lat_pruned, 2),
                   "speedup": round(lat_dense / lat_pruned, 3), "epochs": args.epochs,
                   "lr": args.lr, "seed": args.seed}
            print(row, flush=True)
            rows.append(row)
    os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
    tmp = args.csv + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, args.csv)
    print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
