//! The tar reader of `snapguard import tar` on hostile bytes: never panics, never allocates
//! what the archive merely claims (small limits make the limit paths reachable), and every name
//! it yields is either refused or reduced to safe components.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapguard_tar::{acl, name, EntryKind, Limits, Reader};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_header: 64 << 10,
        max_segments: 1024,
    };
    let mut r = Reader::with_limits(data, limits);
    let mut buf = [0u8; 4096];
    for _ in 0..10_000 {
        let entry = match r.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) if matches!(e.kind, snapguard_tar::ErrorKind::Unsupported(_)) => continue,
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        };
        for n in [&entry.path, &entry.link] {
            if let Ok(c) = name::components(n) {
                for p in &c.parts {
                    assert!(name_is_safe(p), "unsafe component {p:?}");
                }
            }
        }
        for text in [&entry.acl_access, &entry.acl_default]
            .into_iter()
            .flatten()
        {
            if let Ok(bin) = acl::from_text(text, &mut |_| Some(1), &mut |_| Some(2)) {
                assert!(
                    acl::to_text(&bin).is_some(),
                    "an ACL built from text must be valid"
                );
            }
        }
        for (_, v) in &entry.xattrs {
            let _ = acl::to_text(v);
        }
        if let Some(segs) = &entry.sparse {
            let mut end = 0u64;
            for s in segs {
                assert!(s.offset >= end && s.offset + s.len <= entry.size);
                end = s.offset + s.len;
            }
        }
        // Read the data; the total must be what the entry says it stores.
        let mut total = 0u64;
        loop {
            match r.read_data(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(_) => return,
            }
        }
        if entry.kind == EntryKind::File {
            assert_eq!(total, entry.stored_size());
        }
    }
});

fn name_is_safe(p: &[u8]) -> bool {
    !p.is_empty() && p != b"." && p != b".." && !p.contains(&b'/') && !p.contains(&0)
}
