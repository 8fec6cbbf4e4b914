use super::*;

fn status(flags: &str) -> Status {
    let mut s = Status::default();
    for c in flags.chars() {
        match c {
            '+' => s.created = true,
            '-' => s.deleted = true,
            't' => s.type_changed = true,
            'c' => s.content = true,
            'p' => s.permissions = true,
            'u' => s.user = true,
            'g' => s.group = true,
            'x' => s.xattrs = true,
            'a' => s.acl = true,
            _ => panic!("unknown flag {c}"),
        }
    }
    s
}

#[test]
fn status_strings_follow_snapper() {
    for (flags, expected) in [
        ("", "......"),
        ("+", "+....."),
        ("-", "-....."),
        ("c", "c....."),
        ("t", "t....."),
        ("tc", "t....."),
        ("p", ".p...."),
        ("u", "..u..."),
        ("g", "...g.."),
        ("x", "....x."),
        ("a", ".....a"),
        ("cpugxa", "cpugxa"),
        ("tp", "tp...."),
        ("cug", "c.ug.."),
    ] {
        let s = status(flags);
        assert_eq!(s.to_string(), expected, "flags {flags:?}");
        assert_eq!(s.snapper(), expected);
        assert_eq!(s.is_unchanged(), flags.is_empty());
    }
}

#[test]
fn scope_normalizes_and_refuses_escapes() {
    let s = Scope::new(&["a/./b".into(), "c/".into()]).expect("valid");
    assert_eq!(
        s.paths,
        Some(vec![PathBuf::from("a/b"), PathBuf::from("c")])
    );
    assert!(Scope::new(&[]).expect("empty").paths.is_none());
    assert!(Scope::new(&[".".into(), "a".into()])
        .expect("root")
        .paths
        .is_none());
    for bad in ["../a", "a/../b", "a/..", "/etc", "/"] {
        match Scope::new(&[PathBuf::from(bad)]) {
            Err(Error::PathOutsideTree { path, .. }) => assert_eq!(path, PathBuf::from(bad)),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let e = Scope::new(&["../x".into()]).expect_err("refused");
    assert!(e.to_string().contains("../x"), "{e}");
}

#[test]
fn scope_selects_by_component() {
    let s = Scope::new(&["a/b".into()]).expect("valid");
    assert!(s.selects(Path::new("a/b")));
    assert!(s.selects(Path::new("a/b/c")));
    assert!(!s.selects(Path::new("a/bc")));
    assert!(!s.selects(Path::new("a")));
    assert!(s.leads_to(Path::new("a")));
    assert!(s.leads_to(Path::new("")));
    assert!(!s.leads_to(Path::new("a/b")));
    assert!(!s.leads_to(Path::new("b")));
}

#[test]
fn change_serializes_path_and_both_flag_forms() {
    let c = Change {
        path: PathBuf::from("dir/file"),
        status: status("cp"),
    };
    let v = serde_json::to_value(&c).expect("json");
    assert_eq!(v["path"], "dir/file");
    assert!(v.get("path_hex").is_none());
    assert_eq!(v["status"], "cp....");
    assert_eq!(v["flags"]["content"], true);
    assert_eq!(v["flags"]["permissions"], true);
    assert_eq!(v["flags"]["type"], false);
    assert_eq!(v["flags"]["created"], false);
    assert_eq!(v["flags"]["acl"], false);

    let c = Change {
        path: PathBuf::from(OsStr::from_bytes(b"caf\xe9/x")),
        status: status("+"),
    };
    let v = serde_json::to_value(&c).expect("json");
    assert_eq!(v["path"], "caf\u{fffd}/x");
    assert_eq!(v["path_hex"], "636166e92f78");
    assert_eq!(v["status"], "+.....");
}
