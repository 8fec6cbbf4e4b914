//! `Tree::decode` on hostile bytes: never panics; anything it accepts survives
//! an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapguard_format::Tree;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = Tree::decode(data) {
        let bytes = tree.encode();
        let again = Tree::decode(&bytes).expect("re-encoded tree must decode");
        assert_eq!(again, tree);
        assert_eq!(again.encode(), bytes, "encoding is not stable");
    }
});
