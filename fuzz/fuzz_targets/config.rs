//! `ConfigHeader::parse` and, on the bytes after the header, `ConfigFile::decode`:
//! never panic; accepted values round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapguard_format::{ConfigFile, ConfigHeader};

fuzz_target!(|data: &[u8]| {
    let body = match ConfigHeader::parse(data) {
        Ok((header, head, body)) => {
            assert_eq!(header.encode(), head, "header bytes do not re-encode");
            assert_eq!(head.len() + body.len(), data.len());
            body
        }
        // Still exercise the body decoder on inputs without a valid header.
        Err(_) => data,
    };
    if let Ok(cfg) = ConfigFile::decode(body) {
        let again = ConfigFile::decode(&cfg.encode()).expect("re-encoded config must decode");
        assert_eq!(again, cfg);
    }
});
