//! Framing around sealed objects: the envelope of snapshot and index files, and the pack trailer.
//!
//! Envelope (44 bytes, then the sealed payload):
//! `"SGOBJ" | kind u8 | envelope version u8 | cipher u8 | key epoch u32 LE | salt [32]`.
//! Pack: `"SGPACK\0\x01"` | sealed blobs … | sealed header | trailer (12 bytes):
//! `header length u32 LE | key epoch u32 LE | cipher u8 | "SGP"`.

use crate::config::arr;
use crate::FormatError;

pub const ENVELOPE_MAGIC: &[u8; 5] = b"SGOBJ";
pub const ENVELOPE_HEADER_LEN: usize = 44;
const ENVELOPE_VERSION: u8 = 1;
pub const PACK_MAGIC: &[u8; 8] = b"SGPACK\0\x01";
pub const PACK_TRAILER_LEN: usize = 12;
const PACK_TRAILER_MAGIC: &[u8; 3] = b"SGP";

/// Which kind of object an envelope holds (bound into its associated data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Snapshot,
    Index,
    Lock,
    Annotation,
}

impl ObjectKind {
    pub fn code(self) -> u8 {
        match self {
            ObjectKind::Snapshot => 1,
            ObjectKind::Index => 2,
            ObjectKind::Lock => 3,
            ObjectKind::Annotation => 4,
        }
    }
    fn from_code(c: u8) -> Option<ObjectKind> {
        match c {
            1 => Some(ObjectKind::Snapshot),
            2 => Some(ObjectKind::Index),
            3 => Some(ObjectKind::Lock),
            4 => Some(ObjectKind::Annotation),
            _ => None,
        }
    }
}

/// The plaintext header of a sealed file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    pub kind: ObjectKind,
    pub cipher_code: u8,
    pub epoch: u32,
    pub salt: [u8; 32],
}

impl EnvelopeHeader {
    pub fn encode(&self) -> [u8; ENVELOPE_HEADER_LEN] {
        let mut out = [0u8; ENVELOPE_HEADER_LEN];
        out[..5].copy_from_slice(ENVELOPE_MAGIC);
        out[5] = self.kind.code();
        out[6] = ENVELOPE_VERSION;
        out[7] = self.cipher_code;
        out[8..12].copy_from_slice(&self.epoch.to_le_bytes());
        out[12..44].copy_from_slice(&self.salt);
        out
    }

    /// Split a sealed file into its header, the header bytes and the sealed payload.
    pub fn parse(bytes: &[u8]) -> Result<(EnvelopeHeader, &[u8], &[u8]), FormatError> {
        let bad = |detail: String| FormatError::Malformed {
            what: "sealed object",
            detail,
        };
        if bytes.len() < ENVELOPE_HEADER_LEN + 16 {
            return Err(bad(format!("only {} bytes", bytes.len())));
        }
        if &bytes[..5] != ENVELOPE_MAGIC {
            return Err(bad("bad magic".into()));
        }
        let kind = ObjectKind::from_code(bytes[5])
            .ok_or_else(|| bad(format!("unknown object kind {}", bytes[5])))?;
        if bytes[6] != ENVELOPE_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "sealed object",
                version: u32::from(bytes[6]),
            });
        }
        let header = EnvelopeHeader {
            kind,
            cipher_code: bytes[7],
            epoch: u32::from_le_bytes(arr(&bytes[8..12])),
            salt: arr(&bytes[12..44]),
        };
        let (head, body) = bytes.split_at(ENVELOPE_HEADER_LEN);
        Ok((header, head, body))
    }
}

/// The fixed-size trailer at the end of every pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackTrailer {
    pub header_len: u32,
    pub epoch: u32,
    pub cipher_code: u8,
}

impl PackTrailer {
    pub fn encode(&self) -> [u8; PACK_TRAILER_LEN] {
        let mut out = [0u8; PACK_TRAILER_LEN];
        out[..4].copy_from_slice(&self.header_len.to_le_bytes());
        out[4..8].copy_from_slice(&self.epoch.to_le_bytes());
        out[8] = self.cipher_code;
        out[9..].copy_from_slice(PACK_TRAILER_MAGIC);
        out
    }

    /// Parse the trailer from the last bytes of a pack of `pack_len` bytes; returns the trailer
    /// and the offset where the sealed header starts.
    pub fn parse(tail: &[u8], pack_len: u64) -> Result<(PackTrailer, u64), FormatError> {
        let bad = |detail: String| FormatError::Malformed {
            what: "pack trailer",
            detail,
        };
        if tail.len() != PACK_TRAILER_LEN || &tail[9..] != PACK_TRAILER_MAGIC {
            return Err(bad("missing trailer (pack truncated?)".into()));
        }
        let t = PackTrailer {
            header_len: u32::from_le_bytes(arr(&tail[..4])),
            epoch: u32::from_le_bytes(arr(&tail[4..8])),
            cipher_code: tail[8],
        };
        let min = (PACK_MAGIC.len() + PACK_TRAILER_LEN) as u64 + u64::from(t.header_len);
        if pack_len < min || t.header_len < 16 {
            return Err(bad(format!(
                "header length {} does not fit a pack of {pack_len} bytes",
                t.header_len
            )));
        }
        Ok((
            t,
            pack_len - PACK_TRAILER_LEN as u64 - u64::from(t.header_len),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn envelope_round_trip(kind in 1u8..=4, cipher in any::<u8>(), epoch in any::<u32>(), salt in any::<[u8; 32]>(),
                               body in proptest::collection::vec(any::<u8>(), 16..64)) {
            let h = EnvelopeHeader { kind: ObjectKind::from_code(kind).unwrap_or(ObjectKind::Index), cipher_code: cipher, epoch, salt };
            let mut bytes = h.encode().to_vec();
            bytes.extend_from_slice(&body);
            let (h2, head, b2) = EnvelopeHeader::parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(h2, h);
            prop_assert_eq!(head.len(), ENVELOPE_HEADER_LEN);
            prop_assert_eq!(b2, &body[..]);
        }

        #[test]
        fn trailer_round_trip(len in 16u32..1 << 20, epoch in any::<u32>(), cipher in any::<u8>(), extra in 0u64..1000) {
            let t = PackTrailer { header_len: len, epoch, cipher_code: cipher };
            let pack_len = 20 + u64::from(len) + extra;
            let (t2, start) = PackTrailer::parse(&t.encode(), pack_len).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(t2, t);
            prop_assert_eq!(start, 8 + extra);
        }

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100), len in any::<u64>()) {
            let _ = EnvelopeHeader::parse(&bytes);
            let _ = PackTrailer::parse(&bytes, len);
        }
    }
}
