"""Equilibria with certificates, and what can be proved without solving."""
from typing import Any, Optional

import numpy as np

from . import _core
from .games import PruningGame, _vector
from .records import Record

#: The solvers, by the names the CLI and the equilibrium file use.
SOLVERS = ("best-response", "projection", "extragradient", "newton")


def _core_game(game: Any) -> "_core.Game":
    if isinstance(game, PruningGame):
        return game._game
    if isinstance(game, _core.Game):
        return game
    raise TypeError(f"expected a PruningGame, got {type(game).__name__}")


def solve(game: PruningGame, solver: str = "newton", tol: float = 1e-10,
          max_iter: int = 10_000, *, damping: float = 1.0, gauss_seidel: bool = False,
          step: Optional[float] = None, adaptive: bool = False, initial: Any = None,
          prove: bool = True, record_history: bool = False) -> "_core.SolveResult":
    """A Nash equilibrium of ``game`` and its certificate, as ``pruning-game solve`` computes it.

    ``solver`` is one of :data:`SOLVERS`; the run stops when the natural residual
    ``‖s − Π(s − F(s))‖_∞`` is at most ``tol`` or after ``max_iter`` steps. The result's
    ``nash_gap`` and ``residual`` are recomputed from the game for the returned profile;
    ``converged`` says whether the tolerance was met and ``termination`` why the run stopped
    (a run that falls short is returned, not raised). With ``prove`` (the default) the T3/T4
    proofs run from the answer: ``dominated`` lists players pruned in every equilibrium,
    ``undetermined`` those pruned here that the proofs could not reach in their budget.

    The GIL is released while the core works; Ctrl-C stops the solve and raises
    ``KeyboardInterrupt``.
    """
    if initial is not None:
        initial = _vector(initial, "initial")
    return _core.solve(_core_game(game), solver, tol, max_iter, damping=damping,
                       gauss_seidel=gauss_seidel, step=step, adaptive=adaptive,
                       initial=initial, prove=prove, record_history=record_history)


class Analysis(Record):
    """What ``pruning-game analyze`` reports, with the field names of its JSON output:

    * ``dominance`` — T3: ``dominated`` players (``q_i < 0``, or ``q_i = 0 < a_i``),
      ``min_margin`` / ``max_margin``; per player ``margin_players`` and ``margins`` (``−q_i``);
    * ``elimination`` — T4: sweeps, ``gap``, ``met``, ``pruned`` (``U_i = 0``) and ``active``
      (``L_i > 0``); the bracket itself as arrays ``lower`` and ``upper``;
    * ``uniqueness`` — T2: ``verdict`` and the quantities behind it; ``unique`` (bool) and
      ``uniqueness_test`` (the test that decided it, or ``None``);
    * ``potential`` — T5: ``exact_potential`` and ``value`` at ``at``;
    * ``convergence`` — T6: Lipschitz bounds, monotonicity, safe steps, Jacobi radius;
    * ``provably_pruned`` — T3 ∪ T4.
    """


def analyze(game: PruningGame, *, tol: float = 1e-12, max_sweeps: int = 10_000,
            power_iterations: Optional[int] = None, eigen_limit: int = 1000,
            at: Any = None) -> Analysis:
    """Dominance (T3), the iterated-elimination bracket (T4), uniqueness (T2), the potential
    (T5) and the convergence constants (T6) of ``game``, without solving it.

    ``at`` is a profile at which to evaluate the potential (default: the bracket's
    midpoint); ``eigen_limit`` the largest game given a dense eigendecomposition.
    """
    if at is not None:
        at = _vector(at, "profile")
    raw = _core.analyze(_core_game(game), tol=tol, max_sweeps=max_sweeps,
                        power_iterations=power_iterations, eigen_limit=eigen_limit, at=at)
    raw["provably_pruned"] = np.asarray(raw["provably_pruned"], dtype=np.int64)
    return Analysis(raw)
