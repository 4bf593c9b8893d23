//! JSON game files: parse and validate only (`PruningGame::from_json_str`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pruning_game::game::PruningGame;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = PruningGame::from_json_str(text, Path::new("fuzz.json")) {
        // Any error is fine (the command line prints it on one line); a panic is not.
        let _ = e.to_string();
    }
});
