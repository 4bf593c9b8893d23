//! IDX loading: valid folders (raw and gzip), and every malformed input gives a typed error
//! naming the file.

use std::io::Write;
use std::path::Path;

use pruning_game::nn::data::{idx, load_idx_dir, teacher_student, DataSource, TeacherConfig};
use pruning_game::nn::InputSpec;
use pruning_game::Error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("in-memory write");
    e.finish().expect("in-memory gzip")
}

fn write_set(dir: &Path, n: u32, compress: bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let img: Vec<u8> = (0..n * 16).map(|_| rng.random()).collect();
    let lab: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (stem, bytes) in [
        ("train-images-idx3-ubyte", idx_bytes(&[n, 4, 4], &img)),
        ("train-labels-idx1-ubyte", idx_bytes(&[n], &lab)),
        ("t10k-images-idx3-ubyte", idx_bytes(&[n, 4, 4], &img)),
        ("t10k-labels-idx1-ubyte", idx_bytes(&[n], &lab)),
    ] {
        if compress {
            std::fs::write(dir.join(format!("{stem}.gz")), gzip(&bytes)).expect("write");
        } else {
            std::fs::write(dir.join(stem), bytes).expect("write");
        }
    }
}

#[test]
fn nn_loads_raw_and_gzip_folders_identically() {
    let raw = tempfile::tempdir().expect("tempdir");
    let gz = tempfile::tempdir().expect("tempdir");
    write_set(raw.path(), 12, false);
    write_set(gz.path(), 12, true);
    let spec = InputSpec {
        shape: vec![1, 4, 4],
        scale: 1.0 / 255.0,
        mean: 0.5,
        std: 0.5,
    };
    let (a, at) = load_idx_dir(raw.path(), &spec).expect("raw");
    let (b, _) = load_idx_dir(gz.path(), &spec).expect("gzip");
    assert_eq!(a.inputs(), b.inputs());
    assert_eq!(a.labels(), b.labels());
    assert_eq!(a.len(), 12);
    assert_eq!(at.len(), 12);
    assert_eq!(a.shape(), &[1, 4, 4]);
    assert!(matches!(a.source(), DataSource::Idx { split, .. } if split == "train"));
    assert!(a.inputs().iter().all(|v| (-1.0..=1.0).contains(v)));
}

fn read_err(bytes: &[u8], ndims: u8) -> Error {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("file.idx");
    std::fs::write(&p, bytes).expect("write");
    let e = idx::read_idx(&p, ndims).expect_err("malformed input must fail");
    assert!(
        e.to_string().contains("file.idx"),
        "error must name the file: {e}"
    );
    e
}

#[test]
fn nn_malformed_idx_files_are_typed_errors() {
    let good = idx_bytes(&[3, 2, 2], &[7; 12]);
    assert!(matches!(
        read_err(&good[..good.len() - 3], 3),
        Error::Truncated {
            expected: 28,
            got: 25,
            ..
        }
    ));
    assert!(matches!(
        read_err(&gzip(&good[..good.len() - 3]), 3),
        Error::Truncated { .. }
    ));
    assert!(matches!(read_err(&good[..6], 3), Error::Truncated { .. }));
    assert!(matches!(
        read_err(&good, 1),
        Error::IdxMagic {
            expected: 0x801,
            got: 0x803,
            ..
        }
    ));
    let mut float_type = good.clone();
    float_type[2] = 0x0d;
    assert!(matches!(read_err(&float_type, 3), Error::IdxMagic { .. }));
    let mut extra = good.clone();
    extra.extend_from_slice(&[1, 2]);
    assert!(matches!(read_err(&extra, 3), Error::DataFormat { .. }));
    assert!(matches!(
        read_err(&idx_bytes(&[0, 2, 2], &[]), 3),
        Error::DataFormat { .. }
    ));
    // A gzip header followed by garbage.
    assert!(matches!(
        read_err(&[0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6], 3),
        Error::DataFormat { .. }
    ));
    // Random bytes never panic.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for len in [0usize, 3, 17, 1000] {
        let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        read_err(&junk, 3);
    }
}

#[test]
fn nn_mismatched_label_counts_and_bad_labels_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_set(dir.path(), 5, false);
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        idx_bytes(&[4], &[0, 1, 2, 3]),
    )
    .expect("write");
    let e = load_idx_dir(dir.path(), &InputSpec::fashion_mnist()).expect_err("count mismatch");
    assert!(matches!(e, Error::DataFormat { .. }), "{e}");
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        idx_bytes(&[5], &[0, 1, 2, 3, 12]),
    )
    .expect("write");
    let e = load_idx_dir(dir.path(), &InputSpec::fashion_mnist()).expect_err("bad label");
    assert!(matches!(e, Error::DataFormat { .. }), "{e}");
    let empty = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        load_idx_dir(empty.path(), &InputSpec::fashion_mnist()),
        Err(Error::Io { .. })
    ));
}

