//! Crash safety: `kill -9` of backups and prunes at many points, and backups racing a prune.
//!
//! After every crash the repository must pass `check --read-data` (notes about leftover packs
//! are allowed) once `snapguard unlock` has removed the dead process's lock, every snapshot it
//! lists must restore bit-exact, and normal operation must go on.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::errors::{files_in, no_panic};
use crate::maintenance::{
    assert_restores, init_at, json_ok, lock_files, os, random_tree, read_files, rnd, sg_at,
    snapshot_ids, write_files, Bg, Files,
};
use crate::support::cmd::{Sg, Ws};

/// Kill points as fractions of an uninterrupted run: early (startup, first chunks), during
/// pack writes, around the index and snapshot writes at the end, and just after.
const FRACTIONS: [f64; 8] = [0.04, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.02];

fn delay(full: Duration, fraction: f64) -> Duration {
    full.mul_f64(fraction).max(Duration::from_millis(20))
}

/// After a crash: `unlock` removes the dead process's lock, and `check --read-data` passes.
fn unlock_and_check(sg: &Sg, context: &str) -> String {
    let out = sg.run(["unlock"]);
    no_panic(&out);
    assert_eq!(out.code, Some(0), "{context}: unlock failed\n{out}");
    assert!(
        lock_files(&sg.repo).is_empty(),
        "{context}: locks left after unlock: {:?}",
        lock_files(&sg.repo)
    );
    let out = sg.run(["check", "--read-data"]);
    no_panic(&out);
    assert_eq!(
        out.code,
        Some(0),
        "{context}: check --read-data after the crash\n{out}"
    );
    assert!(
        !out.stderr_str().contains("error"),
        "{context}: check printed errors\n{out}"
    );
    out.stderr_str()
}

/// Recursively copies a repository directory.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).unwrap_or_else(|e| panic!("read_dir {from:?}: {e}")) {
        let e = e.expect("entry");
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {src:?}: {e}"));
        }
    }
}

#[test]
fn backup_killed_at_many_points_leaves_repository_consistent() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let t1 = ws.path("t1");
    write_files(
        &t1,
        &[
            ("a.bin", rnd(1, 3 << 20)),
            ("sub/b.txt", b"bravo\n".to_vec()),
        ],
    );
    let t1_files = read_files(&t1);
    let a = sg.backup(&[&t1], &[]).id;

    // How long an uninterrupted backup of fresh data takes here (in a scratch repository).
    let t2 = ws.path("t2");
    let (files, len) = (4, 16 << 20);
    random_tree(&t2, 1000, files, len);
    let cal = init_at(&ws, "cal", &[]);
    let start = Instant::now();
    cal.run([os("-q"), os("backup"), t2.as_os_str()])
        .expect_code(0);
    let full = start.elapsed();
    fs::remove_dir_all(&cal.repo).expect("rm cal");

    let mut known: BTreeSet<String> = [a.clone()].into();
    let mut log = Vec::new();
    for (i, f) in FRACTIONS.iter().enumerate() {
        // Fresh data every time, so that every run really writes packs.
        random_tree(&t2, i as u64 + 1, files, len);
        let expected = read_files(&t2);
        let d = delay(full, *f);
        let mut bg = Bg::spawn(&sg, &[os("-q"), os("backup"), t2.as_os_str()]);
        std::thread::sleep(d);
        let ended = bg.kill_now();
        if let Some(st) = ended {
            assert!(st.success(), "backup {i} failed by itself: {st:?}");
        }
        let packs = files_in(&sg.repo.join("data")).len();
        let indexes = files_in(&sg.repo.join("index")).len();
        let context = format!("backup killed after {d:?} (run {i})");
        let notes = unlock_and_check(&sg, &context);

        let ids = snapshot_ids(&sg);
        let new: Vec<&String> = ids.iter().filter(|id| !known.contains(*id)).collect();
        assert!(new.len() <= 1, "{context}: several new snapshots {new:?}");
        assert!(
            known.iter().all(|k| ids.contains(k)),
            "{context}: a snapshot disappeared"
        );
        assert_restores(&sg, &a, &t1, &t1_files, &ws.path("ra"));
        let committed = !new.is_empty();
        if let Some(id) = new.first() {
            assert_restores(&sg, id, &t2, &expected, &ws.path("rb"));
            known.insert((*id).clone());
        } else {
            // Run it again, as a user would: it may reuse whatever the killed run indexed.
            let id = sg.backup(&[&t2], &[]).id;
            unlock_and_check(&sg, &format!("{context}, then a complete backup"));
            assert_restores(&sg, &id, &t2, &expected, &ws.path("rb"));
            known.insert(id);
        }
        log.push(format!(
            "{context}: {}, snapshot committed: {committed}, pack files: {packs}, index files: {indexes}, leftover-pack notes: {}",
            if ended.is_some() { "ended by itself" } else { "killed" },
            notes.lines().filter(|l| l.starts_with("note")).count()
        ));
    }
    eprintln!("uninterrupted backup: {full:?}\n{}", log.join("\n"));
    assert!(
        log.iter().any(|l| l.contains("committed: false")),
        "every backup completed before it was killed, so no crash was tested:\n{}",
        log.join("\n")
    );

    // Normal operation goes on.
    random_tree(&t2, 99, 2, 1 << 20);
    let expected = read_files(&t2);
    let id = sg.backup(&[&t2], &[]).id;
    unlock_and_check(&sg, "after the final backup");
    assert_restores(&sg, &id, &t2, &expected, &ws.path("rb"));
    assert_restores(&sg, &a, &t1, &t1_files, &ws.path("ra"));
}

