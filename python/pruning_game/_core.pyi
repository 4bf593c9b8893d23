"""Type stubs of the compiled core (``pruning_game._core``, a PyO3 module).

The public API is the ``pruning_game`` package, which wraps these with conversions; the
signatures here are what the core itself accepts.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

class PruningGameError(ValueError):
    """Base class of the core's errors for bad input."""
    field: Optional[str]
    index: Optional[int]

class ValidationError(PruningGameError):
    """A value out of range or of the wrong size; ``field`` and ``index`` name it."""

class FormatError(PruningGameError):
    """A malformed file (the message names the file and position)."""

class SolverError(PruningGameError):
    """A solver that cannot run on this game, or a numerical breakdown."""

PerPlayer = Union[float, npt.NDArray[np.float64]]
Indices = Union[npt.NDArray[np.int32], npt.NDArray[np.int64]]

class Game:
    """A validated quadratic pruning game (immutable)."""
    @staticmethod
    def from_arrays(benefit: npt.NDArray[np.float64], self_cost: PerPlayer,
                    participation_cost: PerPlayer, upper: PerPlayer,
                    dense: Optional[npt.NDArray[np.float64]] = None,
                    sparse: Optional[Tuple[Tuple[int, int], Indices, Indices,
                                           npt.NDArray[np.float64]]] = None) -> "Game": ...
    @staticmethod
    def read(path: str) -> "Game": ...
    def write(self, path: str) -> None: ...
    def to_json(self) -> str: ...
    @property
    def players(self) -> int: ...
    @property
    def benefit(self) -> npt.NDArray[np.float64]: ...
    @property
    def self_cost(self) -> npt.NDArray[np.float64]: ...
    @property
    def participation_cost(self) -> npt.NDArray[np.float64]: ...
    @property
    def upper(self) -> npt.NDArray[np.float64]: ...
    @property
    def net_benefit(self) -> npt.NDArray[np.float64]: ...
    @property
    def storage(self) -> str: ...
    @property
    def nnz(self) -> int: ...
    @property
    def symmetric(self) -> bool: ...
    def competition_csr(self) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                                       npt.NDArray[np.float64]]: ...
    def potential(self, profile: npt.NDArray[np.float64]) -> float: ...
    def pseudo_gradient(self, profile: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
    def certificate(self, profile: npt.NDArray[np.float64]) -> Tuple[float, float]: ...

class SolveResult:
    """An equilibrium candidate with its certificate (see ``pruning_game.solve``)."""
    participation: npt.NDArray[np.float64]
    nash_gap: float
    residual: float
    iterations: int
    termination: str
    converged: bool
    solver: str
    pruned: npt.NDArray[np.int64]
    dominated: npt.NDArray[np.int64]
    undetermined: npt.NDArray[np.int64]
    residual_history: npt.NDArray[np.float64]
    seconds: float
    proof_seconds: float

class Model:
    """A network loaded by the Rust loader, in evaluation mode."""
    @property
    def input_shape(self) -> List[int]: ...
    @property
    def input(self) -> Dict[str, Any]: ...
    @property
    def outputs(self) -> int: ...
    @property
    def parameter_count(self) -> int: ...
    def parameter_names(self) -> List[str]: ...
    def logits(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...

def generate_game(players: int, *, seed: int = 0, sparse: Optional[int] = None,
                  random_degree: Optional[float] = None, density: float = 1.0,
                  symmetric: bool = False, beta: float = 0.1, gamma: float = 0.1,
                  alpha: float = 1.0, dominance: float = 1.5,
                  negative_fraction: float = 0.3) -> Game: ...
def solve(game: Game, solver: str = "newton", tol: float = 1e-10, max_iter: int = 10000, *,
          damping: float = 1.0, gauss_seidel: bool = False, step: Optional[float] = None,
          adaptive: bool = False, initial: Optional[npt.NDArray[np.float64]] = None,
          prove: bool = True, record_history: bool = False) -> SolveResult: ...
def analyze(game: Game, *, tol: float = 1e-12, max_sweeps: int = 10000,
            power_iterations: Optional[int] = None, eigen_limit: int = 1000,
            at: Optional[npt.NDArray[np.float64]] = None) -> Dict[str, Any]: ...
def sweep_config_json(path: Optional[str] = None, text: Optional[str] = None,
                      form: str = "toml") -> str: ...
def simulate(out: str, *, path: Optional[str] = None, text: Optional[str] = None,
             form: str = "toml", shard: Optional[str] = None, stop_after: Optional[int] = None,
             progress: Optional[Callable[[int, int], None]] = None
             ) -> Tuple[List[Dict[str, Any]], Dict[str, Any], Dict[str, Any]]: ...
def merge(shards: Sequence[str], out: str, *, allow_partial: bool = False
          ) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]: ...
def prune(out: str, *, model: str = "mlp", dataset: str = "teacher",
          data_dir: Optional[str] = None, hidden: Optional[Sequence[int]] = None,
          depth: int = 8, init: Optional[str] = None,
          seed: int = 42, target_kept: Optional[float] = None, baselines: bool = False,
          resume: bool = False, settings: Sequence[str] = (),
          progress: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]: ...
def load_model(path: str) -> Model: ...
