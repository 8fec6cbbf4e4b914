//! Router-level tests of the HTTPS API: the whole `snapguard_web::router` driven with
//! `tower::ServiceExt::oneshot` (no network) over a real repository in a temporary directory
//! (initialised, backed up twice), real accounts and sessions in a real state database, and a
//! `Control` that stands in for the daemon's event loop: it records the runs it is asked to
//! start and cancel in the same state database, as the daemon does.

#![allow(clippy::unwrap_used)]

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use serde_json::{json, Value};
use snapguard_backend::LocalBackend;
use snapguard_crypto::{Argon2Params, Cipher};
use snapguard_daemon::runs::{Status, Trigger};
use snapguard_daemon::users::{HashCost, Role};
use snapguard_daemon::State;
use snapguard_engine::lock::{LockKind, LockOwner};
use snapguard_engine::{BackupOptions, InitOptions, Repository, Secret};
use snapguard_format::Timestamp;
use snapguard_web::repo::RepoAccess;
use snapguard_web::{ApiError, AppState, Control, JobInfo};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;
use zeroize::Zeroizing;

const HOST: &str = "web-host";
const ADMIN_PW: &str = "admin password 1";
const OPERATOR_PW: &str = "operator password 2";
const VIEWER_PW: &str = "viewer password 3";
/// The Host header the tests send where an Origin check matters.
const SERVER_HOST: &str = "127.0.0.1:8443";