#[test]
fn prune_killed_at_many_points_leaves_repository_consistent() {
    let ws = Ws::new();
    // The template repository: A = {k1, x1}, B = {k1, k2, x2}, C = {k1, k2, k3} of dir d, and E
    // of dir e. A and B are forgotten, so their packs are partly (k1, k2) or wholly garbage:
    // prune both repacks and deletes.
    let tpl = init_at(&ws, "template", &[]);
    let (d, e) = (ws.path("d"), ws.path("e"));
    let mb = 1 << 20;
    write_files(
        &d,
        &[("k1.bin", rnd(11, 12 * mb)), ("x1.bin", rnd(12, 12 * mb))],
    );
    let a = tpl.backup(&[&d], &[]).id;
    fs::remove_file(d.join("x1.bin")).expect("rm");
    write_files(
        &d,
        &[("k2.bin", rnd(13, 12 * mb)), ("x2.bin", rnd(14, 12 * mb))],
    );
    let b = tpl.backup(&[&d], &[]).id;
    fs::remove_file(d.join("x2.bin")).expect("rm");
    write_files(&d, &[("k3.bin", rnd(15, 12 * mb))]);
    let c = tpl.backup(&[&d], &[]).id;
    write_files(
        &e,
        &[("e.bin", rnd(16, mb)), ("s/e.txt", b"echo\n".to_vec())],
    );
    let e_id = tpl.backup(&[&e], &[]).id;
    tpl.run(["forget", a.as_str(), b.as_str()]).expect_code(0);
    let want: BTreeMap<String, (PathBuf, Files)> = [
        (c.clone(), (d.clone(), read_files(&d))),
        (e_id.clone(), (e.clone(), read_files(&e))),
    ]
    .into();

    // How long an uninterrupted prune takes (on a copy).
    copy_dir(&tpl.repo, &ws.path("cal"));
    let cal = sg_at(&ws, "cal");
    let plan = json_ok(&cal, ["prune", "--dry-run", "--max-unused", "0"]);
    assert!(
        plan["plan"]["packs_to_repack"].as_u64().expect("n") >= 1
            && plan["plan"]["packs_to_delete"].as_u64().expect("n") >= 1,
        "the template should need both repacking and deleting\n{plan:#}"
    );
    let start = Instant::now();
    cal.run(["-q", "prune", "--max-unused", "0"]).expect_code(0);
    let full = start.elapsed();
    fs::remove_dir_all(&cal.repo).expect("rm cal");

    // The forgotten data, to be backed up again after each crash: if a killed prune had left an
    // index entry pointing into a deleted pack, this backup would deduplicate against it.
    let x = ws.path("x");
    write_files(
        &x,
        &[("x1.bin", rnd(12, 12 * mb)), ("x2.bin", rnd(14, 12 * mb))],
    );
    let x_files = read_files(&x);

    let mut log = Vec::new();
    for (i, f) in FRACTIONS.iter().enumerate() {
        let name = format!("r{i}");
        copy_dir(&tpl.repo, &ws.path(&name));
        let sg = sg_at(&ws, &name);
        let d_ = delay(full, *f);
        let mut bg = Bg::spawn(&sg, &[os("-q"), os("prune"), os("--max-unused"), os("0")]);
        std::thread::sleep(d_);
        let ended = bg.kill_now();
        if let Some(st) = ended {
            assert!(st.success(), "prune {i} failed by itself: {st:?}");
        }
        let packs = files_in(&sg.repo.join("data")).len();
        let indexes = files_in(&sg.repo.join("index")).len();
        let context = format!("prune killed after {d_:?} (run {i})");
        unlock_and_check(&sg, &context);
        let ids: BTreeSet<String> = snapshot_ids(&sg).into_iter().collect();
        assert_eq!(
            ids,
            want.keys().cloned().collect::<BTreeSet<_>>(),
            "{context}"
        );
        for (id, (src, files)) in &want {
            assert_restores(&sg, id, src, files, &ws.path("restore"));
        }
        let mut all = want.clone();
        let xid = sg.backup(&[&x], &[]).id;
        unlock_and_check(
            &sg,
            &format!("{context}, then a backup of the forgotten data"),
        );
        all.insert(xid, (x.clone(), x_files.clone()));
        // A complete prune afterwards finishes the job.
        let out = sg.run(["prune", "--max-unused", "0"]);
        no_panic(&out);
        assert_eq!(out.code, Some(0), "{context}: final prune\n{out}");
        unlock_and_check(&sg, &format!("{context}, then a full prune"));
        let again = json_ok(&sg, ["prune", "--dry-run", "--max-unused", "0"]);
        assert!(
            again["plan"]["packs_to_delete"] == 0 && again["plan"]["packs_to_repack"] == 0,
            "{context}: prune left work undone\n{again:#}"
        );
        for (id, (src, files)) in &all {
            assert_restores(&sg, id, src, files, &ws.path("restore"));
        }
        log.push(format!(
            "{context}: {}; then {packs} pack files, {indexes} index files",
            if ended.is_some() {
                "ended by itself"
            } else {
                "killed"
            }
        ));
        fs::remove_dir_all(&sg.repo).expect("rm copy");
    }
    eprintln!("uninterrupted prune: {full:?}\n{}", log.join("\n"));
    assert!(
        log.iter().any(|l| l.contains(": killed;")),
        "every prune completed before it was killed:\n{}",
        log.join("\n")
    );
}

