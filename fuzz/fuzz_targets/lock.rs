//! `LockFile::decode` on hostile bytes: never panics; anything it accepts
//! survives an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapguard_format::LockFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = LockFile::decode(data) {
        let again = LockFile::decode(&v.encode()).expect("re-encoded value must decode");
        assert_eq!(again, v);
    }
});
