//! `KeyBundle::decode` on hostile bytes: never panics; anything it accepts
//! round-trips through `encode` to an equal bundle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapguard_crypto::KeyBundle;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = KeyBundle::decode(data) else {
        return;
    };
    let bytes = bundle.encode();
    let again = KeyBundle::decode(&bytes).expect("re-encoded bundle must decode");
    // KeyBundle has no PartialEq (secrets); compare canonical encodings.
    assert_eq!(*again.encode(), *bytes, "bundle changed in a round trip");
    assert!(!bundle.data_keys.is_empty());
    assert!(bundle.data_key(bundle.current_epoch()).is_some());
    let _ = bundle.gear_table();
});
