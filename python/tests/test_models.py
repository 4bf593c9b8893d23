"""The PyTorch bridge checked from outside: random torch models exported by ``from_torch``,
loaded by the Rust loader through the bindings, and compared logit by logit."""
import numpy as np
import pytest

import pruning_game as pg

torch = pytest.importorskip("torch")
nn = torch.nn
pgt = pytest.importorskip("pruning_game_torch")

TOL = 1e-4


def _randomise(model, gen):
    """Random weights and BatchNorm statistics, so that a misread tensor shows."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=gen) * 0.5)
    return model.eval()


def _check(model, shape, path, gen, batch=5):
    pg.from_torch(model, path, shape)
    rust = pg.load_model(path)
    assert rust.input_shape == list(shape)
    x = torch.randn((batch, *shape), generator=gen)
    with torch.no_grad():
        want = model(x).numpy()
    got = rust.logits(x.numpy())
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, atol=TOL * scale, rtol=0)
    # And back: PyTorch reads the file strictly and computes the same.
    back, spec = pg.to_torch(path)
    with torch.no_grad():
        np.testing.assert_allclose(back(x).numpy(), want, atol=TOL * scale, rtol=0)
    assert spec["shape"] == list(shape)


def _random_cnn(gen, rng):
    c = int(rng.integers(1, 4))
    w1, w2 = (int(v) for v in rng.integers(2, 7, 2))
    pool = [nn.MaxPool2d(2), nn.AvgPool2d(2), nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(3, 1, 1)]
    layers = [nn.Conv2d(c, w1, 3, padding=int(rng.integers(0, 2)), bias=bool(rng.integers(2))),
              nn.BatchNorm2d(w1), nn.ReLU(), pool[int(rng.integers(len(pool)))],
              nn.Conv2d(w1, w2, int(rng.choice([1, 3])), stride=int(rng.integers(1, 3))),
              nn.ReLU()]
    if rng.integers(2):
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w2, 4)]
    else:
        probe = nn.Sequential(*layers)(torch.zeros(1, c, 12, 12))
        layers += [nn.Flatten(), nn.Linear(probe.numel(), 6), nn.BatchNorm1d(6), nn.ReLU(),
                   nn.Linear(6, 3)]
    return nn.Sequential(*layers), (c, 12, 12)


def test_random_sequential_models_agree(tmp_path):
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    for k in range(8):
        model, shape = _random_cnn(gen, rng)
        _check(_randomise(model, gen), shape, tmp_path / f"cnn{k}.safetensors", gen)
    for k in range(4):
        n_in, h = (int(v) for v in rng.integers(3, 20, 2))
        mlp = nn.Sequential(nn.Linear(n_in, h), nn.BatchNorm1d(h), nn.ReLU(),
                            nn.Linear(h, h, bias=False), nn.ReLU(), nn.Linear(h, 5))
        _check(_randomise(mlp, gen), (n_in,), tmp_path / f"mlp{k}.safetensors", gen)


@pytest.mark.parametrize("depth", [8, 14])
def test_resnets_from_build_agree(tmp_path, depth):
    gen = torch.Generator().manual_seed(depth)
    model = _randomise(pgt.resnet(depth), gen)
    _check(model, (1, 16, 16), tmp_path / f"resnet{depth}.safetensors", gen, batch=3)


def test_export_of_a_loaded_file_keeps_its_input_spec(tmp_path):
    gen = torch.Generator().manual_seed(5)
    model = _randomise(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), gen)
    pg.from_torch(model, tmp_path / "a.safetensors", (3, 2, 2), scale=1 / 255, mean=0.3, std=0.4)
    back, spec = pg.to_torch(tmp_path / "a.safetensors")
    pg.from_torch(back, tmp_path / "b.safetensors")
    assert pg.load_model(tmp_path / "b.safetensors").input == spec
    assert spec == {"shape": [3, 2, 2], "scale": 1 / 255, "mean": 0.3, "std": 0.4}


@pytest.mark.parametrize("module,message", [
    (nn.Sequential(nn.Linear(4, 4), nn.Tanh()), "1: unsupported module Tanh"),
    (nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU())), "1: unsupported module Sequential"),
    (nn.Sequential(nn.Conv2d(2, 4, 3, groups=2)), "0: Conv2d with groups or dilation"),
    (nn.Sequential(nn.Conv2d(1, 4, (3, 5))), "0: kernel (3, 5) is not square"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2, ceil_mode=True)), "1: MaxPool2d with ceil_mode"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(2)), "1: AdaptiveAvgPool2d with output size 2"),
    (nn.Sequential(nn.BatchNorm1d(4, affine=False)), "0: BatchNorm1d without affine"),
    (nn.Linear(4, 4), "unsupported module Linear: from_torch takes an nn.Sequential"),
    (nn.Sequential(), "empty nn.Sequential"),
])
def test_refusals_name_the_module(tmp_path, module, message):
    path = tmp_path / "refused.safetensors"
    with pytest.raises(ValueError) as e:
        pg.from_torch(module, path, (1, 8, 8))
    assert message in str(e.value)
    assert not path.exists()


def test_rust_loader_refuses_bad_files(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3))
    path = tmp_path / "m.safetensors"
    pg.from_torch(model, path, (4,))
    good = pg.load_model(path)
    with pytest.raises(pg.ValidationError, match=r"shape \[2, 5\] is not \[batch, 4\]"):
        good.logits(np.zeros((2, 5), np.float32))
    tensors = {k: v for k, v in model.state_dict().items() if k != "0.bias"}
    meta = {"architecture": '{"graph": [{"name": "0", "op": "linear", "inputs": ["input"], '
                            '"in": 4, "out": 3, "bias": true}]}',
            "input": '{"shape": [4], "scale": 1.0, "mean": 0.0, "std": 1.0}', "format": "pt"}
    pgt.write_safetensors(tmp_path / "missing.safetensors", tensors, meta)
    with pytest.raises(pg.FormatError, match="0.bias"):
        pg.load_model(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError):
        pg.load_model(tmp_path / "nope.safetensors")
