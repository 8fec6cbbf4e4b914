//! `IndexFile::decode` (with a round trip) and `PackHeader::decode` on hostile
//! bytes: never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapguard_format::{IndexFile, PackHeader};

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = IndexFile::decode(data) {
        let bytes = idx.encode();
        let again = IndexFile::decode(&bytes).expect("re-encoded index must decode");
        assert_eq!(again, idx);
    }
    let data_end = data.len() as u64;
    if let Ok(h) = PackHeader::decode(data, data_end) {
        let bytes = h.encode();
        let again =
            PackHeader::decode(&bytes, data_end).expect("re-encoded pack header must decode");
        assert_eq!(again, h);
    }
    // The same bytes against an unbounded pack exercise the layout checks
    // without the size limit.
    let _ = PackHeader::decode(data, u64::MAX);
});
