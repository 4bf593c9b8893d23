//! `prune --set KEY=VALUE` overrides (`PruneConfig::with_overrides`), one per input line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pruning_game::prune::PruneConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let overrides: Vec<String> = text.lines().map(str::to_owned).collect();
    if let Err(e) = PruneConfig::default().with_overrides(&overrides) {
        // Any error is fine (the command line prints it on one line); a panic is not.
        let _ = e.to_string();
    }
});
