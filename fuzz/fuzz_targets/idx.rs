//! IDX bytes, raw or gzip: the first byte picks the number of dimensions (labels 1, images
//! 3, or anything else), the rest is the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pruning_game::nn::data::idx::parse_idx_maybe_gzip;

fuzz_target!(|data: &[u8]| {
    let Some((&ndims, bytes)) = data.split_first() else {
        return;
    };
    let ndims = ndims % 5;
    match parse_idx_maybe_gzip(bytes, ndims, Path::new("fuzz.idx")) {
        Ok(array) => {
            let count: usize = array.dims.iter().product();
            assert_eq!(array.data.len(), count);
            assert_eq!(array.dims.len(), ndims as usize);
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "two-line error: {e}"),
    }
});
