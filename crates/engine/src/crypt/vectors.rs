//! Repository object test vectors: a known key bundle and plaintext give exactly these bytes.
//! The same values are listed in docs/design/repository-format.md; if this test fails, the
//! on-disk format changed and needs a new version number.

use super::*;
use crate::pack::{self, PackWriter};
use snapguard_crypto::Key32;

fn key(start: u8) -> Key32 {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = start.wrapping_add(i as u8);
    }
    Key32::from_bytes(k)
}

fn crypt(cipher: Cipher) -> Crypt {
    let bundle = KeyBundle {
        id_key: key(0x00),
        chunker_key: key(0x20),
        data_keys: vec![(0, key(0x40))],
        sensitive_key: None,
    };
    Crypt::new(bundle, cipher)
}

const PLAINTEXT: &[u8] = b"SnapGuard object vector";

/// (cipher, blob id, pack bytes, snapshot-envelope bytes)
const EXPECTED: [(Cipher, &str, &str, &str); 2] = [
    (
        Cipher::Aes256Gcm,
        "1a5b763a8b7aa04a44e0669b2af3318967b44c890cb09ff9c912a345cfcd5e6b",
        "53475041434b0001565a675099e4c66412ad9f7e41fde51a227af5dc067907d14940d1cf1a85b58d1886738824d4a421d400dc868c1e769f73581f65bc72d7679b83c4638de5788554e7e2600a3ec404dc9fed4d564c73cd4a10f4109bc320f20a8550fa561589380000000000000001534750",
        "53474f424a0101010000000080808080808080808080808080808080808080808080808080808080808080802da7c18bb19dd2749d1a6e8568a596dffd1a0b6a594ae6389dabb4e39a85ffda600d1b94bc10ccce56d1cdcb17c0b05a",
    ),
    (
        Cipher::ChaCha20Poly1305,
        "1a5b763a8b7aa04a44e0669b2af3318967b44c890cb09ff9c912a345cfcd5e6b",
        "53475041434b000107282dd97e6a4516cb085acb32e0e68c3155e3105455a16856e58ec0dcad85c6155d7d09d0adf76d3b3ec05e727cf101ee58323352e14d1c9990693f8ffa86b26fd262a29517c6172b30f8dfc7e49b6316fd0ed7f3d74ea0e38936b2b03fe1380000000000000002534750",
        "53474f424a010102000000008080808080808080808080808080808080808080808080808080808080808080b4c80ce39839dedb6c6eda9fcd9ca56aaa605078b9ea882d57f3871f79feab26e1494ebc5769bdfdc3ac79a32e08f848",
    ),
];

fn compute(cipher: Cipher) -> (String, String, String) {
    let c = crypt(cipher);
    let id = BlobId(c.id_of(PLAINTEXT));
    let mut w = PackWriter::with_id(&c, PackId([0x60; 32])).expect("pack writer");
    w.add(id, BlobType::Data, PLAINTEXT, 3).expect("add");
    let packed = w.finish_with_padding(0);
    // The pack must open again with the same keys.
    let blobs = pack::read_header(&c, &packed.id, &packed.bytes).expect("header");
    let key = c.pack_key(&packed.id, 0, cipher).expect("key");
    let b = blobs[0];
    let sealed = &packed.bytes[b.offset as usize..(b.offset + b.length) as usize];
    assert_eq!(
        c.open_blob(&packed.id, &key, &b, sealed).expect("open"),
        PLAINTEXT
    );
    let (oid, env) = c
        .seal_object_with_salt(ObjectKind::Snapshot, PLAINTEXT, [0x80; 32])
        .expect("seal");
    assert_eq!(
        c.open_object(ObjectKind::Snapshot, &oid, &env, "vector")
            .expect("open object"),
        PLAINTEXT
    );
    (id.to_hex(), hex::encode(&packed.bytes), hex::encode(env))
}

#[test]
fn object_vectors() {
    let got: Vec<_> = EXPECTED.iter().map(|e| compute(e.0)).collect();
    for ((cipher, _, _, _), (id, pack, env)) in EXPECTED.iter().zip(&got) {
        println!(
            "{}: blob id {id}\n  pack {pack}\n  snapshot envelope {env}",
            cipher.name()
        );
    }
    for ((cipher, want_id, want_pack, want_env), (id, pack, env)) in EXPECTED.into_iter().zip(got) {
        assert_eq!(id, want_id, "{}", cipher.name());
        assert_eq!(pack, want_pack, "{}", cipher.name());
        assert_eq!(env, want_env, "{}", cipher.name());
    }
}
