//! Copying a regular file's contents, for live-mode commit ([`crate::live`]) and undo
//! ([`crate::undo`]): one reflink (`FICLONE`) where source and destination share a filesystem
//! that can share extents (btrfs, XFS), else each data range found with
//! `SEEK_DATA`/`SEEK_HOLE` through `copy_file_range` (or plain reads and writes where the kernel
//! cannot), so that holes stay holes.
//!
//! Only the bytes: opening the files and their metadata are the callers' business. A source
//! that turns out shorter than the size given is an error, never a silently zero-filled copy.

use rustix::fs::SeekFrom;
use rustix::io::Errno;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Copy the first `size` bytes of `src` into the empty file `dst`, which ends up `size` bytes
/// long.
pub(crate) fn copy_content(src: &File, dst: &File, size: u64) -> std::io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    match rustix::fs::ioctl_ficlone(dst, src) {
        Ok(()) => return Ok(()),
        // Not the same filesystem, or one without reflinks: copy.
        Err(e) => tracing::trace!(error = %e, "reflink not possible, copying"),
    }
    let mut copier = Copier {
        src,
        dst,
        use_cfr: true,
        buffer: Vec::new(),
    };
    let mut pos = 0;
    while pos < size {
        let data = match rustix::fs::seek(src, SeekFrom::Data(pos)) {
            Ok(d) => d,
            // Only holes after `pos`.
            Err(Errno::NXIO) => break,
            // No SEEK_DATA support: everything is data.
            Err(Errno::INVAL | Errno::OPNOTSUPP) => pos,
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let end = match rustix::fs::seek(src, SeekFrom::Hole(data)) {
            Ok(h) => h.min(size),
            Err(Errno::NXIO | Errno::INVAL | Errno::OPNOTSUPP) => size,
            Err(e) => return Err(e.into()),
        };
        copier.range(data, end)?;
        pos = end;
    }
    // Trailing holes (and the size itself).
    dst.set_len(size)
}

struct Copier<'a> {
    src: &'a File,
    dst: &'a File,
    /// `copy_file_range` works between these files (until it says otherwise).
    use_cfr: bool,
    /// For plain reads and writes; allocated when first needed.
    buffer: Vec<u8>,
}

impl Copier<'_> {
    /// Copy bytes `start..end` to the same offsets.
    fn range(&mut self, start: u64, end: u64) -> std::io::Result<()> {
        let (mut off_in, mut off_out) = (start, start);
        while off_in < end {
            let want = usize::try_from((end - off_in).min(1 << 30)).unwrap_or(1 << 30);
            if self.use_cfr {
                match rustix::fs::copy_file_range(
                    self.src,
                    Some(&mut off_in),
                    self.dst,
                    Some(&mut off_out),
                    want,
                ) {
                    Ok(0) => return Err(shorter()),
                    Ok(_) | Err(Errno::INTR) => {}
                    // Not supported between these files: go on with plain reads and writes.
                    Err(
                        Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::PERM,
                    ) => self.use_cfr = false,
                    Err(e) => return Err(e.into()),
                }
            } else {
                if self.buffer.is_empty() {
                    self.buffer.resize(1 << 20, 0);
                }
                let n = want.min(self.buffer.len());
                let got = match self.src.read_at(&mut self.buffer[..n], off_in) {
                    Ok(0) => return Err(shorter()),
                    Ok(got) => got,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                self.dst.write_all_at(&self.buffer[..got], off_out)?;
                off_in += got as u64;
                off_out += got as u64;
            }
        }
        Ok(())
    }
}

fn shorter() -> std::io::Error {
    std::io::Error::other("the source file became shorter while it was copied")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    /// A file with data at 1 MiB and at 40 MiB and a hole at the end, 64 MiB long.
    fn sparse_file(path: &Path) -> Vec<(u64, Vec<u8>)> {
        let f = File::create(path).expect("create");
        let parts = vec![
            (1 << 20, vec![0xa5; 10_000]),
            (40 << 20, b"in the middle of nowhere".to_vec()),
        ];
        for (off, data) in &parts {
            f.write_all_at(data, *off).expect("write");
        }
        f.set_len(64 << 20).expect("extend");
        parts
    }

    #[test]
    fn copy_keeps_holes_and_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src_path = dir.path().join("src");
        let parts = sparse_file(&src_path);
        let src = File::open(&src_path).expect("open");
        let dst_path = dir.path().join("dst");
        let dst = File::create(&dst_path).expect("create");
        copy_content(&src, &dst, 64 << 20).expect("copy");
        drop(dst);

        let a = std::fs::read(&src_path).expect("read");
        let b = std::fs::read(&dst_path).expect("read");
        assert_eq!(a.len(), 64 << 20);
        assert!(a == b, "contents differ");
        for (off, data) in parts {
            let off = usize::try_from(off).expect("offset");
            assert_eq!(&b[off..off + data.len()], &data[..]);
        }
        // 64 MiB apparent, two small extents allocated (a filesystem may round them up).
        let blocks = std::fs::metadata(&dst_path).expect("stat").blocks();
        assert!(
            blocks * 512 < 4 << 20,
            "copy is not sparse: {} bytes allocated",
            blocks * 512
        );
    }

    #[test]
    fn copy_of_empty_and_all_hole_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, len) in [("empty", 0u64), ("holes", 8 << 20)] {
            let src_path = dir.path().join(name);
            File::create(&src_path)
                .expect("create")
                .set_len(len)
                .expect("len");
            let dst_path = dir.path().join(format!("{name}.copy"));
            let dst = File::create(&dst_path).expect("create");
            copy_content(&File::open(&src_path).expect("open"), &dst, len).expect("copy");
            let md = std::fs::metadata(&dst_path).expect("stat");
            assert_eq!(md.len(), len);
            assert_eq!(md.blocks(), 0, "{name}: nothing should be allocated");
        }
    }

    fn dense(dir: &Path) -> (File, Vec<u8>) {
        let path = dir.join("dense");
        let data: Vec<u8> = (0..3_000_001u32).map(|i| (i * 7 % 251) as u8).collect();
        File::create(&path)
            .expect("create")
            .write_all(&data)
            .expect("write");
        (File::open(&path).expect("open"), data)
    }

    #[test]
    fn copy_of_dense_file_through_plain_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (src, data) = dense(dir.path());
        let dst_path = dir.path().join("copy");
        let dst = File::create(&dst_path).expect("create");
        let mut c = Copier {
            src: &src,
            dst: &dst,
            use_cfr: false,
            buffer: Vec::new(),
        };
        c.range(0, data.len() as u64).expect("copy");
        assert!(std::fs::read(&dst_path).expect("read") == data);
    }

    /// A source shorter than promised is an error both ways, not a zero-filled copy.
    #[test]
    fn shorter_source_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (src, data) = dense(dir.path());
        for use_cfr in [true, false] {
            let dst = File::create(dir.path().join(format!("copy-{use_cfr}"))).expect("create");
            let mut c = Copier {
                src: &src,
                dst: &dst,
                use_cfr,
                buffer: Vec::new(),
            };
            let err = c.range(0, data.len() as u64 + 4096).expect_err("shorter");
            assert!(err.to_string().contains("shorter"), "{err}");
        }
    }
}
