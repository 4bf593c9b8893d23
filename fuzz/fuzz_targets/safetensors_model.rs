//! Model files and checkpoints: `Graph::from_safetensors`, the bytes behind `Graph::load`
//! (the graph layout and the sequential one).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pruning_game::nn::graph::Graph;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = Graph::from_safetensors(data, Path::new("fuzz.safetensors")) {
        // Any error is fine (the command line prints it on one line); a panic is not.
        let _ = e.to_string();
    }
});
