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

// ---------------------------------------------------------------------------------------
// The binary (safetensors) game file.

/// A safetensors file written by hand — header text and data exactly as given — so that
/// malformed files can be built that no safetensors writer would produce.
fn raw_file(dir: &Path, name: &str, header: &str, data: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A valid three-player sparse game, as (header, data): benefit, self_cost, a scalar
/// participation_cost and CSR arrays with entries (0, 1) = 0.3 and (2, 0) = 0.1.
fn valid_binary() -> (String, Vec<u8>) {
    let mut data = f64_bytes(&[1.0, 0.5, -0.2]); // benefit 0..24
    data.extend(f64_bytes(&[1.0, 2.0, 0.5])); // self_cost 24..48
    data.extend(f64_bytes(&[0.1])); // participation_cost 48..56
    data.extend([0i64, 1, 1, 2].iter().flat_map(|v| v.to_le_bytes())); // indptr 56..88
    data.extend([1i32, 0].iter().flat_map(|v| v.to_le_bytes())); // indices 88..96
    data.extend(f64_bytes(&[0.3, 0.1])); // values 96..112
    let header = r#"{"__metadata__":{"format":"pruning-game","version":"1"},
"benefit":{"dtype":"F64","shape":[3],"data_offsets":[0,24]},
"self_cost":{"dtype":"F64","shape":[3],"data_offsets":[24,48]},
"participation_cost":{"dtype":"F64","shape":[1],"data_offsets":[48,56]},
"indptr":{"dtype":"I64","shape":[4],"data_offsets":[56,88]},
"indices":{"dtype":"I32","shape":[2],"data_offsets":[88,96]},
"values":{"dtype":"F64","shape":[2],"data_offsets":[96,112]}}"#;
    (header.to_string(), data)
}

/// Reads `path`, expects an error, and checks that its message is one line naming the file
/// and every fragment.
fn binary_rejects(path: &Path, fragments: &[&str]) {
    let message = match PruningGame::read(path) {
        Ok(_) => panic!("accepted a malformed binary game: {}", path.display()),
        Err(e) => e.to_string(),
    };
    assert!(!message.contains('\n'), "{message:?} spans lines");
    let file = path.file_name().unwrap().to_string_lossy();
    assert!(message.contains(&*file), "{message:?} does not name {file}");
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "message {message:?} does not mention {fragment:?}"
        );
    }
}

#[test]
fn a_hand_written_binary_file_reads_as_the_json_game() {
    let dir = tempfile::tempdir().unwrap();
    let (header, data) = valid_binary();
    let path = raw_file(dir.path(), "g.safetensors", &header, &data);
    let binary = PruningGame::read(&path).unwrap();
    let json = parse(
        r#"{"benefit": [1.0, 0.5, -0.2], "self_cost": [1.0, 2.0, 0.5],
        "participation_cost": 0.1, "competition": {"sparse": [[0, 1, 0.3], [2, 0, 0.1]]}}"#,
    )
    .unwrap();
    assert_eq!(binary, json);
    // Any other name is sniffed by its first bytes.
    let sniffed = raw_file(dir.path(), "g.game", &header, &data);
    assert_eq!(PruningGame::read(&sniffed).unwrap(), json);
}

#[test]
fn written_binary_files_are_standard_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let game = generate(&GeneratorConfig {
        players: 50,
        topology: Topology::Nearest { k: 4 },
        ..GeneratorConfig::default()
    })
    .unwrap();
    let path = dir.path().join("ring.safetensors");
    game.write(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Read back with the safetensors crate, an implementation independent of ours.
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let shape = |name: &str| file.tensor(name).unwrap().shape().to_vec();
    let dtype = |name: &str| file.tensor(name).unwrap().dtype();
    assert_eq!(shape("benefit"), vec![50]);
    assert_eq!(shape("participation_cost"), vec![1]);
    assert_eq!(shape("indptr"), vec![51]);
    assert_eq!(shape("indices"), vec![200]);
    assert_eq!(dtype("indptr"), safetensors::Dtype::I64);
    assert_eq!(dtype("indices"), safetensors::Dtype::I32);
    assert_eq!(dtype("values"), safetensors::Dtype::F64);
    assert!(
        file.tensor("upper").is_err(),
        "upper = 1 for all is left out"
    );
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = metadata.metadata().clone().unwrap();
    assert_eq!(metadata["format"], "pruning-game");
    let benefit = file.tensor("benefit").unwrap();
    let first = f64::from_le_bytes(benefit.data()[..8].try_into().unwrap());
    assert_eq!(first, game.benefit()[0]);
}

#[test]
fn unsorted_rows_are_sorted_and_zero_diagonals_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (header, mut data) = valid_binary();
    // Row 0 gets columns [1, 0] with values [0.3, 0.0]: an explicit zero on the diagonal
    // listed after its neighbour.
    let header = header
        .replace(
            r#""indices":{"dtype":"I32","shape":[2],"data_offsets":[88,96]}"#,
            r#""indices":{"dtype":"I32","shape":[3],"data_offsets":[88,100]}"#,
        )
        .replace(
            r#""values":{"dtype":"F64","shape":[2],"data_offsets":[96,112]}"#,
            r#""values":{"dtype":"F64","shape":[3],"data_offsets":[100,124]}"#,
        );
    data.truncate(56);
    data.extend([0i64, 2, 2, 3].iter().flat_map(|v| v.to_le_bytes()));
    data.extend([1i32, 0, 0].iter().flat_map(|v| v.to_le_bytes()));
    data.extend(f64_bytes(&[0.3, 0.0, 0.1]));
    let path = raw_file(dir.path(), "unsorted.safetensors", &header, &data);
    let game = PruningGame::read(&path).unwrap();
    let triplets: Vec<_> = game.competition().triplets().collect();
    assert_eq!(triplets, vec![(0, 1, 0.3), (2, 0, 0.1)]);
}

