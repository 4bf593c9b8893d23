"""Neural-network pruning as a continuous game, on the pruning-game Rust core.

Players are parameter groups choosing a participation ``s_i`` in ``[0, u_i]``; a unit is
pruned when zero participation is its best strategy at equilibrium.

* Games: :class:`PruningGame` (NumPy arrays, a dense or ``scipy.sparse`` competition),
  :func:`read`, :func:`generate`.
* Solving and analysis: :func:`solve` (a :class:`SolveResult` with its certificate) and
  :func:`analyze` (dominance, the iterated-elimination bracket, uniqueness, potential,
  convergence constants).
* Sweeps and pruning: :func:`simulate` (a sweep file's grid) and :func:`prune` (the CLI's
  pruning pipeline).
* Models: :func:`load_model` (the Rust loader's forward pass), :func:`to_torch` and
  :func:`from_torch` (the PyTorch bridge, ``pruning_game_torch``).

Bad input raises :class:`ValidationError` (or :class:`FormatError` for files) with the
core's message, which names the field and index; ``err.field`` and ``err.index`` hold them.
"""
from ._core import (
    FormatError,
    PruningGameError,
    SolveResult,
    SolverError,
    ValidationError,
    __version__,
)
from .games import PruningGame, generate, read, write
from .models import from_torch, load_model, to_torch
from .records import Record
from .solving import SOLVERS, Analysis, analyze, solve
from .sweeps import merge, prune, simulate

__all__ = [
    "Analysis",
    "FormatError",
    "PruningGame",
    "PruningGameError",
    "Record",
    "SOLVERS",
    "SolveResult",
    "SolverError",
    "ValidationError",
    "__version__",
    "analyze",
    "from_torch",
    "generate",
    "load_model",
    "merge",
    "prune",
    "read",
    "simulate",
    "solve",
    "to_torch",
    "write",
]