fn secret() -> Secret {
    Secret::Password(Zeroizing::new(b"web api test".to_vec()))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Cheap Argon2id for the test accounts (verification uses the hash's own parameters).
fn cheap_cost() -> HashCost {
    HashCost {
        memory_kib: 1024,
        iterations: 1,
        lanes: 1,
    }
}

/// Deterministic bytes with every byte value in them.
fn binary_data(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i < 256 {
                i as u8
            } else {
                (x >> 24) as u8
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The daemon's side: jobs and runs

/// What the test's "event loop" was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Run { job: String, who: String, run: i64 },
    Cancel { run: i64, who: String },
}

struct TestControl {
    state_dir: PathBuf,
    jobs: Vec<JobInfo>,
    calls: Mutex<Vec<Call>>,
    running: Mutex<HashMap<String, i64>>,
}

impl TestControl {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Control for TestControl {
    fn jobs(&self) -> Vec<JobInfo> {
        let running = self.running.lock().unwrap();
        self.jobs
            .iter()
            .map(|j| JobInfo {
                running: running.get(&j.name).copied(),
                ..j.clone()
            })
            .collect()
    }

    fn run_job(&self, job: &str, who: &str) -> Result<i64, ApiError> {
        if !self.jobs.iter().any(|j| j.name == job) {
            return Err(ApiError::not_found(format!("no job {job}")));
        }
        let mut running = self.running.lock().unwrap();
        if running.contains_key(job) {
            return Err(ApiError::conflict(format!("{job} runs already")));
        }
        let st = State::open(&self.state_dir)?;
        let t = now();
        let run = st.start_run(job, Trigger::Manual, t)?;
        st.log(run, t, "info", &format!("started by {who}"))?;
        running.insert(job.to_string(), run);
        self.calls.lock().unwrap().push(Call::Run {
            job: job.into(),
            who: who.into(),
            run,
        });
        Ok(run)
    }

    fn cancel_run(&self, run: i64, who: &str) -> Result<(), ApiError> {
        let st = State::open(&self.state_dir)?;
        let t = now();
        st.log(run, t, "warn", &format!("cancelled by {who}"))?;
        st.finish_run(run, Status::Cancelled, t, None, Some("cancelled"))?;
        self.running.lock().unwrap().retain(|_, r| *r != run);
        self.calls.lock().unwrap().push(Call::Cancel {
            run,
            who: who.into(),
        });
        Ok(())
    }

    fn settings(&self) -> Value {
        json!({"daemon": {"listen": SERVER_HOST}, "jobs": self.jobs.iter().map(|j| &j.name).collect::<Vec<_>>()})
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture: a repository with two snapshots of a small tree, accounts, a finished run

struct Fixture {
    dir: tempfile::TempDir,
    /// The backed-up directory (as recorded in the snapshots).
    src: PathBuf,
    state_dir: PathBuf,
    old_id: String,
    new_id: String,
    notes_v1: Vec<u8>,
    notes_v2: Vec<u8>,
    binary: Vec<u8>,
    inner: Vec<u8>,
    /// A finished run of "nightly" with three log lines.
    finished_run: i64,
    control: Arc<TestControl>,
    app: axum::Router,
}

fn init_options() -> InitOptions {
    InitOptions {
        cipher: Cipher::Aes256Gcm,
        kdf: Argon2Params {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        },
        now: Timestamp {
            secs: now(),
            nanos: 0,
        },
        hostname: HOST.into(),
        username: "tester".into(),
        compression_level: 3,
        pack_target_size: 1 << 20,
        chunk_avg: None,
        append_only: false,
    }
}

fn owner() -> LockOwner {
    LockOwner {
        hostname: HOST.into(),
        username: "tester".into(),
    }
}

/// What the CLI's backup does: open, shared lock, index, back up.
fn backup(repo_dir: &Path, src: &Path, secs: i64, tags: &[&str]) -> String {
    let mut repo = Repository::open(Arc::new(LocalBackend::new(repo_dir)), &[secret()]).unwrap();
    let _guard = repo.lock(LockKind::Shared, "backup", &owner()).unwrap();
    repo.load_index().unwrap();
    let opts = BackupOptions {
        paths: vec![src.to_path_buf()],
        tags: tags.iter().map(|t| t.to_string()).collect(),
        hostname: HOST.into(),
        username: "tester".into(),
        time: Timestamp { secs, nanos: 0 },
        program_version: "web-test".into(),
        ..BackupOptions::default()
    };
    let r = snapguard_engine::backup(&mut repo, &opts).unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    r.snapshot_id.unwrap().to_hex()
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let repo_dir = dir.path().join("repo");
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        let notes_v1 = b"first version of the notes\n".to_vec();
        let notes_v2 = b"second version of the notes, a little longer\n".to_vec();
        let binary = binary_data(100_000);
        let inner = b"a file in a subdirectory\n".to_vec();
        std::fs::write(src.join("notes.txt"), &notes_v1).unwrap();
        std::fs::write(src.join("data.bin"), &binary).unwrap();
        std::fs::write(src.join("sub/inner.txt"), &inner).unwrap();

        std::fs::create_dir_all(&repo_dir).unwrap();
        Repository::init(
            Arc::new(LocalBackend::new(&repo_dir)),
            &secret(),
            &init_options(),
        )
        .unwrap();
        let t = now();
        let old_id = backup(&repo_dir, &src, t - 7200, &["daily"]);
        std::fs::write(src.join("notes.txt"), &notes_v2).unwrap();
        std::fs::write(src.join("sub/added.txt"), b"new in the second backup\n").unwrap();
        let new_id = backup(&repo_dir, &src, t - 3600, &["daily", "weekly"]);
        assert_ne!(old_id, new_id);

        let st = State::open(&state_dir).unwrap();
        for (name, role, pw) in [
            ("admin", Role::Admin, ADMIN_PW),
            ("op", Role::Operator, OPERATOR_PW),
            ("viewer", Role::Viewer, VIEWER_PW),
        ] {
            st.add_user(name, role, pw, t, &cheap_cost()).unwrap();
        }
        let finished_run = st.start_run("nightly", Trigger::Schedule, t - 600).unwrap();
        st.log(finished_run, t - 600, "info", "backup of /src started")
            .unwrap();
        st.log(finished_run, t - 590, "info", "3 files, 100 kB")
            .unwrap();
        st.log(finished_run, t - 580, "info", "snapshot saved")
            .unwrap();
        st.finish_run(
            finished_run,
            Status::Succeeded,
            t - 580,
            Some(&json!({"files": 3})),
            None,
        )
        .unwrap();
        drop(st);

        let control = Arc::new(TestControl {
            state_dir: state_dir.clone(),
            jobs: vec![
                JobInfo {
                    name: "nightly".into(),
                    kind: "backup".into(),
                    schedule: "daily".into(),
                    when: "schedule".into(),
                    running: None,
                    next_run: Some("2030-01-01T02:00:00Z".into()),
                },
                JobInfo {
                    name: "verify".into(),
                    kind: "check".into(),
                    schedule: "weekly".into(),
                    when: "idle".into(),
                    running: None,
                    next_run: None,
                },
            ],
            calls: Mutex::new(Vec::new()),
            running: Mutex::new(HashMap::new()),
        });
        let rd = repo_dir.clone();
        let access = RepoAccess::new(
            Box::new(move || {
                Repository::open(Arc::new(LocalBackend::new(&rd)), &[secret()])
                    .map_err(|e| e.to_string())
            }),
            owner(),
        );
        let app_state = AppState::new(&state_dir, control.clone(), access, true).unwrap();
        let app = snapguard_web::router(app_state);
        Fixture {
            dir,
            src,
            state_dir,
            old_id,
            new_id,
            notes_v1,
            notes_v2,
            binary,
            inner,
            finished_run,
            control,
            app,
        }
    }

    fn p(&self, rel: &str) -> String {
        let s = self.src.to_str().unwrap();
        if rel.is_empty() {
            s.to_string()
        } else {
            format!("{s}/{rel}")
        }
    }

    async fn send(&self, req: Request<Body>) -> Resp {
        send(&self.app, req).await
    }

    async fn login(&self, user: &str, password: &str) -> Session {
        let r = self.send(login_request(user, password)).await;
        assert_eq!(r.status, StatusCode::OK, "login of {user}: {}", r.text());
        let cookie = r.header(header::SET_COOKIE.as_str()).unwrap();
        let pair = cookie.split(';').next().unwrap().to_string();
        let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
        Session { cookie: pair, csrf }
    }

    async fn admin(&self) -> Session {
        self.login("admin", ADMIN_PW).await
    }
    async fn operator(&self) -> Session {
        self.login("op", OPERATOR_PW).await
    }
    async fn viewer(&self) -> Session {
        self.login("viewer", VIEWER_PW).await
    }

    async fn get(&self, s: &Session, uri: &str) -> Resp {
        self.send(s.req(Method::GET, uri, None)).await
    }
    async fn put(&self, s: &Session, uri: &str, body: Value) -> Resp {
        self.send(s.req(Method::PUT, uri, Some(body))).await
    }
    async fn post(&self, s: &Session, uri: &str, body: Value) -> Resp {
        self.send(s.req(Method::POST, uri, Some(body))).await
    }
}

/// A logged-in client: the cookie pair to send and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Session {
    fn builder(&self, method: Method, uri: &str) -> axum::http::request::Builder {
        let mut b = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::COOKIE, &self.cookie);
        if method != Method::GET {
            b = b.header("x-csrf-token", &self.csrf);
        }
        b
    }

    fn req(&self, method: Method, uri: &str, body: Option<Value>) -> Request<Body> {
        match body {
            Some(v) => self
                .builder(method, uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => self.builder(method, uri).body(Body::empty()).unwrap(),
        }
    }
}

fn login_request(user: &str, password: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": user, "password": password}).to_string(),
        ))
        .unwrap()
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_string()
    }
    /// The status and the error code, for one-line assertions.
    fn error(&self) -> (StatusCode, String) {
        (self.status, self.code())
    }
}

/// Send a request through the whole router; every answer must carry the security headers.
async fn send(app: &axum::Router, req: Request<Body>) -> Resp {
    let what = format!("{} {}", req.method(), req.uri());
    let r = tokio::time::timeout(Duration::from_secs(60), app.clone().oneshot(req))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 60 s"))
        .unwrap();
    let (parts, body) = r.into_parts();
    let body = tokio::time::timeout(
        Duration::from_secs(60),
        axum::body::to_bytes(body, usize::MAX),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: the body did not end within 60 s"))
    .unwrap();
    let csp = parts
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert!(
        csp.to_str().unwrap().contains("default-src"),
        "{what}: CSP {csp:?}"
    );
    assert_eq!(
        parts
            .headers
            .get(header::X_CONTENT_TYPE_OPTIONS)
            .map(|v| v.as_bytes()),
        Some(&b"nosniff"[..]),
        "{what}: X-Content-Type-Options"
    );
    Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn q(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn tags(snapshot: &Value) -> Vec<String> {
    let mut t: Vec<String> = snapshot["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

// ---------------------------------------------------------------------------------------------
// 1. Authentication is required everywhere

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_session() {
    let f = Fixture::new();
    let (_, doc) = snapguard_web::api();
    let paths = &doc.paths.paths;
    assert!(
        paths.len() >= 20,
        "only {} paths: {:?}",
        paths.len(),
        paths.keys()
    );
    let admin = f.admin().await;
    let mut checked = 0;
    for (path, item) in paths {
        let concrete = if path.starts_with("/runs/") {
            path.replace("{id}", &f.finished_run.to_string())
        } else {
            path.replace("{id}", &f.new_id).replace("{name}", "nightly")
        };
        assert!(!concrete.contains('{'), "unhandled parameter in {path}");
        // Query parameters that make each reading route succeed with a session.
        let query = if path.ends_with("/file") || path == "/versions" {
            format!("?path={}", q(&f.p("notes.txt")))
        } else if path.ends_with("/archive") || path.ends_with("/tree") {
            format!("?path={}", q(&f.p("")))
        } else if path.ends_with("/diff") {
            format!("?against={}", f.old_id)
        } else {
            String::new()
        };
        let uri = format!("/api/v1{concrete}{query}");
        let methods = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ];
        for (m, op) in methods {
            if op.is_none() {
                continue;
            }
            if m == Method::POST && path == "/session" {
                continue;
            }
            let req = Request::builder()
                .method(m.clone())
                .uri(&uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let r = f.send(req).await;
            assert_eq!(
                r.error(),
                (StatusCode::UNAUTHORIZED, "unauthenticated".into()),
                "{m} {uri}: {}",
                r.text()
            );
            // A session cookie that does not exist is no better than none.
            let req = Request::builder()
                .method(m.clone())
                .uri(&uri)
                .header(header::COOKIE, format!("sg_session={}", "ab".repeat(32)))
                .header("x-csrf-token", &admin.csrf)
                .body(Body::empty())
                .unwrap();
            let r = f.send(req).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m} {uri} (bad cookie)");
            // With a session, reading routes answer (so 401 above is about the session).
            if m == Method::GET {
                let r = f.get(&admin, &uri).await;
                assert_eq!(r.status, StatusCode::OK, "GET {uri} as admin: {}", r.text());
            }
            checked += 1;
        }
    }
    assert!(checked >= 22, "only {checked} operations checked");

    // Outside the OpenAPI document: its own route and /metrics.
    let r = f
        .send(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        r.error(),
        (StatusCode::UNAUTHORIZED, "unauthenticated".into())
    );
    let r = f.get(&admin, "/api/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["paths"].as_object().unwrap().len(),
        paths.len(),
        "the served document lists the same paths"
    );
    let r = f
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(
        r.error(),
        (StatusCode::UNAUTHORIZED, "unauthenticated".into())
    );
    assert!(r
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Basic ")));
}

// ---------------------------------------------------------------------------------------------
// 2. Logging in and out

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_session_and_logout() {
    let f = Fixture::new();
    let r = f.send(login_request("admin", "not the password")).await;
    assert_eq!(
        r.error(),
        (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
    );
    assert!(r.header("set-cookie").is_none());
    let wrong_pw_body = r.json();
    let r = f.send(login_request("nobody", "not the password")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json(), wrong_pw_body, "unknown users get the same answer");

    let form = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "username=admin&password={}",
            q(ADMIN_PW)
        )))
        .unwrap();
    let r = f.send(form).await;
    assert_eq!(r.error(), (StatusCode::BAD_REQUEST, "bad_request".into()));
    assert!(r.header("set-cookie").is_none());

    let r = f.send(login_request("admin", ADMIN_PW)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap();
    let attrs: Vec<&str> = cookie.split(';').map(str::trim).collect();
    let (name, value) = attrs[0].split_once('=').unwrap();
    assert_eq!(name, "sg_session");
    assert_eq!(value.len(), 64);
    assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));
    for a in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(attrs.contains(&a), "{a} missing in {cookie}");
    }
    let body = r.json();
    assert_eq!(body["username"], "admin");
    assert_eq!(body["role"], "admin");
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    assert!(csrf.len() >= 32);
    let s = Session {
        cookie: attrs[0].to_string(),
        csrf: csrf.clone(),
    };

    let r = f.get(&s, "/api/v1/session").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["username"], "admin");
    assert_eq!(r.json()["csrf_token"], csrf.as_str());
    assert!(r.json()["expires"].as_str().unwrap().ends_with('Z'));

    let no_csrf = Request::builder()
        .method(Method::DELETE)
        .uri("/api/v1/session")
        .header(header::COOKIE, &s.cookie)
        .body(Body::empty())
        .unwrap();
    let r = f.send(no_csrf).await;
    assert_eq!(r.error(), (StatusCode::FORBIDDEN, "csrf".into()));
    assert_eq!(f.get(&s, "/api/v1/session").await.status, StatusCode::OK);

    let r = f.send(s.req(Method::DELETE, "/api/v1/session", None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let cleared = r.header("set-cookie").unwrap();
    assert!(cleared.starts_with("sg_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let r = f.get(&s, "/api/v1/session").await;
    assert_eq!(
        r.error(),
        (StatusCode::UNAUTHORIZED, "unauthenticated".into())
    );
    let r = f.get(&s, "/api/v1/snapshots").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// 3. The login rate limit

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited() {
    let f = Fixture::new();
    for i in 0..5 {
        let r = f.send(login_request("viewer", "wrong password")).await;
        assert_eq!(
            r.error(),
            (StatusCode::UNAUTHORIZED, "invalid_credentials".into()),
            "attempt {}",
            i + 1
        );
    }
    let r = f.send(login_request("viewer", VIEWER_PW)).await;
    assert_eq!(
        r.error(),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts".into())
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    assert!(r.header("set-cookie").is_none());
}

// ---------------------------------------------------------------------------------------------
// 4. CSRF token and Origin

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_csrf_token_and_our_origin() {
    let f = Fixture::new();
    let admin = f.admin().await;
    let uri = format!("/api/v1/snapshots/{}/tags", f.new_id);
    let body = json!({"tags": ["changed"]}).to_string();

    let wrong = Request::put(&uri)
        .header(header::COOKIE, &admin.cookie)
        .header("x-csrf-token", "0".repeat(admin.csrf.len()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.clone()))
        .unwrap();
    let r = f.send(wrong).await;
    assert_eq!(r.error(), (StatusCode::FORBIDDEN, "csrf".into()));

    let evil = Request::put(&uri)
        .header(header::COOKIE, &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .header(header::HOST, SERVER_HOST)
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.clone()))
        .unwrap();
    let r = f.send(evil).await;
    assert_eq!(r.error(), (StatusCode::FORBIDDEN, "csrf".into()));
    // A login from another site is refused too, even with the right password.
    let mut login = login_request("admin", ADMIN_PW);
    login
        .headers_mut()
        .insert(header::HOST, SERVER_HOST.parse().unwrap());
    login
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    let r = f.send(login).await;
    assert_eq!(r.error(), (StatusCode::FORBIDDEN, "csrf".into()));
    assert!(r.header("set-cookie").is_none());

    let r = f
        .get(&admin, &format!("/api/v1/snapshots/{}", f.new_id))
        .await;
    assert_eq!(
        tags(&r.json()),
        ["daily", "weekly"],
        "refused requests changed nothing"
    );

    let same_site = Request::put(&uri)
        .header(header::COOKIE, &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .header(header::HOST, SERVER_HOST)
        .header(header::ORIGIN, format!("https://{SERVER_HOST}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let r = f.send(same_site).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(tags(&r.json()), ["changed"]);
}

// ---------------------------------------------------------------------------------------------
// 5. Roles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_limit_what_accounts_may_do() {
    let f = Fixture::new();
    let (viewer, op, admin) = (f.viewer().await, f.operator().await, f.admin().await);
    let id = &f.new_id;
    let forbidden = (StatusCode::FORBIDDEN, "forbidden".to_string());
    let target = f.dir.path().join("restore-by-role");
    let restore = json!({"snapshot": id, "path": f.p(""), "target": target});
    let file_uri = format!("/api/v1/snapshots/{id}/file?path={}", q(&f.p("notes.txt")));

    // Viewers read but change nothing.
    assert_eq!(
        f.get(&viewer, "/api/v1/snapshots").await.status,
        StatusCode::OK
    );
    let r = f
        .put(
            &viewer,
            &format!("/api/v1/snapshots/{id}/tags"),
            json!({"tags": ["x"]}),
        )
        .await;
    assert_eq!(r.error(), forbidden);
    let r = f
        .put(
            &viewer,
            &format!("/api/v1/snapshots/{id}/comment"),
            json!({"comment": "x"}),
        )
        .await;
    assert_eq!(r.error(), forbidden);
    let r = f.post(&viewer, "/api/v1/jobs/nightly/run", json!({})).await;
    assert_eq!(r.error(), forbidden);
    assert_eq!(f.get(&viewer, &file_uri).await.error(), forbidden);
    let r = f
        .get(
            &viewer,
            &format!("/api/v1/snapshots/{id}/archive?path={}", q(&f.p(""))),
        )
        .await;
    assert_eq!(r.error(), forbidden);
    assert_eq!(
        f.post(&viewer, "/api/v1/restore", restore.clone())
            .await
            .error(),
        forbidden
    );
    let r = f
        .post(
            &viewer,
            &format!("/api/v1/snapshots/{id}/lock"),
            json!({"duration": "30d"}),
        )
        .await;
    assert_eq!(r.error(), forbidden);
    assert_eq!(f.get(&viewer, "/api/v1/settings").await.error(), forbidden);
    assert!(f.control.calls().is_empty(), "a viewer started something");
    assert!(!target.exists(), "a viewer restored");

    // Operators run jobs, set tags and download, but neither restore to the server, lock,
    // cancel nor read the settings.
    let r = f.post(&op, "/api/v1/jobs/nightly/run", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let run = r.json()["run"].as_i64().unwrap();
    let r = f
        .put(
            &op,
            &format!("/api/v1/snapshots/{id}/tags"),
            json!({"tags": ["by-op"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(tags(&r.json()), ["by-op"]);
    let r = f.get(&op, &file_uri).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_ref(), f.notes_v2.as_slice());
    assert_eq!(
        f.post(&op, "/api/v1/restore", restore.clone())
            .await
            .error(),
        forbidden
    );
    let r = f
        .post(
            &op,
            &format!("/api/v1/snapshots/{id}/lock"),
            json!({"duration": "30d"}),
        )
        .await;
    assert_eq!(r.error(), forbidden);
    let r = f
        .post(&op, &format!("/api/v1/runs/{run}/cancel"), json!({}))
        .await;
    assert_eq!(r.error(), forbidden);
    assert_eq!(f.get(&op, "/api/v1/settings").await.error(), forbidden);
    assert!(!target.exists(), "an operator restored");
    assert_eq!(
        f.control.calls(),
        [Call::Run {
            job: "nightly".into(),
            who: "web user op".into(),
            run
        }]
    );

    // Admins do all of it.
    let r = f
        .post(&admin, &format!("/api/v1/runs/{run}/cancel"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "cancelled");
    let r = f.get(&admin, "/api/v1/settings").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["daemon"]["listen"], SERVER_HOST);
    let r = f.post(&admin, "/api/v1/restore", restore).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(target.join("notes.txt").exists());
}

// ---------------------------------------------------------------------------------------------
// 6. Snapshots: list, detail, tags, comment, lock

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_list_detail_and_annotations() {
    let f = Fixture::new();
    let admin = f.admin().await;
    let (old, new) = (&f.old_id, &f.new_id);

    let r = f.get(&admin, "/api/v1/snapshots").await;
    assert_eq!(r.status, StatusCode::OK);
    let list = r.json();
    assert_eq!(ids(&list), [new.clone(), old.clone()], "newest first");
    assert_eq!(list[0]["hostname"], HOST);
    assert_eq!(list[0]["paths"], json!([f.p("")]));
    assert_eq!(list[0]["parent"], old.as_str());
    assert!(list[0]["time"].as_str().unwrap() > list[1]["time"].as_str().unwrap());

    let filtered = |query: String| {
        let admin = &admin;
        let f = &f;
        async move {
            let r = f.get(admin, &format!("/api/v1/snapshots?{query}")).await;
            assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text());
            ids(&r.json())
        }
    };
    assert_eq!(filtered(format!("host={HOST}")).await.len(), 2);
    assert!(filtered("host=other-host".into()).await.is_empty());
    assert_eq!(filtered("tag=weekly".into()).await, [new.as_str()]);
    assert_eq!(filtered("tag=daily".into()).await.len(), 2);
    assert!(filtered("tag=monthly".into()).await.is_empty());
    assert_eq!(filtered(format!("path={}", q(&f.p("")))).await.len(), 2);
    assert!(filtered(format!("path={}", q("/elsewhere")))
        .await
        .is_empty());
    assert_eq!(
        filtered(format!("host={HOST}&tag=weekly&path={}", q(&f.p("")))).await,
        [new.as_str()]
    );

    let r = f
        .get(&admin, &format!("/api/v1/snapshots/{}", &old[..10]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["id"], old.as_str());
    let r = f.get(&admin, "/api/v1/snapshots/latest").await;
    assert_eq!(r.json()["id"], new.as_str());
    let r = f
        .get(&admin, &format!("/api/v1/snapshots/{}", "0".repeat(64)))
        .await;
    assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found".into()));

    // Tags are replaced as a whole.
    let r = f
        .put(
            &admin,
            &format!("/api/v1/snapshots/{old}/tags"),
            json!({"tags": ["keep", "extra"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(tags(&r.json()), ["extra", "keep"]);
    assert_eq!(r.json()["original_tags"], json!(["daily"]));
    let list = f.get(&admin, "/api/v1/snapshots").await.json();
    assert_eq!(tags(&list[1]), ["extra", "keep"]);
    assert_eq!(
        tags(&list[0]),
        ["daily", "weekly"],
        "the other snapshot is untouched"
    );
    assert_eq!(filtered("tag=daily".into()).await, [new.as_str()]);
    let r = f
        .put(
            &admin,
            &format!("/api/v1/snapshots/{old}/tags"),
            json!({"tags": ["a,b"]}),
        )
        .await;
    assert_eq!(r.error(), (StatusCode::BAD_REQUEST, "bad_request".into()));

    let r = f
        .put(
            &admin,
            &format!("/api/v1/snapshots/{old}/comment"),
            json!({"comment": "before the upgrade"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = f.get(&admin, &format!("/api/v1/snapshots/{old}")).await;
    assert_eq!(r.json()["comment"], "before the upgrade");

    // A lock; then tags may not be removed.
    assert!(r.json()["locked_until"].is_null());
    let r = f
        .post(
            &admin,
            &format!("/api/v1/snapshots/{old}/lock"),
            json!({"duration": "30d"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let until = r.json()["locked_until"].as_str().unwrap().to_string();
    let until = chrono::DateTime::parse_from_rfc3339(&until)
        .unwrap()
        .timestamp();
    let expect = now() + 30 * 86400;
    assert!(
        (until - expect).abs() < 120,
        "locked until {until}, expected about {expect}"
    );
    let r = f.get(&admin, &format!("/api/v1/snapshots/{old}")).await;
    assert!(r.json()["locked_until"].is_string());
    let r = f
        .put(
            &admin,
            &format!("/api/v1/snapshots/{old}/tags"),
            json!({"tags": ["keep"]}),
        )
        .await;
    assert_eq!(
        r.error(),
        (StatusCode::CONFLICT, "conflict".into()),
        "{}",
        r.text()
    );
    let r = f.get(&admin, &format!("/api/v1/snapshots/{old}")).await;
    assert_eq!(tags(&r.json()), ["extra", "keep"]);
    let r = f
        .post(
            &admin,
            &format!("/api/v1/snapshots/{old}/lock"),
            json!({"duration": "-5d"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------------------------
// 7. Trees

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_list_entries() {
    let f = Fixture::new();
    let v = f.viewer().await;
    let tree = |id: String, path: String| {
        let (f, v) = (&f, &v);
        async move {
            f.get(v, &format!("/api/v1/snapshots/{id}/tree?path={}", q(&path)))
                .await
        }
    };
    let r = tree(f.old_id.clone(), f.p("")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["path"], f.p(""));
    assert_eq!(j["node"]["type"], "dir");
    let entries: BTreeMap<String, (String, u64, String)> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                (
                    e["type"].as_str().unwrap().to_string(),
                    e["size"].as_u64().unwrap(),
                    e["path"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        ["data.bin", "notes.txt", "sub"]
    );
    assert_eq!(
        entries["notes.txt"],
        ("file".into(), f.notes_v1.len() as u64, f.p("notes.txt"))
    );
    assert_eq!(entries["data.bin"].1, f.binary.len() as u64);
    assert_eq!(entries["sub"].0, "dir");
    assert!(j["entries"][0].get("content").is_none());

    let r = tree(f.new_id.clone(), f.p("sub/")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let names: Vec<String> = r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["added.txt", "inner.txt"]);
    assert_eq!(r.json()["path"], f.p("sub"));

    let r = tree(f.new_id.clone(), f.p("notes.txt")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["node"]["size"], f.notes_v2.len());
    assert_eq!(r.json()["entries"], json!([]));

    let r = tree(f.old_id.clone(), f.p("sub/added.txt")).await;
    assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found".into()));
    let r = tree(f.old_id.clone(), "src/notes.txt".into()).await;
    assert_eq!(r.error(), (StatusCode::BAD_REQUEST, "bad_request".into()));
    let r = tree(f.old_id.clone(), f.p("sub/../notes.txt")).await;
    assert_eq!(r.error(), (StatusCode::BAD_REQUEST, "bad_request".into()));
    let r = tree("0".repeat(64), f.p("")).await;
    assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found".into()));
}

// ---------------------------------------------------------------------------------------------
// 8. Downloads: files and archives

/// The members of a tar archive: path (without a leading `./`) to (kind, data).
fn read_tar(bytes: &[u8]) -> BTreeMap<String, (snapguard_tar::EntryKind, Vec<u8>)> {
    let mut r = snapguard_tar::Reader::new(std::io::Cursor::new(bytes));
    let mut out = BTreeMap::new();
    while let Some(e) = r.next_entry().unwrap() {
        let mut data = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = r.read_data(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
        }
        let name = String::from_utf8(e.path.clone()).unwrap();
        let name = name
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        out.insert(name, (e.kind, data));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_archives_download_exactly() {
    let f = Fixture::new();
    let op = f.operator().await;
    let file = |id: &str, path: &str, extra: &str| {
        format!("/api/v1/snapshots/{id}/file?path={}{extra}", q(&f.p(path)))
    };

    for (id, path, want) in [
        (&f.old_id, "notes.txt", &f.notes_v1),
        (&f.new_id, "notes.txt", &f.notes_v2),
        (&f.old_id, "data.bin", &f.binary),
        (&f.new_id, "sub/inner.txt", &f.inner),
    ] {
        let r = f.get(&op, &file(id, path, "")).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        assert!(r.body.as_ref() == want.as_slice(), "{path} of {id} differs");
        assert_eq!(r.header("content-length"), Some(want.len().to_string()));
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/octet-stream")
        );
        let name = path.rsplit('/').next().unwrap();
        let cd = r.header("content-disposition").unwrap();
        assert!(cd.starts_with("attachment;"), "{cd}");
        assert!(cd.contains(&format!("filename=\"{name}\"")), "{cd}");
    }

    // Previews: text as text/plain in a sandbox; other types are still downloads.
    let r = f.get(&op, &file(&f.new_id, "notes.txt", "&inline=1")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_ref(), f.notes_v2.as_slice());
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("sandbox") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(r.header("content-disposition").is_none());
    let r = f.get(&op, &file(&f.new_id, "data.bin", "&inline=1")).await;
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert!(r
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));

    let r = f.get(&op, &file(&f.new_id, "sub", "")).await;
    assert_eq!(r.error(), (StatusCode::BAD_REQUEST, "bad_request".into()));
    let r = f.get(&op, &file(&f.old_id, "sub/added.txt", "")).await;
    assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found".into()));

    // A tar of the whole source directory.
    let archive = |id: &str, path: &str, format: &str| {
        format!(
            "/api/v1/snapshots/{id}/archive?path={}&format={format}",
            q(&f.p(path))
        )
    };
    let r = f.get(&op, &archive(&f.new_id, "", "tar")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-tar")
    );
    assert!(r
        .header("content-disposition")
        .unwrap()
        .contains("filename=\"src.tar\""));
    let members = read_tar(&r.body);
    use snapguard_tar::EntryKind;
    assert_eq!(members["notes.txt"], (EntryKind::File, f.notes_v2.clone()));
    assert_eq!(members["data.bin"], (EntryKind::File, f.binary.clone()));
    assert_eq!(members["sub/inner.txt"], (EntryKind::File, f.inner.clone()));
    assert_eq!(members["sub"].0, EntryKind::Dir);
    assert!(members.contains_key("sub/added.txt"));
    let r = f.get(&op, &archive(&f.old_id, "sub", "tar")).await;
    let members = read_tar(&r.body);
    assert_eq!(members["inner.txt"].1, f.inner);
    assert!(!members.contains_key("added.txt"));
    assert!(!members.contains_key("notes.txt"));

    // A zip.
    let r = f.get(&op, &archive(&f.old_id, "", "zip")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-type").as_deref(), Some("application/zip"));
    assert!(r.body.starts_with(b"PK\x03\x04"));
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(r.body.to_vec())).unwrap();
    let mut read = |name: &str| {
        let mut out = Vec::new();
        let idx = (0..z.len())
            .find(|&i| z.by_index(i).unwrap().name().trim_start_matches("./") == name)
            .unwrap_or_else(|| panic!("{name} not in the zip"));
        std::io::Read::read_to_end(&mut z.by_index(idx).unwrap(), &mut out).unwrap();
        out
    };
    assert_eq!(read("notes.txt"), f.notes_v1);
    assert_eq!(read("data.bin"), f.binary);
    assert_eq!(read("sub/inner.txt"), f.inner);

    let r = f.get(&op, &archive(&f.old_id, "", "rar")).await;
    assert_eq!(r.error(), (StatusCode::BAD_REQUEST, "bad_request".into()));
    let r = f.get(&op, &archive(&f.old_id, "nowhere", "tar")).await;
    assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found".into()));
}

// ---------------------------------------------------------------------------------------------
// 9. Versions of a path

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_of_a_path() {
    let f = Fixture::new();
    let v = f.viewer().await;
    let r = f
        .get(
            &v,
            &format!("/api/v1/versions?path={}", q(&f.p("notes.txt"))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["snapshots_searched"], 2);
    let vs = j["versions"].as_array().unwrap();
    assert_eq!(vs.len(), 2, "{j}");
    assert_eq!(vs[0]["version"], 1);
    assert_eq!(vs[0]["size"], f.notes_v1.len());
    assert_eq!(vs[0]["first"]["id"], f.old_id.as_str());
    assert_eq!(vs[0]["last"]["id"], f.old_id.as_str());
    assert_eq!(vs[1]["size"], f.notes_v2.len());
    assert_eq!(vs[1]["first"]["id"], f.new_id.as_str());
    assert_eq!(vs[1]["last"]["id"], f.new_id.as_str());

    // An unchanged file is one version in both snapshots; a new one starts in the second.
    let r = f
        .get(
            &v,
            &format!("/api/v1/versions?path={}", q(&f.p("data.bin"))),
        )
        .await;
    let vs = r.json()["versions"].as_array().unwrap().clone();
    assert_eq!(vs.len(), 1);
    assert_eq!(vs[0]["first"]["id"], f.old_id.as_str());
    assert_eq!(vs[0]["last"]["id"], f.new_id.as_str());
    assert_eq!(vs[0]["snapshots"], json!([f.old_id, f.new_id]));
    let r = f
        .get(
            &v,
            &format!("/api/v1/versions?path={}", q(&f.p("sub/added.txt"))),
        )
        .await;
    let vs = r.json()["versions"].as_array().unwrap().clone();
    assert_eq!(vs.len(), 1);
    assert_eq!(vs[0]["first"]["id"], f.new_id.as_str());

    let r = f
        .get(
            &v,
            &format!("/api/v1/versions?path={}&host=other", q(&f.p("notes.txt"))),
        )
        .await;
    assert_eq!(r.json()["snapshots_searched"], 0);
    let r = f.get(&v, "/api/v1/versions?path=notes.txt").await;
    assert_eq!(r.error(), (StatusCode::BAD_REQUEST, "bad_request".into()));
}

// ---------------------------------------------------------------------------------------------
// 10. Diff

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_between_snapshots() {
    let f = Fixture::new();
    let v = f.viewer().await;
    let r = f
        .get(
            &v,
            &format!("/api/v1/snapshots/{}/diff?against={}", f.new_id, f.old_id),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["from"]["id"], f.old_id.as_str());
    assert_eq!(j["to"]["id"], f.new_id.as_str());
    let changes: BTreeMap<String, String> = j["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes.get(&f.p("notes.txt")).map(String::as_str),
        Some("modified"),
        "{changes:?}"
    );
    assert_eq!(
        changes.get(&f.p("sub/added.txt")).map(String::as_str),
        Some("added")
    );
    assert!(
        !changes.contains_key(&f.p("data.bin")),
        "unchanged file listed: {changes:?}"
    );
    assert!(!changes.contains_key(&f.p("sub/inner.txt")));
    assert_eq!(j["changed"], changes.len());
    assert_eq!(j["truncated"], false);
    assert_eq!(j["totals"]["modified"], f.notes_v2.len());
    assert_eq!(j["totals"]["added"], "new in the second backup\n".len());
    let groups = j["groups"].as_array().unwrap();
    assert!(!groups.is_empty());
    let sum: u64 = groups.iter().map(|g| g["modified"].as_u64().unwrap()).sum();
    assert_eq!(sum, f.notes_v2.len() as u64, "groups add up to the totals");

    // Without ?against, the parent is used.
    let r = f
        .get(&v, &format!("/api/v1/snapshots/{}/diff", f.new_id))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["from"]["id"], f.old_id.as_str());
    let r = f
        .get(&v, &format!("/api/v1/snapshots/{}/diff", f.old_id))
        .await;
    assert_eq!(r.error(), (StatusCode::BAD_REQUEST, "bad_request".into()));
}

// ---------------------------------------------------------------------------------------------
// 11. Restore to the server

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_to_a_directory_on_the_server() {
    let f = Fixture::new();
    let admin = f.admin().await;
    let target = f.dir.path().join("restored");
    let r = f
        .post(
            &admin,
            "/api/v1/restore",
            json!({"snapshot": &f.old_id[..12], "path": f.p(""), "target": target}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["snapshot"], f.old_id.as_str());
    assert_eq!(std::fs::read(target.join("notes.txt")).unwrap(), f.notes_v1);
    assert_eq!(std::fs::read(target.join("data.bin")).unwrap(), f.binary);
    assert_eq!(
        std::fs::read(target.join("sub/inner.txt")).unwrap(),
        f.inner
    );
    assert!(!target.join("sub/added.txt").exists());

    // One file of the newer snapshot into another directory.
    let target2 = f.dir.path().join("one-file");
    let r = f
        .post(
            &admin,
            "/api/v1/restore",
            json!({"snapshot": "latest", "path": f.p("notes.txt"), "target": target2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        std::fs::read(target2.join("notes.txt")).unwrap(),
        f.notes_v2
    );

    for bad in ["relative/target", "/tmp/../etc"] {
        let r = f
            .post(
                &admin,
                "/api/v1/restore",
                json!({"snapshot": &f.old_id, "path": f.p(""), "target": bad}),
            )
            .await;
        assert_eq!(
            r.error(),
            (StatusCode::BAD_REQUEST, "bad_request".into()),
            "{bad}"
        );
    }
    let r = f
        .post(
            &admin,
            "/api/v1/restore",
            json!({"snapshot": &f.old_id, "path": f.p(""), "target": target, "overwrite": "sometimes"}),
        )
        .await;
    assert_eq!(r.error(), (StatusCode::BAD_REQUEST, "bad_request".into()));
}

// ---------------------------------------------------------------------------------------------
// 12. Jobs and runs

/// The events of a server-sent event stream: (event, data).
fn parse_sse(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .filter_map(|block| {
            let mut event = String::new();
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
                }
            }
            // Keep-alive comments have neither.
            (!event.is_empty() || !data.is_empty()).then(|| (event, data.join("\n")))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_runs_logs_and_events() {
    let f = Fixture::new();
    let (op, admin) = (f.operator().await, f.admin().await);

    let r = f.get(&op, "/api/v1/jobs").await;
    assert_eq!(r.status, StatusCode::OK);
    let jobs = r.json();
    assert_eq!(jobs.as_array().unwrap().len(), 2);
    assert_eq!(jobs[0]["name"], "nightly");
    assert_eq!(jobs[0]["kind"], "backup");
    assert_eq!(jobs[0]["next_run"], "2030-01-01T02:00:00Z");
    assert_eq!(jobs[0]["last_run"]["id"], f.finished_run);
    assert_eq!(jobs[0]["last_run"]["status"], "succeeded");
    assert_eq!(jobs[0]["last_run"]["duration_s"], 20);
    assert_eq!(jobs[1]["name"], "verify");
    assert!(jobs[1]["last_run"].is_null());

    let r = f.post(&op, "/api/v1/jobs/nightly/run", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let run = r.json()["run"].as_i64().unwrap();
    assert!(run > f.finished_run);
    assert_eq!(
        f.control.calls(),
        [Call::Run {
            job: "nightly".into(),
            who: "web user op".into(),
            run
        }]
    );
    let r = f.post(&op, "/api/v1/jobs/nightly/run", json!({})).await;
    assert_eq!(r.error(), (StatusCode::CONFLICT, "conflict".into()));
    let r = f.post(&op, "/api/v1/jobs/no-such-job/run", json!({})).await;
    assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found".into()));
    let jobs = f.get(&op, "/api/v1/jobs").await.json();
    assert_eq!(jobs[0]["running"], run);
    assert_eq!(jobs[0]["last_run"]["id"], run);
    assert_eq!(jobs[0]["last_run"]["status"], "running");

    let r = f.get(&op, "/api/v1/runs").await;
    assert_eq!(r.status, StatusCode::OK);
    let runs = r.json();
    let run_ids: Vec<i64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(run_ids, [run, f.finished_run], "newest first");
    assert_eq!(runs[0]["trigger"], "manual");
    assert_eq!(runs[1]["trigger"], "schedule");
    assert_eq!(runs[1]["summary"], json!({"files": 3}));
    let r = f.get(&op, "/api/v1/runs?job=verify").await;
    assert_eq!(r.json(), json!([]));
    let r = f.get(&op, "/api/v1/runs?limit=1").await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);

    let r = f
        .get(&op, &format!("/api/v1/runs/{}", f.finished_run))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["job"], "nightly");
    assert_eq!(r.json()["status"], "succeeded");
    assert!(r.json()["ended"].is_string());
    let r = f.get(&op, "/api/v1/runs/987654").await;
    assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found".into()));

    let r = f
        .get(&op, &format!("/api/v1/runs/{}/log", f.finished_run))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let lines: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "backup of /src started",
            "3 files, 100 kB",
            "snapshot saved"
        ]
    );
    assert_eq!(r.json()[2]["seq"], 3);
    let r = f.get(&op, &format!("/api/v1/runs/{run}/log")).await;
    assert_eq!(r.json()[0]["line"], "started by web user op");
    let r = f.get(&op, "/api/v1/runs/987654/log").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The events of a finished run: its lines, its status, the end; then the stream ends
    // (`send` collects the whole body, with a time limit).
    let r = f
        .get(&op, &format!("/api/v1/runs/{}/events", f.finished_run))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = parse_sse(&r.text());
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        kinds,
        ["log", "log", "log", "status", "end"],
        "{}",
        r.text()
    );
    let first: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(first["line"], "backup of /src started");
    let status: Value = serde_json::from_str(&events[3].1).unwrap();
    assert_eq!(status["status"], "succeeded");
    let end: Value = serde_json::from_str(&events[4].1).unwrap();
    assert_eq!(end["id"], f.finished_run);

    // A running run's stream follows it until it ends.
    let state_dir = f.state_dir.clone();
    let finisher = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(1200));
        let st = State::open(&state_dir).unwrap();
        st.log(run, now(), "info", "half way").unwrap();
        std::thread::sleep(Duration::from_millis(700));
        st.log(run, now(), "info", "done").unwrap();
        st.finish_run(run, Status::Failed, now(), None, Some("disk full"))
            .unwrap();
    });
    let r = f.get(&op, &format!("/api/v1/runs/{run}/events")).await;
    finisher.await.unwrap();
    let events = parse_sse(&r.text());
    let logs: Vec<String> = events
        .iter()
        .filter(|(e, _)| e == "log")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["line"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(logs, ["started by web user op", "half way", "done"]);
    let statuses: Vec<String> = events
        .iter()
        .filter(|(e, _)| e == "status")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(statuses, ["running", "failed"]);
    assert_eq!(events.last().unwrap().0, "end");

    // Cancelling: only a running run.
    let r = f
        .post(
            &admin,
            &format!("/api/v1/runs/{}/cancel", f.finished_run),
            json!({}),
        )
        .await;
    assert_eq!(r.error(), (StatusCode::CONFLICT, "conflict".into()));
    let r = f
        .post(&admin, &format!("/api/v1/runs/{run}/cancel"), json!({}))
        .await;
    assert_eq!(r.error(), (StatusCode::CONFLICT, "conflict".into()));
    assert!(
        !f.control
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Cancel { .. })),
        "the daemon was asked to cancel a finished run"
    );
    f.control.running.lock().unwrap().clear();
    let r = f.post(&op, "/api/v1/jobs/verify/run", json!({})).await;
    let run2 = r.json()["run"].as_i64().unwrap();
    let r = f
        .post(&admin, &format!("/api/v1/runs/{run2}/cancel"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "cancelled");
    assert_eq!(
        f.control.calls().last(),
        Some(&Call::Cancel {
            run: run2,
            who: "web user admin".into()
        })
    );
}

// ---------------------------------------------------------------------------------------------
// 13. /metrics

fn basic(user: &str, password: &str) -> String {
    use base64ct::Encoding;
    format!(
        "Basic {}",
        base64ct::Base64::encode_string(format!("{user}:{password}").as_bytes())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_for_scrapers() {
    let f = Fixture::new();
    let scrape = |auth: String| {
        Request::get("/metrics")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .unwrap()
    };
    let r = f.send(scrape(basic("viewer", VIEWER_PW))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"snapguard_repository_up 1"), "{text}");
    assert!(
        lines.contains(&"snapguard_repository_snapshots 2"),
        "{text}"
    );
    assert!(
        lines.contains(&"snapguard_job_runs_total{job=\"nightly\",status=\"succeeded\"} 1"),
        "{text}"
    );
    assert!(lines.contains(&"# TYPE snapguard_job_runs_total counter"));
    assert!(lines.contains(&"snapguard_job_running{job=\"nightly\"} 0"));
    assert!(lines.contains(&"snapguard_job_last_success_duration_seconds{job=\"nightly\"} 20"));
    let src = f.p("");
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "snapguard_last_snapshot_timestamp_seconds{{host=\"{HOST}\",paths=\"{src}\"}} "
        ))),
        "{text}"
    );

    let r = f.send(scrape(basic("viewer", "wrong password"))).await;
    assert_eq!(
        r.error(),
        (StatusCode::UNAUTHORIZED, "unauthenticated".into())
    );
    assert!(r.header("www-authenticate").is_some());
    let r = f.send(scrape(basic("nobody", VIEWER_PW))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = f.send(scrape("Basic !!!".into())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // A session works as well.
    let admin = f.admin().await;
    let r = f.get(&admin, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("snapguard_repository_snapshots 2"));
}

// ---------------------------------------------------------------------------------------------
// 14. Security headers and unknown routes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_and_unknown_routes() {
    let f = Fixture::new();
    // `send` checks Content-Security-Policy and nosniff on every answer of every test; here
    // the remaining kinds of answers.
    // Unknown paths cannot be probed without a session.
    let r = f
        .send(Request::get("/api/v1/nope").body(Body::empty()).unwrap())
        .await;
    assert_eq!(
        r.error(),
        (StatusCode::UNAUTHORIZED, "unauthenticated".into())
    );
    let r = f.get(&f.viewer().await, "/api/v1/nope").await;
    assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found".into()));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = f.viewer().await;
    let r = f.get(&v, "/api/v1/snapshots/nope/nope").await;
    assert_eq!(r.error(), (StatusCode::NOT_FOUND, "not_found".into()));
    let r = f.get(&v, "/api/v1/repository").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["snapshots"], 2);
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let r = f.get(&v, "/api/v1/stats").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["snapshots"].as_array().unwrap().len(), 2);
    // Malformed requests (axum's extractor rejections) are JSON errors as well.
    let admin = f.admin().await;
    for (m, uri, body, status) in [
        (
            Method::GET,
            "/api/v1/versions".to_string(),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/runs/abc".to_string(),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            "/api/v1/jobs".to_string(),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PUT,
            format!("/api/v1/snapshots/{}/tags", f.new_id),
            Some(json!({"tag": 1})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let r = f.send(admin.req(m.clone(), &uri, body)).await;
        assert_eq!(r.status, status, "{m} {uri}: {}", r.text());
        assert_eq!(r.code(), "bad_request", "{m} {uri}: {}", r.text());
        assert!(!r.json()["message"].as_str().unwrap().is_empty());
    }
    let r = f
        .send(
            admin
                .builder(Method::PUT, &format!("/api/v1/snapshots/{}/tags", f.new_id))
                .body(Body::from("tags=x"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.code(), "bad_request");
    // The web UI's page.
    let r = f.send(Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
}

// 15. Limits found by review: comments, locks, bodies, streams of a session that ended, the
// OpenAPI document itself.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_limits_are_refused() {
    let f = Fixture::new();
    let (op, admin) = (f.operator().await, f.admin().await);
    let uri = format!("/api/v1/snapshots/{}/comment", f.new_id);
    let r = f
        .put(&op, &uri, json!({"comment": "red \u{1b}[31m alert"}))
        .await;
    assert_eq!(r.error().1, "bad_request", "{}", r.text());
    let r = f
        .put(&op, &uri, json!({"comment": "two lines\n\tand a tab"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let lock = format!("/api/v1/snapshots/{}/lock", f.new_id);
    for d in ["292471208677y195d15h", "101y"] {
        let r = f.post(&admin, &lock, json!({"duration": d})).await;
        assert_eq!(r.error().1, "bad_request", "{d}: {}", r.text());
    }
    let r = f
        .post(&admin, &lock, json!({"until": "9999-01-01T00:00:00Z"}))
        .await;
    assert_eq!(r.error().1, "bad_request", "{}", r.text());
    let r = f
        .get(&admin, &format!("/api/v1/snapshots/{}", f.new_id))
        .await;
    assert!(r.json()["locked_until"].is_null(), "{}", r.text());
    // A body over 64 KiB is refused before any handler reads it.
    let big = "x".repeat(70 * 1024);
    let r = f.put(&op, &uri, json!({ "comment": big })).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    let r = f
        .send(
            Request::post("/api/v1/session")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!(
                    "{{\"username\":\"{big}\",\"password\":\"x\"}}"
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    // Names that cannot be accounts are refused without being counted: the real account
    // can still log in after many of them.
    for _ in 0..10 {
        let r = f.send(login_request("admin\nINFO forged", "x")).await;
        assert_eq!(r.error().1, "invalid_credentials");
    }
    f.login("admin", ADMIN_PW).await;
    // The OpenAPI document lists itself.
    let doc = f.get(&admin, "/api/v1/openapi.json").await.json();
    assert!(doc["paths"]["/openapi.json"]["get"].is_object(), "{doc:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_with_its_session() {
    let f = Fixture::new();
    let v = f.viewer().await;
    // A run that never ends: its stream would go on for ever.
    let st = State::open(&f.state_dir).unwrap();
    let run = st.start_run("nightly", Trigger::Manual, now()).unwrap();
    st.log(run, now(), "info", "working").unwrap();
    let resp = f
        .app
        .clone()
        .oneshot(v.req(Method::GET, &format!("/api/v1/runs/{run}/events"), None))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body();
    // Disable the account: its sessions end, and so must the stream.
    st.set_disabled("viewer", true).unwrap();
    let all = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        axum::body::to_bytes(body, 1 << 20),
    )
    .await
    .expect("the stream did not end when its session did")
    .unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(!text.contains("event: end"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_changed_elsewhere_is_seen_by_the_next_request() {
    let f = Fixture::new();
    let v = f.viewer().await;
    let r = f.get(&v, "/api/v1/repository").await;
    assert_eq!(r.json()["append_only"], false, "{}", r.text());
    // Another process switches the repository to append-only mode.
    let mut other = Repository::open(
        Arc::new(LocalBackend::new(f.dir.path().join("repo"))),
        &[secret()],
    )
    .unwrap();
    other.enable_append_only().unwrap();
    let r = f.get(&v, "/api/v1/repository").await;
    assert_eq!(r.json()["append_only"], true, "{}", r.text());
    // And what append-only forbids is refused by the API too.
    let admin = f.admin().await;
    let r = f
        .post(
            &admin,
            &format!("/api/v1/snapshots/{}/lock", f.new_id),
            json!({"duration": "1d"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "locks are additions: {}",
        r.text()
    );
}
