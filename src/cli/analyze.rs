//! `pruning-game analyze`: dominance, iterated-elimination bounds, uniqueness, potential and
//! convergence constants of a game file, without solving it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pruning_game::dominance::{analyze, Analysis, AnalysisOptions, Uniqueness};
use pruning_game::game::{Game, PruningGame};
use pruning_game::Error;

/// Options of `analyze`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Game file (JSON or safetensors; docs/formats.md, docs/game-binary-format.md).
    #[arg(long)]
    game: PathBuf,
    /// Print the analysis as JSON (every index list in full) instead of the readable report.
    #[arg(long)]
    json: bool,
    /// Evaluate the potential at the `participation` of this equilibrium file instead of the
    /// midpoint of the elimination bracket.
    #[arg(long, value_name = "EQUILIBRIUM")]
    at: Option<PathBuf>,
    /// Iterated elimination stops when no bound moves more than this.
    #[arg(long, default_value_t = 1e-12)]
    tol: f64,
    /// Largest number of elimination sweeps.
    #[arg(long, default_value_t = 10_000)]
    max_sweeps: usize,
    /// Power-iteration budget of the spectral bounds (‖M‖₂, ρ(D⁻¹C)); the bounds stay
    /// rigorous with any budget, only less tight. Default: 200, lowered on games of more than
    /// 10^7 non-zeros to about 2·10^9 multiply-adds (at least 20 iterations).
    #[arg(long)]
    power_iterations: Option<usize>,
    /// Largest game for a dense eigendecomposition of (M+Mᵀ)/2.
    #[arg(long, default_value_t = 1000)]
    eigen_limit: usize,
}

/// How many indices the readable report lists before eliding.
const SHOWN_INDICES: usize = 12;

pub fn run(args: Args) -> anyhow::Result<()> {
    let game = PruningGame::read(&args.game)?;
    let mut options = AnalysisOptions::default();
    options.elimination.tolerance = args.tol;
    options.elimination.max_sweeps = args.max_sweeps;
    options.spectral.dense_eigen_limit = args.eigen_limit;
    let work = game.competition().nnz() + game.num_players();
    options.spectral.power_iterations = args
        .power_iterations
        .unwrap_or_else(|| (2_000_000_000 / work.max(1)).clamp(20, 200));
    if let Some(path) = &args.at {
        options.profile = Some(read_participation(path, &game)?);
    }
    let n = game.num_players();
    if n <= args.eigen_limit {
        // The eigendecomposition holds M, (M+Mᵀ)/2 and its eigenvectors: 3 n² doubles.
        let need = (n as f64).powi(2) * 8.0 * 3.0;
        if need > 0.8 * physical_memory().unwrap_or(f64::INFINITY) {
            anyhow::bail!(
                "--eigen-limit {}: a dense eigendecomposition of {n} players needs about {:.1} GB; lower --eigen-limit",
                args.eigen_limit,
                need / 1e9
            );
        }
    }
    let analysis = analyze(&game, &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&analysis)?);
    } else {
        print!("{}", report(&analysis));
    }
    Ok(())
}

/// The `participation` array of an equilibrium file, which must be a profile of `game`: one
/// finite entry per player, inside the strategy box `[0, upper_i]`.
fn read_participation(path: &Path, game: &PruningGame) -> anyhow::Result<Vec<f64>> {
    #[derive(serde::Deserialize)]
    struct Participation {
        participation: Vec<f64>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let parsed: Participation = serde_json::from_str(&text).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let s = parsed.participation;
    if s.len() != game.num_players() {
        anyhow::bail!(
            "{}: participation has {} entries, but the game has {} players",
            path.display(),
            s.len(),
            game.num_players()
        );
    }
    let upper = game.upper_bounds();
    if let Some(i) = (0..s.len()).find(|&i| !(s[i] >= 0.0 && s[i] <= upper[i])) {
        anyhow::bail!(
            "{}: participation[{i}] = {} is outside the strategy box [0, {}]",
            path.display(),
            s[i],
            upper[i]
        );
    }
    Ok(s)
}

fn list(indices: &[usize]) -> String {
    let mut text = indices
        .iter()
        .take(SHOWN_INDICES)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if indices.len() > SHOWN_INDICES {
        let _ = write!(text, ", … ({} more)", indices.len() - SHOWN_INDICES);
    }
    text
}

fn optional(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), num)
}

