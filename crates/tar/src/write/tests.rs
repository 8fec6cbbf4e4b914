//! Writer → reader round trips, truncation, and hostile input.

use crate::{acl, Entry, EntryKind, ErrorKind, Reader, Segment, Time, Writer};
use proptest::prelude::*;

/// An entry with data: (entry, stored data).
fn file(path: &[u8], data: &[u8]) -> (Entry, Vec<u8>) {
    let mut e = Entry::new(path.to_vec(), EntryKind::File);
    e.size = data.len() as u64;
    e.mode = 0o644;
    e.mtime = Time {
        secs: 1_700_000_000,
        nanos: 5,
    };
    (e, data.to_vec())
}

fn varied() -> Vec<(Entry, Vec<u8>)> {
    let mut out = Vec::new();
    let mut d = Entry::new(b"dir".to_vec(), EntryKind::Dir);
    d.mode = 0o1777;
    d.uid = 4_000_000_000;
    d.gid = 3_000_000_000;
    d.uname = b"a-user-name-that-is-longer-than-thirty-two-bytes".to_vec();
    d.gname = "gr\u{fc}ppe".as_bytes().to_vec();
    d.mtime = Time {
        secs: -1_234_567_891,
        nanos: 876_543_211,
    };
    d.atime = Some(Time {
        secs: 4_102_444_800,
        nanos: 999_999_999,
    });
    d.ctime = Some(Time { secs: 0, nanos: 1 });
    d.xattrs = vec![
        (b"user.bin".to_vec(), vec![0, 1, 2, 0xff, b'\n', b'=']),
        (b"user.a=b%c".to_vec(), b"".to_vec()),
    ];
    let access = acl::from_text(
        b"user::rwx\nuser:1234:r-x\ngroup::r--\nmask::rwx\nother::---\n",
        &mut |_| None,
        &mut |_| None,
    )
    .unwrap();
    d.xattrs.push((acl::ACCESS_XATTR.to_vec(), access.clone()));
    d.acl_access = acl::to_text(&access);
    d.acl_default = Some(b"user::rwx\ngroup::r-x\nother::r-x\n".to_vec());
    out.push((d, Vec::new()));
    out.push(file(b"dir/plain", b"hello\n"));
    let long: Vec<u8> = (0..300).map(|i| b'a' + (i % 26) as u8).collect();
    let mut long_path = b"dir/".to_vec();
    long_path.extend_from_slice(&long[..250]);
    out.push(file(&long_path, &[7u8; 1000]));
    out.push(file(b"dir/caf\xe9 \xff\n", b"non-utf8"));
    let (mut big, _) = file(b"dir/empty", b"");
    big.inode = Some(77);
    big.device = Some(5);
    big.nlink = Some(2);
    out.push((big, Vec::new()));
    let mut s = Entry::new(b"dir/symlink".to_vec(), EntryKind::Symlink);
    s.link = long.clone();
    s.mode = 0o777;
    out.push((s, Vec::new()));
    let mut h = Entry::new(b"dir/hard".to_vec(), EntryKind::HardLink);
    h.link = b"dir/plain".to_vec();
    h.mode = 0o644;
    out.push((h, Vec::new()));
    for (name, kind, major, minor) in [
        (&b"dir/char"[..], EntryKind::CharDevice, 1u64, 3u64),
        (b"dir/block", EntryKind::BlockDevice, 4095, 1_048_575),
        (b"dir/huge_dev", EntryKind::CharDevice, 1 << 31, 1 << 40),
    ] {
        let mut e = Entry::new(name.to_vec(), kind);
        e.dev_major = major;
        e.dev_minor = minor;
        e.mode = 0o640;
        out.push((e, Vec::new()));
    }
    let mut f = Entry::new(b"dir/fifo".to_vec(), EntryKind::Fifo);
    f.mode = 0o600;
    out.push((f, Vec::new()));
    // Sparse: two runs and a trailing hole; and a file that is one hole.
    let mut sp = Entry::new(b"dir/sparse".to_vec(), EntryKind::File);
    sp.size = 10 << 20;
    sp.sparse = Some(vec![
        Segment {
            offset: 4096,
            len: 10,
        },
        Segment {
            offset: 1 << 20,
            len: 700,
        },
    ]);
    sp.mode = 0o600;
    out.push((sp, vec![9u8; 710]));
    let mut hole = Entry::new(b"dir/all_hole".to_vec(), EntryKind::File);
    hole.size = 1 << 30;
    hole.sparse = Some(Vec::new());
    out.push((hole, Vec::new()));
    out
}

fn write_all(entries: &[(Entry, Vec<u8>)]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    for (e, data) in entries {
        w.append(e).unwrap();
        // In uneven pieces.
        for piece in data.chunks(333) {
            w.write_data(piece).unwrap();
        }
    }
    w.finish().unwrap()
}

