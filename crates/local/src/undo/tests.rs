use super::*;

#[test]
fn temporary_names_are_hidden_and_unique() {
    let mut n = 0;
    let a = tmp_name(&mut n);
    let b = tmp_name(&mut n);
    assert_ne!(a, b);
    assert!(a.as_bytes().starts_with(b".snapguard-undo."));
}

#[test]
fn report_serializes_paths_and_failures() {
    let report = UndoReport {
        removed: vec![PathBuf::from("new")],
        created: vec![PathBuf::from(OsStr::from_bytes(b"\xff"))],
        modified: vec![],
        failed: vec![UndoFailure {
            path: PathBuf::from("d"),
            error: "the directory was not removed".into(),
        }],
    };
    assert!(!report.is_complete());
    let v = serde_json::to_value(&report).expect("json");
    assert_eq!(v["removed"][0]["path"], "new");
    assert_eq!(v["created"][0]["path_hex"], "ff");
    assert_eq!(v["modified"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["failed"][0]["path"], "d");
    assert_eq!(v["failed"][0]["error"], "the directory was not removed");
}
