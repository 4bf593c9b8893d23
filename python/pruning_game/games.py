"""Games: construction from NumPy / SciPy, game files and the seeded generator.

Arrays go to the core as they are when they are ``float64`` and contiguous (``np.asarray``
makes no copy then); the core copies them once into the game it validates, so the caller's
arrays are never written to or aliased.
"""
import os
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _core

ArrayLike = Any
PathLike = Union[str, "os.PathLike[str]"]


def _invalid(field: str, message: str) -> "_core.ValidationError":
    """A ValidationError for a problem found before the core sees the value (its shape or
    type), with ``field`` set as the core's errors have it."""
    err = _core.ValidationError(f"{field}: {message}")
    err.field, err.index = field, None
    return err


def _is_scipy_sparse(x: Any) -> bool:
    return type(x).__module__.startswith("scipy.sparse")


def _per_player(x: ArrayLike, field: str):
    """A float (one value for all players) or a 1-d float64 array."""
    if np.ndim(x) == 0:
        try:
            return float(x)
        except (TypeError, ValueError) as e:
            raise _invalid(field, f"expected a number or an array ({e})") from None
    return _vector(x, field)


def _vector(x: ArrayLike, field: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _invalid(field, f"expected an array of numbers ({e})") from None
    if a.ndim != 1:
        raise _invalid(field, f"expected a 1-d array, got shape {a.shape}")
    return a


def _indices(a: np.ndarray) -> np.ndarray:
    return a if a.dtype in (np.int32, np.int64) else a.astype(np.int64)


def _competition(c: Any) -> dict:
    """Keyword arguments of the core's constructor for a competition matrix."""
    if c is None:
        return {}
    if _is_scipy_sparse(c):
        csr = c.tocsr()  # no copy when it already is CSR
        return {"sparse": (tuple(int(d) for d in csr.shape), _indices(csr.indptr),
                           _indices(csr.indices), np.asarray(csr.data, dtype=np.float64))}
    try:
        dense = np.asarray(c, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _invalid("competition", f"expected a matrix of numbers ({e})") from None
    if dense.ndim != 2:
        raise _invalid("competition", f"expected a 2-d array, got shape {dense.shape}")
    return {"dense": dense}


class PruningGame:
    """The quadratic pruning game ``U_i = b_i s_i − (a_i/2) s_i² − γ_i s_i − s_i Σ_j C_ij s_j``
    on ``s_i ∈ [0, u_i]``.

    ``benefit`` (``b``) fixes the number of players; ``self_cost`` (``a ≥ 0``),
    ``participation_cost`` (``γ ≥ 0``) and ``upper`` (``u > 0``) take one number for all or
    one per player; ``competition`` (``C ≥ 0``, zero diagonal) is ``None``, a dense
    ``N × N`` array or any ``scipy.sparse`` matrix. Everything is validated once, here, by the
    core: a bad value raises :class:`ValidationError` naming its field and index
    (``self_cost[1] = -2 is negative; it must be >= 0``). The game is immutable.
    """

    __slots__ = ("_game",)

    def __init__(self, benefit: ArrayLike, self_cost: ArrayLike, participation_cost: ArrayLike,
                 competition: Any = None, upper: ArrayLike = 1.0):
        self._game = _core.Game.from_arrays(
            _vector(benefit, "benefit"), _per_player(self_cost, "self_cost"),
            _per_player(participation_cost, "participation_cost"), _per_player(upper, "upper"),
            **_competition(competition))

    @classmethod
    def _wrap(cls, core: "_core.Game") -> "PruningGame":
        game = cls.__new__(cls)
        game._game = core
        return game

    @classmethod
    def read(cls, path: PathLike) -> "PruningGame":
        """Reads a game file: JSON or safetensors (by extension, else by its first bytes)."""
        return cls._wrap(_core.Game.read(os.fspath(path)))

    def write(self, path: PathLike) -> None:
        """Writes the game file atomically: safetensors for ``.safetensors``, JSON otherwise."""
        self._game.write(os.fspath(path))

    def to_json(self) -> str:
        """The JSON text of the game file."""
        return self._game.to_json()

    @property
    def players(self) -> int:
        """Number of players ``N``."""
        return self._game.players

    def __len__(self) -> int:
        return self._game.players

    # Read-only views of the game's own vectors (no copies).
    @property
    def benefit(self) -> np.ndarray:
        """``b`` (read-only view)."""
        return self._game.benefit

    @property
    def self_cost(self) -> np.ndarray:
        """``a`` (read-only view)."""
        return self._game.self_cost

    @property
    def participation_cost(self) -> np.ndarray:
        """``γ`` (read-only view)."""
        return self._game.participation_cost

    @property
    def upper(self) -> np.ndarray:
        """``u`` (read-only view)."""
        return self._game.upper

    @property
    def net_benefit(self) -> np.ndarray:
        """``q = b − γ`` (read-only view): T3 prunes every player with ``q_i < 0``."""
        return self._game.net_benefit

    @property
    def storage(self) -> str:
        """``none``, ``dense`` or ``sparse``."""
        return self._game.storage

    @property
    def nnz(self) -> int:
        """Stored competition entries."""
        return self._game.nnz

    @property
    def symmetric(self) -> bool:
        """Whether ``C = Cᵀ`` (then the game has an exact potential, T5)."""
        return self._game.symmetric

    def competition_csr(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``C`` as CSR arrays ``(indptr, indices, values)`` (copies)."""
        return self._game.competition_csr()

    @property
    def competition(self):
        """``C`` as a ``scipy.sparse.csr_matrix`` (needs SciPy)."""
        import scipy.sparse as sp

        indptr, indices, values = self.competition_csr()
        n = self.players
        return sp.csr_matrix((values, indices, indptr), shape=(n, n))

    def potential(self, s: ArrayLike) -> float:
        """``Φ(s) = qᵀs − ½ sᵀMs`` (an exact potential only when ``C`` is symmetric)."""
        return self._game.potential(_vector(s, "profile"))

    def pseudo_gradient(self, s: ArrayLike) -> np.ndarray:
        """``F(s) = M s − q``."""
        return self._game.pseudo_gradient(_vector(s, "profile"))

    def certificate(self, s: ArrayLike) -> Tuple[float, float]:
        """``(nash_gap, natural_residual)`` of a profile, computed from the game."""
        return self._game.certificate(_vector(s, "profile"))

    def __repr__(self) -> str:
        return f"PruningGame({self.players} players, {self.storage} competition, {self.nnz} entries)"


def read(path: PathLike) -> PruningGame:
    """Reads a game file (JSON or safetensors)."""
    return PruningGame.read(path)


def write(game: PruningGame, path: PathLike) -> None:
    """Writes ``game`` to ``path`` (safetensors for ``.safetensors``, JSON otherwise)."""
    game.write(path)


def generate(players: int, *, seed: int = 0, sparse: Optional[int] = None,
             random_degree: Optional[float] = None, density: float = 1.0,
             symmetric: bool = False, beta: float = 0.1, gamma: float = 0.1,
             alpha: float = 1.0, dominance: float = 1.5,
             negative_fraction: float = 0.3) -> PruningGame:
    """A seeded synthetic game, with the knobs of ``pruning-game generate``.

    Dense competition of the given ``density`` unless ``sparse=K`` (a ring of the ``K``
    nearest neighbours) or ``random_degree=D`` (Erdős–Rényi, ``D`` competitors on average);
    entries ``β·U(0,1)``; ``a_i = δ·max(row, column sum) + α·U(0.5, 1.5)``; a fraction
    ``negative_fraction`` of players with ``q_i < 0``. The same arguments give the same game
    (and the same file as the CLI) on every machine.
    """
    return PruningGame._wrap(_core.generate_game(
        players, seed=seed, sparse=sparse, random_degree=random_degree, density=density,
        symmetric=symmetric, beta=beta, gamma=gamma, alpha=alpha, dominance=dominance,
        negative_fraction=negative_fraction))