/// A figure as people read one: six decimals in the everyday range, scientific notation
/// outside it (a game with entries near 1e300 would otherwise print 300-digit numbers), and
/// a plain word where a bound left the range of `f64`.
fn num(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v.is_infinite() {
        format!("{}beyond the f64 range", if v < 0.0 { "-" } else { "" })
    } else if v == 0.0 || (1e-4..1e6).contains(&v.abs()) {
        format!("{v:.6}")
    } else {
        format!("{v:.6e}")
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// The readable report.
fn report(a: &Analysis) -> String {
    let mut out = String::new();
    let n = a.players;
    let _ = writeln!(
        out,
        "game: {n} players, {} competition ({} entries)",
        a.storage, a.competition_entries
    );
    let d = &a.dominance;
    let _ = writeln!(
        out,
        "T3 dominance: {} players ({:.1}%) have zero participation strictly dominant (q_i < 0, or q_i = 0 < a_i)",
        d.dominated.len(),
        percent(d.dominated.len(), n)
    );
    if !d.dominated.is_empty() {
        let _ = writeln!(
            out,
            "  margins -q_i in [{}, {}]; players {}",
            optional(d.min_margin),
            optional(d.max_margin),
            list(&d.dominated)
        );
    }
    let e = &a.elimination;
    let _ = writeln!(
        out,
        "T4 iterated elimination: {} sweeps, {}, last change {:.2e}, bracket gap {:.2e}{}",
        e.sweeps,
        if e.converged {
            "converged"
        } else {
            "budget spent"
        },
        e.last_change,
        e.gap,
        if e.met {
            " — bounds met: the equilibrium is unique and equals the bracket midpoint"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "  provably pruned (U_i = 0): {} ({:.1}%); provably active (L_i > 0): {} ({:.1}%); undecided: {}",
        e.pruned.len(),
        percent(e.pruned.len(), n),
        e.active.len(),
        percent(e.active.len(), n),
        n.saturating_sub(e.pruned.len() + e.active.len())
    );
    let _ = writeln!(
        out,
        "  pruned beyond T3: {}",
        a.provably_pruned.len().saturating_sub(d.dominated.len())
    );
    let u = &a.uniqueness;
    let verdict = match u.verdict {
        Uniqueness::Unique { by } => format!("unique (by {by:?})"),
        Uniqueness::Unknown => "unknown".to_string(),
    };
    let _ = writeln!(out, "T2 uniqueness: {verdict} — {}", u.note);
    let _ = writeln!(
        out,
        "  λ_min((M+Mᵀ)/2) = {}, Gershgorin lower bound = {}, row-dominance margin = {}, ρ(D⁻¹C) ≤ {}",
        optional(u.min_eigenvalue),
        num(u.gershgorin_lower),
        num(u.row_dominance_margin),
        optional(u.jacobi_radius_upper)
    );
    let p = &a.potential;
    if p.exact_potential {
        let _ = writeln!(
            out,
            "T5 potential: C symmetric, exact potential game; Φ = {} at the {}",
            optional(p.value),
            p.at
        );
    } else {
        let _ = writeln!(out, "T5 potential: C not symmetric, no exact potential");
    }
    let c = &a.convergence;
    let _ = writeln!(
        out,
        "T6 convergence: L = ‖M‖₂ ≈ {} (≤ {}), μ = {}",
        num(c.lipschitz_estimate),
        num(c.lipschitz_upper),
        optional(c.strong_monotonicity)
    );
    let _ = writeln!(
        out,
        "  projection τ < {} (safe {}); extragradient τ < {} (safe {})",
        optional(c.projection_step_bound),
        optional(c.projection_step),
        num(c.extragradient_step_bound),
        num(c.extragradient_step)
    );
    let jacobi = match c.jacobi_radius_upper {
        Some(r) if r < 1.0 => "Jacobi best response converges",
        Some(_) => "Jacobi contraction not shown",
        None => "Jacobi undefined (a_i = 0 with competitors)",
    };
    let _ = writeln!(
        out,
        "  ρ(D⁻¹C) ≈ {} (≤ {}), ‖D⁻¹C‖_∞ = {}: {jacobi}",
        optional(c.jacobi_radius),
        optional(c.jacobi_radius_upper),
        optional(c.jacobi_row_sum_bound)
    );
    let _ = writeln!(
        out,
        "provably pruned without solving (T3 ∪ T4): {} of {n} ({:.1}%); analysis took {:.2} s",
        a.provably_pruned.len(),
        percent(a.provably_pruned.len(), n),
        a.seconds
    );
    out
}

/// Total memory of this machine in bytes (`MemTotal` of `/proc/meminfo`), if known.
fn physical_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}
