//! `EnvelopeHeader::parse` on a whole sealed file and `PackTrailer::parse` on
//! its last 12 bytes: never panic; accepted values are consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapguard_format::{EnvelopeHeader, PackTrailer, ENVELOPE_HEADER_LEN, PACK_TRAILER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok((header, head, body)) = EnvelopeHeader::parse(data) {
        assert_eq!(head.len(), ENVELOPE_HEADER_LEN);
        assert_eq!(
            &header.encode()[..],
            head,
            "envelope header does not re-encode"
        );
        assert_eq!(head.len() + body.len(), data.len());
    }

    let pack_len = data.len() as u64;
    let tail = &data[data.len().saturating_sub(PACK_TRAILER_LEN)..];
    if let Ok((trailer, header_start)) = PackTrailer::parse(tail, pack_len) {
        assert_eq!(
            &trailer.encode()[..],
            tail,
            "pack trailer does not re-encode"
        );
        assert!(header_start <= pack_len);
        assert_eq!(
            header_start + u64::from(trailer.header_len) + PACK_TRAILER_LEN as u64,
            pack_len
        );
    }
    // The trailer parser also takes a length that need not match the input.
    if data.len() >= PACK_TRAILER_LEN + 8 {
        let (len, rest) = data.split_at(8);
        let mut l = [0u8; 8];
        l.copy_from_slice(len);
        let _ = PackTrailer::parse(&rest[..PACK_TRAILER_LEN], u64::from_le_bytes(l));
    }
});
