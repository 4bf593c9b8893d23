//! Training graphs: a BN-CNN and a ResNet learn a small image task, runs are reproducible
//! from the seed, and augmentation draws from that seed.

use pruning_game::nn::data::{DataSource, Dataset};
use pruning_game::nn::graph::train::{evaluate, fit, FitConfig};
use pruning_game::nn::graph::Graph;
use pruning_game::nn::{InputSpec, OptimizerConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Images of a bright bar: class 0 horizontal, 1 vertical, 2 diagonal, at random places and
/// with noise, so a translation-invariant network must learn shapes, not pixels.
fn bars(n: usize, seed: u64) -> Dataset {
    let (h, w) = (12, 12);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = vec![0.0f32; n * h * w];
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let class = rng.random_range(0..3u32);
        let (r, c) = (rng.random_range(2..h - 2), rng.random_range(2..w - 2));
        let img = &mut x[i * h * w..(i + 1) * h * w];
        for v in img.iter_mut() {
            *v = rng.random_range(-0.3..0.3);
        }
        for k in 0..5 {
            let (yy, xx) = match class {
                0 => (r, c + k - 2),
                1 => (r + k - 2, c),
                _ => (r + k - 2, c + k - 2),
            };
            img[yy * w + xx] += 2.0;
        }
        y.push(class);
    }
    let source = DataSource::Idx {
        dir: "bars".into(),
        split: "generated".into(),
    };
    Dataset::new(
        x,
        y,
        vec![1, h, w],
        3,
        InputSpec::identity(vec![1, h, w]),
        source,
    )
    .unwrap()
}

fn config(epochs: usize, seed: u64) -> FitConfig {
    FitConfig {
        epochs,
        batch_size: 32,
        optimizer: OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 5e-4,
        },
        crop_padding: 1,
        seed,
        ..FitConfig::default()
    }
}

#[test]
fn bn_cnn_and_resnet_learn_and_runs_repeat_from_their_seed() {
    let (train, test) = (bars(768, 1), bars(300, 2));
    for make in [
        |s| Graph::bn_cnn(InputSpec::identity(vec![1, 12, 12]), &[8, 16], 3, s),
        |s| Graph::resnet(8, InputSpec::identity(vec![1, 12, 12]), 3, s),
    ] {
        let mut g = make(3).unwrap();
        let before = evaluate(&g, &test, 100).unwrap();
        let history = fit(&mut g, &train, &test, &config(4, 7), |_, _| Ok(())).unwrap();
        let after = history.last().unwrap().test;
        assert!(
            after.accuracy() > 0.9 && before.accuracy() < 0.6,
            "accuracy {} before, {} after",
            before.accuracy(),
            after.accuracy()
        );
        // The same seed gives the same network; another seed another one.
        let mut again = make(3).unwrap();
        fit(&mut again, &train, &test, &config(4, 7), |_, _| Ok(())).unwrap();
        assert_eq!(again.params(), g.params());
        let mut other = make(3).unwrap();
        fit(&mut other, &train, &test, &config(1, 8), |_, _| Ok(())).unwrap();
        let mut same_start = make(3).unwrap();
        fit(&mut same_start, &train, &test, &config(1, 7), |_, _| Ok(())).unwrap();
        assert_ne!(other.params(), same_start.params());
    }
}

#[test]
fn fit_refuses_data_of_another_shape_and_bad_settings() {
    let (train, test) = (bars(64, 1), bars(32, 2));
    let mut g = Graph::resnet(8, InputSpec::identity(vec![1, 10, 10]), 3, 1).unwrap();
    let e = fit(&mut g, &train, &test, &config(1, 1), |_, _| Ok(())).unwrap_err();
    assert!(e.to_string().contains("144 values"), "{e}");
    let mut g = Graph::resnet(8, InputSpec::identity(vec![1, 12, 12]), 3, 1).unwrap();
    let mut bad = config(1, 1);
    bad.batch_size = 0;
    let e = fit(&mut g, &train, &test, &bad, |_, _| Ok(())).unwrap_err();
    assert!(e.to_string().contains("batch_size"), "{e}");
}
