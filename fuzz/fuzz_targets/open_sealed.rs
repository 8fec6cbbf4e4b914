//! `SealKey::open` with a fixed key on hostile bytes, for both ciphers: never
//! panics and never authenticates random input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapguard_crypto::{counter_nonce, Cipher, Key32, SealKey, TAG_LEN};

fuzz_target!(|data: &[u8]| {
    for cipher in Cipher::ALL {
        let key = SealKey::new(cipher, Key32::from_bytes([7u8; 32]));
        let result = key.open(&counter_nonce(0), b"aad", data);
        assert!(result.is_err(), "{cipher}: random input authenticated");
        // A genuine seal of the same bytes opens to them.
        if data.len() <= 4096 {
            let sealed = key.seal(&counter_nonce(0), b"aad", data);
            assert_eq!(sealed.len(), data.len() + TAG_LEN);
            let opened = key
                .open(&counter_nonce(0), b"aad", &sealed)
                .expect("own seal must open");
            assert_eq!(opened, data);
        }
    }
});