#[test]
fn every_malformed_binary_file_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (header, data) = valid_binary();
    let case = |name: &str, header: &str, data: &[u8], fragments: &[&str]| {
        let path = raw_file(dir.path(), name, header, data);
        binary_rejects(&path, fragments);
    };
    let mut nan = data.clone();
    nan[96..104].copy_from_slice(&f64::NAN.to_le_bytes());
    case(
        "nan.safetensors",
        &header,
        &nan,
        &["values[0]", "not a finite number"],
    );
    let mut negative = data.clone();
    negative[24..32].copy_from_slice(&(-1.0f64).to_le_bytes());
    case(
        "neg.safetensors",
        &header,
        &negative,
        &["self_cost[0]", "negative"],
    );
    case(
        "dtype.safetensors",
        &header.replace(r#""benefit":{"dtype":"F64""#, r#""benefit":{"dtype":"F32""#),
        &data,
        &["benefit", "F32"],
    );
    case(
        "fdtype.safetensors",
        &header.replace(r#""indptr":{"dtype":"I64""#, r#""indptr":{"dtype":"F64""#),
        &data,
        &["indptr", "integer dtype"],
    );
    case(
        "short.safetensors",
        &header.replace(
            r#""self_cost":{"dtype":"F64","shape":[3],"data_offsets":[24,48]}"#,
            r#""self_cost":{"dtype":"F64","shape":[2],"data_offsets":[24,40]}"#,
        ),
        &data,
        &["self_cost", "[2]", "[3]"],
    );
    case(
        "span.safetensors",
        &header.replace(
            r#""shape":[3],"data_offsets":[0,24]"#,
            r#""shape":[4],"data_offsets":[0,24]"#,
        ),
        &data,
        &["benefit", "32 bytes", "span 24"],
    );
    case(
        "huge.safetensors",
        &header.replace(
            r#""shape":[3],"data_offsets":[0,24]"#,
            r#""shape":[4611686018427387904, 4611686018427387904],"data_offsets":[0,24]"#,
        ),
        &data,
        &["benefit", "more than 2^64"],
    );
    case(
        "beyond.safetensors",
        &header.replace("[96,112]", "[96,1000000000000]"),
        &data,
        &["truncated"],
    );
    case("cut.safetensors", &header, &data[..100], &["truncated"]);
    let mut decreasing = data.clone();
    decreasing[64..72].copy_from_slice(&2i64.to_le_bytes());
    case(
        "indptr.safetensors",
        &header,
        &decreasing,
        &["indptr[2]", "below"],
    );
    let mut range = data.clone();
    range[88..92].copy_from_slice(&7i32.to_le_bytes());
    case(
        "range.safetensors",
        &header,
        &range,
        &["indices[0] = 7", "outside"],
    );
    let mut duplicate = data.clone();
    duplicate[72..80].copy_from_slice(&2i64.to_le_bytes()); // row 1 now holds entry 1
    duplicate[92..96].copy_from_slice(&1i32.to_le_bytes()); // (1, 1): diagonal
    case("diag.safetensors", &header, &duplicate, &["diagonal"]);
    case(
        "missing.safetensors",
        &header.replace(r#""participation_cost""#, r#""participation_costs""#),
        &data,
        &["unknown tensor `participation_costs`"],
    );
    case(
        "partial.safetensors",
        &header.replace(r#""indptr""#, r#""upper""#),
        &data,
        &["all three of `indptr`, `indices`, `values`"],
    );
    case(
        "format.safetensors",
        &header.replace(r#""format":"pruning-game""#, r#""format":"pytorch""#),
        &data,
        &["pytorch", "not a pruning-game game"],
    );
    case("json.safetensors", "{not json", &data, &["header"]);
    // A header length far beyond the file: refused before any allocation.
    let path = dir.path().join("length.safetensors");
    let mut bytes = (1u64 << 62).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&path, bytes).unwrap();
    binary_rejects(&path, &["header claims"]);
    let path = dir.path().join("tiny.safetensors");
    std::fs::write(&path, b"{}").unwrap();
    binary_rejects(&path, &["truncated"]);
}

proptest! {
    #![proptest_config(common::cases(64))]

    /// Every game survives a binary round trip bit for bit, sparse, dense or without
    /// competition, and its JSON and binary files read as the same game.
    #[test]
    fn binary_round_trip_is_exact(game in common::game(1..=40)) {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("g.safetensors");
        let json = dir.path().join("g.json");
        game.write(&binary).unwrap();
        game.write(&json).unwrap();
        let back = PruningGame::read(&binary).unwrap();
        prop_assert_eq!(&back, &game);
        prop_assert_eq!(PruningGame::read(&json).unwrap(), back);
    }

    /// No corruption of a valid file — a byte changed anywhere, or the file cut short —
    /// makes the reader panic; every refusal is one line naming the file.
    #[test]
    fn corrupted_binary_files_never_panic(
        position in 0usize..200,
        byte in any::<u8>(),
        cut in proptest::option::of(0usize..200),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (header, data) = valid_binary();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&data);
        let position = position * bytes.len() / 200;
        bytes[position] = byte;
        if let Some(cut) = cut {
            bytes.truncate(cut * bytes.len() / 200);
        }
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = PruningGame::read(&path) {
            let message = e.to_string();
            prop_assert!(!message.contains('\n'));
            prop_assert!(message.contains("bad.safetensors"), "{}", message);
        }
    }
}
