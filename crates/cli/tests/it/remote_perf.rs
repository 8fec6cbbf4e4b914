//! Remote performance through the binary against a real S3 server (`s3s-fs`): the metadata
//! cache spares downloads on repeated runs (counted by the binary's own backend counters,
//! `SNAPGUARD_BACKEND_STATS`), a single-file restore fetches only the byte ranges it needs and
//! `--connections` bounds the requests in flight (both measured on the wire by a TCP proxy
//! between the binary and the server, `support/proxy.rs`).

use crate::s3::s3_server::{self, S3Server};
use crate::support::cmd::{spec, Out, Sg, Ws};
use crate::support::fixture::Fixture;
use crate::support::proxy::Proxy;
use crate::support::restored_path;
use serde_json::Value;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;

/// An `Sg` for the repository `prefix` in the test bucket reached at `endpoint_port` (the
/// server or a proxy in front of it), with the test credentials and a cache in `ws/cache`.
fn sg_at(ws: &Ws, endpoint_port: u16, prefix: &str) -> Sg {
    crate::support::cmd::s3_sg(
        ws,
        format!(
            "s3:http://127.0.0.1:{endpoint_port}/{}/{prefix}",
            s3_server::BUCKET
        ),
        "cache",
        s3_server::ACCESS_KEY,
        s3_server::SECRET_KEY,
    )
}

fn init(sg: &Sg, extra: &[&str]) {
    let mut args = vec!["init", "--kdf-memory-kib", "8192", "--kdf-iterations", "1"];
    args.extend_from_slice(extra);
    sg.run(args).expect_code(0);
}

/// Run `args` with `SNAPGUARD_BACKEND_STATS` and return the output and the counters of the
/// one repository the command opened.
fn run_counted(sg: &Sg, ws: &Ws, args: &[&str]) -> (Out, Value) {
    let file = ws.path("backend-stats.json");
    let _ = std::fs::remove_file(&file);
    let mut cmd = sg.command();
    cmd.env("SNAPGUARD_BACKEND_STATS", &file);
    let out = crate::support::cmd::run_cmd(&mut cmd, args);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("no backend statistics written ({e})\n{out}"));
    let v: Value = serde_json::from_str(&text).expect("backend statistics are JSON");
    let backends = v["backends"].as_array().expect("backends array");
    assert_eq!(backends.len(), 1, "one repository opened: {v}");
    (out, backends[0].clone())
}

