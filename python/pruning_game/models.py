"""Model files between the Rust backend and PyTorch.

:func:`load_model` reads a model file with the core's own loader and runs its forward pass;
:func:`to_torch` and :func:`from_torch` are the PyTorch bridge of ``pruning_game_torch``
(one implementation, shared with the repository's scripts), imported only when called so
that the package never needs torch.
"""
import os
from typing import Any, Optional, Sequence, Tuple

from . import _core


def load_model(path) -> "_core.Model":
    """The network in a model file (sequential or graph), as the Rust loader reads it.

    ``model.logits(x)`` takes preprocessed ``float32`` inputs ``[batch, *model.input_shape]``.
    """
    return _core.load_model(os.fspath(path))


def _bridge():
    import pruning_game_torch

    return pruning_game_torch


def to_torch(path) -> Tuple[Any, dict]:
    """``(module in eval mode, input spec)`` of a model file, loaded by PyTorch with
    ``strict=True`` (needs torch)."""
    return _bridge().load(os.fspath(path))


def from_torch(module: Any, path, input_shape: Optional[Sequence[int]] = None, *,
               scale: float = 1.0, mean: float = 0.0, std: float = 1.0) -> None:
    """Writes a PyTorch model into the model-file format the Rust graph loader reads.

    ``module`` is an ``nn.Sequential`` of ``Linear``, ``Conv2d``, ``BatchNorm1d/2d``,
    ``ReLU``, ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d(1)`` and ``Flatten``, or a
    network built by ``pruning_game_torch.build`` (the ResNets); anything else is refused
    by name. ``input_shape`` is the per-sample shape (taken from the module when it was
    loaded from a file); ``scale``, ``mean`` and ``std`` the preprocessing
    ``x = (raw · scale − mean) / std`` recorded in the file. Needs torch.
    """
    _bridge().from_torch(module, os.fspath(path), input_shape, scale=scale, mean=mean, std=std)
