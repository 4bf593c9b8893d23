"""PyTorch reference for benches/nn.rs: same models, batch 128, CPU, 2 threads.

Measures one training step (forward + backward + Adam) in samples/s and the inference latency
of one batch, plus a 1024^3 sgemm for the machine's peak. Run:
    python benches/torch_reference.py
"""
import time

import torch
import torch.nn as nn

torch.set_num_threads(2)
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


def timeit(fn, min_time=3.0):
    for _ in range(5):
        fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_time:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def bench(name, model, x):
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

    ts, ti = timeit(step), timeit(infer)
    print(f"{name}: train step {ts*1e3:.3f} ms = {B/ts:.0f} samples/s; inference {ti*1e3:.3f} ms/batch")
    return ts, ti


if __name__ == "__main__":
    print("torch", torch.__version__, "threads", torch.get_num_threads())
    bench("mlp_784_512_256_10", mlp(), torch.randn(B, 784))
    bench("small_cnn", cnn(), torch.randn(B, 1, 28, 28))
    a = torch.randn(1024, 1024)
    t = timeit(lambda: a @ a, 2.0)
    print(f"sgemm 1024: {2*1024**3/t/1e9:.1f} GFLOP/s")