/// Read requests of one repository directory in a counters object.
fn reads(stats: &Value, dir: &str) -> u64 {
    stats["types"][dir]["reads"]
        .as_u64()
        .unwrap_or_else(|| panic!("no read count for {dir}: {stats}"))
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let m = e.metadata().expect("metadata");
        total += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    total
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn metadata_cache_spares_snapshot_and_tree_downloads_on_repeated_runs() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let ws = Ws::new();
    let sg = sg_at(&ws, server.port, "meta");
    init(&sg, &[]);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    for d in ["a", "a/b", "a/b/c", "d"] {
        fx.file(format!("{d}/note.txt"), format!("in {d}").as_bytes());
    }
    fx.random_file("d/data.bin", 3 * MIB, 1);
    let _ = fx.finish();
    let first = sg.backup(&[&src], &[]).id;
    fx_touch(&src);
    let second = sg.backup(&[&src], &[]).id;
    let note = src.join("a/b/c/note.txt");
    let note_s = note.to_str().expect("utf-8 path");
    let commands: Vec<Vec<&str>> = vec![
        vec!["--json", "snapshots"],
        vec!["ls", "latest"],
        vec!["versions", note_s],
        vec!["find", "note.txt"],
        vec!["diff", &first, &second],
        vec!["stats", "latest"],
    ];
    // First round: whatever is not cached yet is downloaded (and cached).
    let mut outputs = Vec::new();
    for args in &commands {
        let (out, _) = run_counted(&sg, &ws, args);
        out.expect_code(0);
        outputs.push(out.stdout_str());
    }
    // Second round: the same output, without reading a single snapshot file or pack.
    for (args, expected) in commands.iter().zip(&outputs) {
        let (out, stats) = run_counted(&sg, &ws, args);
        out.expect_code(0);
        assert_eq!(
            &out.stdout_str(),
            expected,
            "{args:?} printed something else"
        );
        assert_eq!(
            reads(&stats, "snapshots"),
            0,
            "{args:?} read snapshots: {stats}"
        );
        assert_eq!(reads(&stats, "data"), 0, "{args:?} read packs: {stats}");
    }

    // Damaged and truncated cache entries are replaced, never an error.
    let meta = files_under(&sg.cache);
    let meta: Vec<&PathBuf> = meta
        .iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "meta"))
        // Cache entries, not the cache's own bookkeeping (`trees/.swept`).
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    assert!(
        meta.len() >= 6,
        "expected cached snapshots and trees: {meta:?}"
    );
    for (i, p) in meta.iter().enumerate() {
        let mut bytes = std::fs::read(p).expect("read cache entry");
        if i % 2 == 0 {
            bytes[0] ^= 0x55;
        } else {
            bytes.truncate(bytes.len() / 3);
        }
        std::fs::write(p, bytes).expect("damage cache entry");
    }
    let (out, stats) = run_counted(&sg, &ws, &["ls", "latest"]);
    out.expect_code(0);
    assert_eq!(out.stdout_str(), outputs[1]);
    assert!(
        reads(&stats, "data") > 0,
        "damaged trees were not fetched again: {stats}"
    );
    let (out, stats) = run_counted(&sg, &ws, &["ls", "latest"]);
    out.expect_code(0);
    assert_eq!(
        reads(&stats, "data"),
        0,
        "the replaced entries did not verify: {stats}"
    );

    // A forgotten snapshot leaves the cache with the next listing.
    sg.run(["forget", &first]).expect_code(0);
    sg.run(["snapshots"]).expect_code(0);
    let cached_snapshots: Vec<String> = files_under(&sg.cache)
        .iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("meta/snapshots")))
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect();
    assert!(
        cached_snapshots.iter().all(|n| !n.starts_with(&first)),
        "forgotten snapshot {first} still cached: {cached_snapshots:?}"
    );
    assert!(cached_snapshots.iter().any(|n| n.starts_with(&second)));

    // Nothing in the cache is plaintext: the file names of the tree are nowhere.
    for p in files_under(&sg.cache) {
        let bytes = std::fs::read(&p).expect("read cache file");
        assert!(
            !bytes.windows(8).any(|w| w == b"note.txt"),
            "{} holds a plaintext file name",
            p.display()
        );
    }

    // `check` reads from the repository, not the cache.
    let (out, stats) = run_counted(&sg, &ws, &["check"]);
    out.expect_code(0);
    assert!(
        reads(&stats, "snapshots") > 0 && reads(&stats, "data") > 0,
        "{stats}"
    );
    // Neither does anything with --no-cache.
    let (out, stats) = run_counted(&sg, &ws, &["--no-cache", "ls", "latest"]);
    out.expect_code(0);
    assert!(reads(&stats, "data") > 0, "{stats}");

    // Processes filling the cache at the same time: all succeed with the same listing, and
    // what they left verifies (the next run reads no pack).
    std::fs::remove_dir_all(&sg.cache).expect("drop the cache");
    std::fs::create_dir_all(&sg.cache).expect("mkdir cache");
    let children: Vec<_> = (0..4)
        .map(|_| {
            sg.std_command()
                .args(["ls", "latest"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn ls")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait for ls");
        assert!(
            out.status.success(),
            "concurrent ls failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), outputs[1]);
    }
    let (out, stats) = run_counted(&sg, &ws, &["ls", "latest"]);
    out.expect_code(0);
    assert_eq!(reads(&stats, "data"), 0, "{stats}");
}

#[test]
fn local_repositories_keep_no_metadata_cache() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.file("a/b/file.txt", b"content");
    let _ = fx.finish();
    sg.backup(&[&src], &[]);
    sg.run(["ls", "latest"]).expect_code(0);
    let meta: Vec<PathBuf> = files_under(&sg.cache)
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "meta"))
        .collect();
    assert!(
        meta.is_empty(),
        "a local repository got a metadata cache: {meta:?}"
    );
}

