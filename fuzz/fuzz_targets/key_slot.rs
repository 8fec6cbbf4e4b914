//! `KeySlot::decode` on hostile bytes: never panics; the decoder is canonical
//! (anything it accepts re-encodes to the same bytes). Argon2 is never run:
//! only key-file slots are unlocked (BLAKE3, fast), which must fail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapguard_crypto::{KeySlot, SlotKind, Unlocker};

const PASSPHRASE: Unlocker<'static> = Unlocker::Passphrase(b"correct horse battery staple");
const KEY_FILE: Unlocker<'static> = Unlocker::KeyFile(b"snapguard fuzz key file");

fuzz_target!(|data: &[u8]| {
    let Ok(slot) = KeySlot::decode(data) else {
        return;
    };
    assert_eq!(slot.encode(), data, "decoder accepted a non-canonical slot");
    let _ = slot.id();
    let _ = slot.kind.name();

    let is_passphrase = matches!(slot.kind, SlotKind::Passphrase { .. });
    assert_eq!(slot.matches(&PASSPHRASE), is_passphrase);
    assert_eq!(slot.matches(&KEY_FILE), !is_passphrase);

    match slot.kind {
        SlotKind::KeyFile { .. } => {
            // Forging the AEAD tag is out of reach for a fuzzer.
            assert!(
                slot.unlock(&KEY_FILE).is_err(),
                "forged key-file slot unlocked"
            );
            assert!(slot.unlock(&PASSPHRASE).is_err());
        }
        // A wrong-kind unlocker is rejected before any KDF runs.
        SlotKind::Passphrase { .. } => assert!(slot.unlock(&KEY_FILE).is_err()),
    }
});
