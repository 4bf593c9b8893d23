//! Sweep files, TOML and JSON: parsing and checking must return `Ok` or a one-line `Err`,
//! never panic, abort or allocate what the file merely claims (a `steps` of 10^12, 10^12
//! players).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pruning_game::sim::SweepConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for result in [
        SweepConfig::from_toml_str(text, Path::new("fuzz.toml")),
        SweepConfig::from_json_str(text, Path::new("fuzz.json")),
    ] {
        match result {
            // A checked sweep is small enough to hash and count.
            Ok(config) => {
                let _ = config.hash();
                assert!(config.grid.players.len() > 0);
            }
            Err(e) => assert!(!e.to_string().contains('\n'), "two-line error: {e}"),
        }
    }
});