/// Change a file so that a second backup has new trees.
fn fx_touch(src: &Path) {
    std::fs::write(src.join("a/b/new.txt"), b"added").expect("write");
}

/// Bytes the server sent while `f` ran.
fn downloaded(proxy: &Proxy, f: impl FnOnce()) -> u64 {
    proxy.reset();
    f();
    proxy.bytes_down()
}

#[test]
fn single_file_restore_fetches_only_the_ranges_it_needs() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into());
    let ws = Ws::new();
    let sg = sg_at(&ws, proxy.port, "ranges");
    init(&sg, &[]);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    fx.random_file("big.bin", 64 * MIB, 11);
    fx.file("small.txt", b"just a few bytes");
    fx.random_file("mid.bin", 3 * MIB, 12);
    fx.random_file("big2.bin", 20 * MIB, 13);
    let _ = fx.finish();
    let id = sg.backup(&[&src], &[]).id;
    let repo_size = dir_size(&server.bucket_dir());
    assert!(repo_size > 80 * MIB, "repository of {repo_size} bytes");

    // A fresh cache: index, snapshot and trees are downloaded too, and still the total is tiny.
    let _ = std::fs::remove_dir_all(&sg.cache);
    std::fs::create_dir_all(&sg.cache).expect("mkdir cache");
    let target = ws.path("t-small");
    let mut json = Value::Null;
    let small = downloaded(&proxy, || {
        let out = sg.run([
            "--json".as_ref(),
            "restore".as_ref(),
            spec(&id, &src.join("small.txt")).as_os_str(),
            "--target".as_ref(),
            target.as_os_str(),
        ]);
        out.expect_code(0);
        json = out.json();
    });
    let restored = files_under(&target);
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(
        std::fs::read(&restored[0]).expect("read restored"),
        b"just a few bytes"
    );
    assert!(
        small < 512 << 10,
        "restoring a 16-byte file downloaded {small} bytes of a {repo_size}-byte repository"
    );
    let counted = json["bytes_downloaded"]
        .as_u64()
        .unwrap_or_else(|| panic!("no bytes_downloaded: {json}"));
    assert!(
        counted > 0 && counted <= small,
        "bytes_downloaded {counted} vs {small} bytes on the wire"
    );

    // A mid-size file fetches about its own size, not the packs it shares with the big files.
    let target = ws.path("t-mid");
    let mid = downloaded(&proxy, || {
        sg.restore(spec(&id, &src.join("mid.bin")), &target, &[])
            .expect_code(0);
    });
    let restored = restored_path(&target, &src).parent().map(Path::to_path_buf);
    let got = files_under(&target);
    assert_eq!(got.len(), 1, "{got:?} under {restored:?}");
    assert_eq!(
        std::fs::read(&got[0]).expect("read"),
        std::fs::read(src.join("mid.bin")).expect("read source")
    );
    eprintln!(
        "repository {repo_size} bytes; on the wire: 16-byte file {small} bytes, 3 MiB file {mid} bytes"
    );
    assert!(
        (3 * MIB..4 * MIB).contains(&mid),
        "restoring a 3 MiB file downloaded {mid} bytes (repository {repo_size})"
    );
}

/// A repository of many small packs, restored with `extra` global options through the proxy;
/// returns the most requests in flight at once.
fn restore_concurrency(
    sg: &Sg,
    ws: &Ws,
    proxy: &Proxy,
    id: &str,
    name: &str,
    extra: &[&str],
) -> usize {
    let target = ws.path(name);
    proxy.reset();
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["restore", id, "--target"]);
    let t = target.to_str().expect("utf-8 path");
    args.push(t);
    sg.run(&args).expect_code(0);
    proxy.max_busy()
}

