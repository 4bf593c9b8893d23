"""PyTorch twin of examples/graph_speed.rs: the same BN-CNN and ResNets (built from the
repo's own module, python/pruning_game_torch.py, so the networks are the same graphs),
batch 128 of 1x28x28, forward + backward in training mode + SGD (momentum 0.9, weight decay
5e-4); median and best step time over REPS steps after 3 warm-up steps. CPU, THREADS=2 by
default. The networks are the files examples/graph_speed.rs exports before timing them.

    python3 benches/torch_graph_speed.py [REPS] MODEL.safetensors ...
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import pruning_game_torch as pgt  # noqa: E402

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
torch.manual_seed(0)
B = 128


def probe(name, model, reps):
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(B, 1, 28, 28)
    y = torch.randint(0, 10, (B,))
    ts = []
    for i in range(reps + 3):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if i >= 3:
            ts.append(time.perf_counter() - t0)
    ts.sort()
    med = ts[len(ts) // 2]
    print(f"{name:<24} train step  median {med * 1e3:7.2f} ms ({B / med:6.0f} samples/s)  "
          f"best {ts[0] * 1e3:7.2f} ms")


if __name__ == "__main__":
    args = sys.argv[1:]
    reps = int(args.pop(0)) if args and args[0].isdigit() else 20
    for path in args:
        model, _ = pgt.load(path)
        probe(os.path.basename(path).split('.')[0], model, reps)