fn read_all(bytes: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, crate::Error> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        let mut data = Vec::new();
        let mut buf = [0u8; 100];
        loop {
            let n = r.read_data(&mut buf)?;
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
        }
        out.push((e, data));
    }
    Ok(out)
}

/// What the reader gives back for what the writer was given: directories gain a trailing
/// slash, sparse files a final empty run.
fn expected(entries: &[(Entry, Vec<u8>)]) -> Vec<(Entry, Vec<u8>)> {
    entries
        .iter()
        .cloned()
        .map(|(mut e, d)| {
            if e.kind == EntryKind::Dir {
                e.path.push(b'/');
            }
            if let Some(segs) = &mut e.sparse {
                if segs.last().is_none_or(|s| s.offset + s.len < e.size) {
                    segs.push(Segment {
                        offset: e.size,
                        len: 0,
                    });
                }
            }
            (e, d)
        })
        .collect()
}

#[test]
fn round_trip_every_kind_and_attribute() {
    let entries = varied();
    let bytes = write_all(&entries);
    assert_eq!(bytes.len() % 10240, 0);
    let back = read_all(&bytes).unwrap();
    let want = expected(&entries);
    assert_eq!(back.len(), want.len());
    for (got, want) in back.iter().zip(&want) {
        assert_eq!(got, want);
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = write_all(&varied());
    // The end-of-archive marker starts after the last entry's data.
    let end = bytes.len() - bytes.iter().rev().take_while(|&&b| b == 0).count();
    let marker = end.div_ceil(512) * 512;
    for cut in (0..marker).step_by(37).chain([marker - 1, 512, 1]) {
        match read_all(&bytes[..cut]) {
            Err(e) => assert!(
                matches!(e.kind, ErrorKind::Truncated(_))
                    || (cut < 512 && matches!(e.kind, ErrorKind::Malformed(_))),
                "cut at {cut}: {e}"
            ),
            Ok(_) => panic!("cut at {cut} of {} read without error", bytes.len()),
        }
    }
    // One zero block is accepted as the end (GNU tar does too).
    assert!(read_all(&bytes[..marker + 512]).is_ok());
}

#[test]
fn errors_name_the_entry() {
    let mut bytes = write_all(&[file(b"some/file.txt", b"abc")]);
    // Damage the main header's size field (after the pax header and its one block of data).
    let main = 1024;
    assert_eq!(&bytes[main..main + 13], b"some/file.txt");
    bytes[main + 124] = b'9';
    let e = read_all(&bytes).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("some/file.txt") && msg.contains("checksum"),
        "{msg}"
    );
    let e = read_all(b"this is not a tar archive at all, just some text").unwrap_err();
    assert!(e.to_string().contains("not a valid tar archive"), "{e}");
    let e = read_all(&[b'x'; 1024]).unwrap_err();
    assert!(e.to_string().contains("not a tar archive"), "{e}");
}

#[test]
fn writer_refuses_wrong_data_length() {
    let mut w = Writer::new(Vec::new());
    let (e, _) = file(b"f", b"abc");
    w.append(&e).unwrap();
    assert!(w.write_data(b"abcd").is_err());
    w.write_data(b"ab").unwrap();
    assert!(w.finish().is_err());
    let mut w = Writer::new(Vec::new());
    assert!(w
        .append(&Entry::new(b"a\0b".to_vec(), EntryKind::Fifo))
        .is_err());
}

#[test]
fn absurd_sizes_are_bounded() {
    // An extended header claiming 1 TiB of records is refused before anything is allocated.
    let mut w = Writer::new(Vec::new());
    let mut e = Entry::new(b"x".to_vec(), EntryKind::Fifo);
    e.xattrs = vec![(b"user.a".to_vec(), b"b".to_vec())];
    w.append(&e).unwrap();
    let mut bytes = w.finish().unwrap();
    bytes[124..136].copy_from_slice(b"17777777777\0");
    let cs = crate::header::checksums(bytes[..512].try_into().unwrap()).0;
    bytes[148..156].copy_from_slice(format!("{cs:06o}\0 ").as_bytes());
    let err = read_all(&bytes).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::TooLarge(_)), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn reader_never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = read_all(&bytes);
    }

    #[test]
    fn reader_never_panics_on_damaged_archives(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = write_all(&varied());
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        let _ = read_all(&bytes);
    }

    #[test]
    fn names_and_times_round_trip(
        path in proptest::collection::vec(1u8..=255, 1..400),
        link in proptest::collection::vec(1u8..=255, 1..300),
        secs in any::<i64>(), nanos in 0u32..1_000_000_000,
        uid in any::<u64>(),
    ) {
        let mut e = Entry::new(path, EntryKind::Symlink);
        e.link = link;
        e.mtime = Time { secs, nanos };
        e.uid = uid;
        let bytes = write_all(&[(e.clone(), Vec::new())]);
        let back = read_all(&bytes).unwrap();
        prop_assert_eq!(&back[0].0, &e);
    }
}
