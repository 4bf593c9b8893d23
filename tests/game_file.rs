//! Game files: exact round trips, every validation error named, no panic on any input.

mod common;

use std::path::Path;

use proptest::prelude::*;
use pruning_game::game::{generate, BenefitSpec, GeneratorConfig, PruningGame, Topology};
use pruning_game::Error;

fn parse(text: &str) -> Result<PruningGame, Error> {
    PruningGame::from_json_str(text, Path::new("game.json"))
}

/// Parses `text`, expects an error, and checks its message contains every fragment.
fn rejects(text: &str, fragments: &[&str]) {
    let message = match parse(text) {
        Ok(_) => panic!("accepted a malformed game: {text}"),
        Err(e) => e.to_string(),
    };
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "message {message:?} does not mention {fragment:?}"
        );
    }
}

const VALID: &str = r#"{"benefit": [1.0, 0.5, -0.2], "self_cost": [1.0, 2.0, 0.0],
    "participation_cost": 0.1, "upper": [1.0, 2.0, 0.5],
    "competition": {"sparse": [[0, 1, 0.3], [2, 0, 0.1]]}}"#;

#[test]
fn a_valid_file_reads_with_defaults_filled_in() {
    let game = parse(VALID).unwrap();
    assert_eq!(game.upper_bounds().as_slice(), &[1.0, 2.0, 0.5]);
    assert_eq!(game.participation_cost().as_slice(), &[0.1, 0.1, 0.1]);
    assert_eq!(game.competition().nnz(), 2);
    let minimal =
        parse(r#"{"benefit": [1.0], "self_cost": [1.0], "participation_cost": [0.0]}"#).unwrap();
    assert_eq!(minimal.upper_bounds().as_slice(), &[1.0]);
    assert_eq!(minimal.competition().nnz(), 0);
}

#[test]
fn every_bad_value_is_named_with_its_field_and_index() {
    let with = |field: &str, value: &str| {
        let mut v: serde_json::Value = serde_json::from_str(VALID).unwrap();
        v[field] = serde_json::from_str(value).unwrap();
        v.to_string()
    };
    rejects(
        &with("self_cost", "[1.0, -2.0, 0.0]"),
        &["self_cost[1]", "-2", "negative"],
    );
    rejects(
        &with("participation_cost", "[0.1, 0.1, -0.5]"),
        &["participation_cost[2]", "negative"],
    );
    rejects(
        &with("participation_cost", "-0.5"),
        &["participation_cost[0]", "negative"],
    );
    rejects(&with("upper", "[1.0, 0.0, 1.0]"), &["upper[1]", "> 0"]);
    rejects(&with("upper", "-1"), &["upper[0]", "> 0"]);
    rejects(
        &with("self_cost", "[1.0, 2.0]"),
        &["self_cost", "expected 3", "got 2"],
    );
    rejects(&with("upper", "[1.0]"), &["upper", "expected 3", "got 1"]);
    rejects(
        &with("competition", r#"{"sparse": [[0, 3, 0.1]]}"#),
        &["entry 0", "(0, 3)", "out of range", "3 players"],
    );
    rejects(
        &with(
            "competition",
            r#"{"sparse": [[0, 1, 0.1], [1, 2, 0.2], [0, 1, 0.3]]}"#,
        ),
        &["entry 2", "(0, 1)", "more than once"],
    );
    rejects(
        &with("competition", r#"{"sparse": [[1, 1, 0.5]]}"#),
        &["competition[1][1]", "diagonal"],
    );
    rejects(
        &with("competition", r#"{"sparse": [[1, 2, -0.5]]}"#),
        &["competition.sparse[0]", "negative"],
    );
    rejects(
        &with(
            "competition",
            r#"{"dense": [[0, 1, 0], [0, 0, 0], [0, 0, 0.2]]}"#,
        ),
        &["competition[2][2]", "diagonal"],
    );
    rejects(
        &with(
            "competition",
            r#"{"dense": [[0, 1, 0], [-1, 0, 0], [0, 0, 0]]}"#,
        ),
        &["competition.dense[1][0]", "negative"],
    );
    rejects(
        &with(
            "competition",
            r#"{"dense": [[0, 1, 0], [0, 0], [0, 0, 0]]}"#,
        ),
        &["competition.dense[1]", "expected 3", "got 2"],
    );
    rejects(
        &with("competition", r#"{"dense": [[0, 1, 0]]}"#),
        &["competition.dense", "expected 3", "got 1"],
    );
    rejects(
        &with("competition", r#"{"banded": []}"#),
        &["competition", "banded"],
    );
    rejects(&with("benefit", "[]"), &["no players"]);
    rejects(
        &with("benefit", r#"[1.0, "x", 2.0]"#),
        &["benefit[1]", "invalid type"],
    );
    rejects(
        &with("participation_cost", r#""cheap""#),
        &["participation_cost", "a number or a list"],
    );
    // JSON has no NaN or infinity; a literal that overflows f64 is refused by the parser.
    rejects(
        &with("benefit", "[1.0, 2.0, 3.0]").replace("3.0", "1e999"),
        &["benefit", "out of range"],
    );
    rejects(
        r#"{"benefit": [1.0], "self_cost": [1.0]}"#,
        &["participation_cost", "missing"],
    );
    rejects(
        r#"{"benefit": [1.0], "self_cost": [1.0], "participation_cost": 0, "colour": 1}"#,
        &["colour", "unknown field"],
    );
    rejects(&VALID[..VALID.len() - 5], &["game.json", "EOF"]);
    rejects(&format!("{VALID} trailing"), &["trailing"]);
}

#[test]
fn non_finite_values_are_refused_by_the_constructor() {
    use nalgebra::DVector;
    use pruning_game::game::Competition;
    let error = PruningGame::with_uniform_cost(
        DVector::from_vec(vec![1.0, f64::NAN]),
        DVector::from_vec(vec![1.0, 1.0]),
        0.0,
        Competition::None,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("benefit[1] is not a finite number"),
        "{error}"
    );
    let error = PruningGame::with_uniform_cost(
        DVector::from_vec(vec![1.0, 1.0]),
        DVector::from_vec(vec![f64::INFINITY, 1.0]),
        0.0,
        Competition::None,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("self_cost[0] is not a finite number"),
        "{error}"
    );
    let error = Competition::sparse(3, &[(0, 1, f64::NAN)]).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("competition.sparse[0] is not a finite number"),
        "{error}"
    );
}

fn any_game() -> impl Strategy<Value = PruningGame> {
    (
        common::game(1..=15),
        proptest::collection::vec(0.01..3.0f64, 15),
        any::<bool>(),
    )
        .prop_map(|(game, values, vary)| {
            if !vary {
                return game;
            }
            // Per-player costs and bounds exercise the vector forms of both fields.
            let n = game.benefit().len();
            let per_player = nalgebra::DVector::from_fn(n, |i, _| values[i]);
            PruningGame::new(
                game.benefit().clone(),
                game.self_cost().clone(),
                per_player.clone(),
                per_player,
                game.competition().clone(),
            )
            .unwrap()
        })
}

proptest! {
    #![proptest_config(common::cases(256))]

    /// Writing and reading back gives the same game, bit for bit.
    #[test]
    fn json_round_trip_preserves_every_field(game in any_game()) {
        let text = game.to_json_string();
        let back = parse(&text).unwrap();
        prop_assert_eq!(&back, &game);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.json");
        game.write_json(&path).unwrap();
        prop_assert_eq!(PruningGame::read_json(&path).unwrap(), game);
    }

    /// Arbitrary text never panics the reader.
    #[test]
    fn random_text_never_panics(text in ".{0,200}") {
        let _ = parse(&text);
    }

    /// Mutations of a valid file (byte edits, truncation, splices) never panic the reader,
    /// and whatever is accepted is a valid game.
    #[test]
    fn mutated_files_never_panic(
        game in common::game(1..=6),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
    ) {
        let mut bytes = game.to_json_string().into_bytes();
        for (at, byte, kind) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(game) = parse(&text) {
            prop_assert!(game.self_cost().iter().all(|a| *a >= 0.0));
            prop_assert!(game.upper_bounds().iter().all(|u| *u > 0.0));
        }
    }
}

#[test]
fn generated_sparse_games_round_trip_through_files() {
    let game = generate(&GeneratorConfig {
        players: 2000,
        seed: 7,
        topology: Topology::Random { degree: 8.0 },
        symmetric: true,
        benefit: BenefitSpec::Normal {
            mean: 0.2,
            std: 0.5,
        },
        ..GeneratorConfig::default()
    })
    .unwrap();
    assert!(
        parse(&game.to_json_string()).unwrap() == game,
        "the game changed on a round trip"
    );
}