#[test]
fn connection_limit_bounds_requests_in_flight() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into());
    let ws = Ws::new();
    let sg = sg_at(&ws, proxy.port, "conns");
    // 1 MiB packs: 24 files of 1 MiB make about two dozen packs to read in parallel.
    init(&sg, &["--pack-size", "1"]);
    let src = ws.path("src");
    let mut fx = Fixture::new(&src);
    for i in 0..24 {
        fx.random_file(format!("f{i:02}.bin"), MIB, 100 + i);
    }
    let _ = fx.finish();
    let (id, upload) = {
        proxy.reset();
        let b = sg.backup(&[&src], &["--connections", "2"]);
        (b.id, proxy.max_busy())
    };
    assert!(
        (1..=2).contains(&upload),
        "backup with --connections 2 had {upload} requests in flight"
    );

    // Connections open at once may exceed the limit for a moment (the client can open a new
    // one before a finished request's connection is back in its pool), so the bound is on
    // requests in flight.
    let busy = restore_concurrency(&sg, &ws, &proxy, &id, "t2", &["--connections", "2"]);
    assert!(
        (1..=2).contains(&busy),
        "--connections 2: {busy} requests in flight at once"
    );

    let mut env_sg = sg_at(&ws, proxy.port, "conns");
    env_sg
        .extra_env
        .push(("SNAPGUARD_CONNECTIONS".into(), "2".into()));
    let busy = restore_concurrency(&env_sg, &ws, &proxy, &id, "t2env", &[]);
    assert!(
        busy <= 2,
        "SNAPGUARD_CONNECTIONS=2: {busy} requests in flight at once"
    );

    // The same restore with a higher limit does run more at once: the measurement can fail.
    let busy = restore_concurrency(&sg, &ws, &proxy, &id, "t8", &["--connections", "8"]);
    assert!(
        busy > 2,
        "--connections 8: only {busy} requests in flight at once"
    );

    for name in ["t2", "t2env", "t8"] {
        for i in [0, 23] {
            let rel = format!("f{i:02}.bin");
            assert_eq!(
                std::fs::read(restored_path(&ws.path(name), &src).join(&rel)).expect("restored"),
                std::fs::read(src.join(&rel)).expect("source"),
                "{name}/{rel}"
            );
        }
    }
}

/// Most requests in flight when 8 threads read 16 objects at once through a backend limited
/// to `connections`: the limit itself, with more callers than it allows.
fn parallel_reads_in_flight(proxy: &Proxy, prefix: &str, connections: usize) -> usize {
    use snapguard_backend::{Backend, FileType, OpendalBackend, RemoteOptions, S3Config};
    let mut cfg = S3Config::parse(&format!(
        "http://127.0.0.1:{}/{}/{prefix}",
        proxy.port,
        s3_server::BUCKET
    ))
    .expect("S3 URL");
    cfg.access_key_id = Some(s3_server::ACCESS_KEY.to_string());
    cfg.secret_access_key = Some(s3_server::SECRET_KEY.to_string());
    let opts = RemoteOptions {
        connections,
        ..RemoteOptions::default()
    };
    let backend = OpendalBackend::s3(&cfg, &opts).expect("backend");
    let names: Vec<String> = (0..16)
        .map(|i| format!("{i:02x}{}", "0".repeat(62)))
        .collect();
    for (i, n) in names.iter().enumerate() {
        if backend.size(FileType::Pack, n).is_err() {
            backend
                .write(FileType::Pack, n, &vec![i as u8; MIB as usize])
                .expect("write");
        }
    }
    proxy.reset();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (backend, names) = (&backend, &names);
            s.spawn(move || {
                for n in names.iter().skip(t).step_by(4) {
                    let data = backend.read(FileType::Pack, n).expect("read");
                    assert_eq!(data.len() as u64, MIB);
                }
            });
        }
    });
    proxy.max_busy()
}

#[test]
fn connection_limit_holds_with_more_callers_than_connections() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into());
    let limited = parallel_reads_in_flight(&proxy, "callers", 2);
    assert!(
        (1..=2).contains(&limited),
        "8 readers, 2 connections: {limited} requests in flight at once"
    );
    let wide = parallel_reads_in_flight(&proxy, "callers", 8);
    assert!(
        wide > 2,
        "8 readers, 8 connections: only {wide} requests in flight at once"
    );
}
