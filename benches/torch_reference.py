"""PyTorch reference for benches/nn.rs: same models, batch 128, CPU, 2 threads (THREADS=n to change).

Measures one training step (forward + backward + Adam) in samples/s and the inference latency
of one batch, plus a 1024^3 sgemm for the machine's peak. Run:
    python benches/torch_reference.py
"""
import os
import sys
import time

import torch
import torch.nn as nn

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
torch.manual_seed(0)
B = 128


def mlp():
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def timeit(fn, reps=50):
    """Median and best per-iteration time (the best is robust on a shared machine)."""
    for _ in range(5):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2], ts[0]


def bench(name, model, x, reps):
    y = torch.randint(0, 10, (B,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    def infer():
        with torch.no_grad():
            model(x)

    (sm, sb), (im, ib) = timeit(step, reps), timeit(infer, reps)
    print(
        f"{name}: train step median {sm*1e3:.3f} ms ({B/sm:.0f} samples/s), best {sb*1e3:.3f} ms "
        f"({B/sb:.0f} samples/s); inference median {im*1e3:.3f} ms, best {ib*1e3:.3f} ms"
    )


if __name__ == "__main__":
    print("torch", torch.__version__, "threads", torch.get_num_threads())
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    bench("mlp_784_512_256_10", mlp(), torch.randn(B, 784), reps)
    bench("small_cnn", cnn(), torch.randn(B, 1, 28, 28), reps // 2)
    a = torch.randn(1200, 1200)
    _, t = timeit(lambda: a @ a, 10)
    print(f"torch sgemm 1200 ({torch.get_num_threads()} threads): best {2*1200**3/t/1e9:.1f} GFLOP/s")