#[test]
fn nn_teacher_student_is_seeded_and_records_width() {
    let cfg = TeacherConfig {
        train: 500,
        test: 100,
        ..TeacherConfig::default()
    };
    let (a, _) = teacher_student(&cfg).expect("task");
    let (b, _) = teacher_student(&cfg).expect("task");
    assert_eq!(a, b);
    let (c, _) = teacher_student(&TeacherConfig {
        seed: cfg.seed + 1,
        ..cfg
    })
    .expect("task");
    assert_ne!(a.inputs(), c.inputs());
    assert!(matches!(a.source(), DataSource::TeacherStudent(t) if t.width == cfg.width));
    // Every class occurs (the teacher is not degenerate).
    for k in 0..cfg.classes as u32 {
        assert!(a.labels().contains(&k), "class {k} missing");
    }
    assert!(teacher_student(&TeacherConfig { classes: 1, ..cfg }).is_err());
}

/// A gzip stream of `bytes`, written to `dir/name`.
fn write_gz(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, gzip(bytes)).expect("write");
    p
}

#[test]
fn nn_absurd_idx_sizes_are_refused_from_the_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 4096 × 4096 images: a valid file, but one no network here should be built on.
    let mut big = idx_bytes(&[1, 4096, 4096], &[]);
    big.resize(big.len() + 4096 * 4096, 0);
    let p = dir.path().join("big-images.idx");
    std::fs::write(&p, &big).expect("write");
    // (Not `expect_err`: an accepted file would print 16 MiB of pixels.)
    let Err(e) = idx::read_images(&p) else {
        panic!("4096 × 4096 images were accepted")
    };
    let text = e.to_string();
    assert!(matches!(e, Error::TooLarge { .. }), "{text}");
    assert!(
        text.contains("big-images.idx") && text.contains("rows × cols"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1);

    // A label header claiming 2^32 − 1 items, gzip and raw: refused from the header, before
    // any data is read (the raw file is 8 bytes long).
    let claim = idx_bytes(&[u32::MAX], &[]);
    for p in [write_gz(dir.path(), "claim-labels.gz", &claim), {
        let p = dir.path().join("claim-labels");
        std::fs::write(&p, &claim).expect("write");
        p
    }] {
        let e = idx::read_labels(&p).expect_err("huge claim");
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("dimensions"), "{e}");
    }
    // Images claiming 10^12 pixels in total (2^20 images of 1000 × 1000).
    let claim = idx_bytes(&[1 << 20, 1000, 1000], &[]);
    let e = idx::read_images(&write_gz(dir.path(), "many.gz", &claim)).expect_err("10^12");
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");

    // A gzip bomb: the header claims 16 labels, the stream inflates to 64 MiB of zeros. It is
    // refused after inflating the 16 bytes and one more, not the whole stream.
    let mut bomb = idx_bytes(&[16], &[]);
    bomb.resize(bomb.len() + (64 << 20), 0);
    let p = write_gz(dir.path(), "bomb.gz", &bomb);
    let start = std::time::Instant::now();
    let e = idx::read_labels(&p).expect_err("bomb");
    assert!(matches!(e, Error::DataFormat { .. }), "{e}");
    assert!(e.to_string().contains("runs past"), "{e}");
    assert!(
        start.elapsed() < std::time::Duration::from_millis(500),
        "the whole bomb was inflated ({:?})",
        start.elapsed()
    );
}

#[test]
fn nn_absurd_teacher_sizes_are_errors_not_aborts() {
    for (cfg, field) in [
        (
            TeacherConfig {
                train: 1_000_000_000_000,
                ..TeacherConfig::default()
            },
            "train",
        ),
        (
            TeacherConfig {
                width: 1_000_000_000,
                ..TeacherConfig::default()
            },
            "width",
        ),
    ] {
        let e = teacher_student(&cfg).expect_err("absurd size");
        assert!(e.to_string().contains(field), "{e}");
    }
}

/// Fingerprint of the default teacher–student data set (see the test below).
const FP_TEACHER: u64 = 0xa7ab_12fe_087c_8cc9;

/// The teacher–student data set, pinned: its labels come from a random MLP teacher, so a
/// change in how the teacher is drawn or evaluated changes this FNV-1a hash of the inputs'
/// bits and the labels (train, then test). The value was printed by this hash for
/// commit 3bb2937, whose teacher was the sequential `Model::mlp`.
#[test]
fn the_teacher_data_set_is_pinned() {
    let (train, test) = teacher_student(&TeacherConfig::default()).expect("task");
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    };
    for d in [&train, &test] {
        for v in d.inputs() {
            eat(&v.to_bits().to_le_bytes());
        }
        for l in d.labels() {
            eat(&l.to_le_bytes());
        }
    }
    assert_eq!(h, FP_TEACHER, "fingerprint {h:#018x}");
}
