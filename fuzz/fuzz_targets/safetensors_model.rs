//! Safetensors models and checkpoints: `Model::from_safetensors`, the bytes behind
//! `Model::load`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pruning_game::nn::Model;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = Model::from_safetensors(data, Path::new("fuzz.safetensors")) {
        // Any error is fine (the command line prints it on one line); a panic is not.
        let _ = e.to_string();
    }
});