#[test]
fn concurrent_backups_and_prune_either_succeed_or_exit_11() {
    let ws = Ws::new();
    let sg = Sg::init(&ws, None);
    let srcs = [ws.path("src-a"), ws.path("src-b")];
    // Every snapshot that should exist, with the source contents it must restore to.
    let mut expected: BTreeMap<String, (usize, Files)> = BTreeMap::new();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..5u64 {
        for (k, src) in srcs.iter().enumerate() {
            let seed = 1000 * k as u64 + round;
            write_files(
                src,
                &[
                    (format!("r{round}.bin"), rnd(seed, 3 << 20)),
                    ("common.bin".into(), rnd(500 + k as u64, 1 << 20)),
                    (
                        "note.txt".into(),
                        format!("{k} round {round}\n").into_bytes(),
                    ),
                ],
            );
            if round >= 2 {
                let _ = fs::remove_file(src.join(format!("r{}.bin", round - 2)));
            }
        }
        // Give prune work: keep only the newest snapshot of each source.
        if round >= 1 {
            sg.run(["forget", "--keep-last", "1"]).expect_code(0);
            let left: BTreeSet<String> = snapshot_ids(&sg).into_iter().collect();
            expected.retain(|id, _| left.contains(id));
        }
        let files: Vec<Files> = srcs.iter().map(|s| read_files(s)).collect();
        let procs = vec![
            (
                "backup a",
                Bg::spawn(&sg, &[os("--json"), os("backup"), srcs[0].as_os_str()]),
            ),
            (
                "backup b",
                Bg::spawn(&sg, &[os("--json"), os("backup"), srcs[1].as_os_str()]),
            ),
            (
                "prune",
                Bg::spawn(&sg, &[os("prune"), os("--max-unused"), os("0")]),
            ),
        ];
        for (what, bg) in procs {
            let out = bg.finish();
            no_panic(&out);
            match out.code {
                Some(0) => {
                    if let Some(k) = ["backup a", "backup b"].iter().position(|w| *w == what) {
                        let id = out.json()["snapshot_id"]
                            .as_str()
                            .unwrap_or_else(|| panic!("no snapshot id\n{out}"))
                            .to_string();
                        expected.insert(id, (k, files[k].clone()));
                    }
                }
                Some(11) => {
                    let err = out.stderr_str();
                    assert!(
                        err.contains("locked") && err.contains("snapguard unlock"),
                        "round {round}: {what} exit 11 without a clear message\n{out}"
                    );
                }
                _ => panic!("round {round}: {what} neither succeeded nor exited 11\n{out}"),
            }
            *tally
                .entry(format!("{what}: exit {:?}", out.code))
                .or_default() += 1;
        }
        assert!(
            lock_files(&sg.repo).is_empty(),
            "round {round}: locks left behind"
        );
    }
    eprintln!("{tally:#?}");
    let out = sg.run(["check", "--read-data"]);
    no_panic(&out);
    out.expect_code(0);
    assert!(!out.stderr_str().contains("error"), "{out}");
    let ids = snapshot_ids(&sg);
    assert!(!ids.is_empty(), "no backup ever succeeded: {tally:#?}");
    for id in &ids {
        let (k, files) = expected
            .get(id)
            .unwrap_or_else(|| panic!("snapshot {id} was not reported by any backup"));
        assert_restores(&sg, id, &srcs[*k], files, &ws.path("restore"));
    }
    let listed: BTreeSet<&String> = ids.iter().collect();
    for id in expected.keys() {
        assert!(
            listed.contains(id),
            "snapshot {id} reported saved is missing"
        );
    }
    // A last prune on a quiet repository works.
    sg.run(["prune", "--max-unused", "0"]).expect_code(0);
    sg.run(["check", "--read-data"]).expect_code(0);
}
