//! `SnapshotFile::decode` on hostile bytes: never panics; anything it accepts
//! survives an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapguard_format::SnapshotFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(snap) = SnapshotFile::decode(data) {
        let bytes = snap.encode();
        let again = SnapshotFile::decode(&bytes).expect("re-encoded snapshot must decode");
        assert_eq!(again, snap);
        let _ = snap.display_paths();
    }
});
