//! The web UI in a real headless Chromium, driven over WebDriver (chromedriver) from Rust:
//! log in, read the dashboard, browse a snapshot, find an old version of a file in the time
//! machine and download it (the bytes must equal the original), restore a folder, switch to
//! dark mode (remembered across a reload), and use it at a phone's width. Screenshots at
//! desktop and phone sizes are saved as test artifacts (`target/test-artifacts/browser/`, or
//! `SNAPGUARD_TEST_ARTIFACTS`).
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them the test says so and passes,
//! except under CI (CI=true), where it fails.

use crate::maintenance::{os, Bg};
use crate::support::cmd::{Sg, Ws};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thirtyfour::prelude::*;

const PASSWORD: &str = "browser password 1";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `tmp`: the temporary directory of chromedriver and Chromium (their profile and scratch
/// directories), inside the test's workspace so that nothing is left in /tmp.
fn start_chromedriver(log: &Path, tmp: &Path) -> Driver {
    let port = free_port();
    std::fs::create_dir_all(tmp).expect("tmp dir");
    let child = Command::new(CHROMEDRIVER)
        .env("TMPDIR", tmp)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    driver
}

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("SNAPGUARD_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts")
        })
        .join("browser");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// Poll a JavaScript condition (its `return` value must become truthy).
async fn wait_js(d: &Arc<WebDriver>, what: &str, script: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let v = d
            .execute(script, Vec::<Value>::new())
            .await
            .map(|r| r.json().clone())
            .unwrap_or(Value::Null);
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return v;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let shot = artifacts().join(format!("failed-{}.png", what.replace(' ', "-")));
            let _ = d.screenshot(&shot).await;
            let body = d
                .execute("return document.body.innerText", Vec::<Value>::new())
                .await
                .map(|r| r.json().clone())
                .unwrap_or(Value::Null);
            panic!(
                "timed out waiting for {what}; screenshot {}; page: {body}",
                shot.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn click(d: &Arc<WebDriver>, css: &str) {
    wait_js(
        d,
        css,
        &format!(
            "const e = document.querySelector({css:?}); return !!e && e.offsetParent !== null;"
        ),
    )
    .await;
    d.find(By::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn shot(d: &Arc<WebDriver>, name: &str) {
    let path = artifacts().join(format!("{name}.png"));
    d.screenshot(&path).await.expect("screenshot");
    let png = std::fs::read(&path).expect("screenshot file");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 2000,
        "{name}: not a real PNG"
    );
}

fn wait_for_file(dir: &Path, name: &str) -> Vec<u8> {
    let t0 = Instant::now();
    loop {
        let p = dir.join(name);
        // Chromium writes NAME.crdownload and renames it when done.
        if p.exists() {
            return std::fs::read(p).expect("downloaded file");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no download of {name} in {}: {:?}",
            dir.display(),
            std::fs::read_dir(dir).map(|r| r.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_web_ui_in_chromium() {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED: chromium or chromedriver is not installed");
        return;
    }
    let ws = Ws::new();
    let mut sg = Sg::init(&ws, None);
    // Two snapshots of a small tree: readme.txt changes in between.
    let src = ws.path("src");
    std::fs::create_dir_all(src.join("docs/notes")).expect("mkdir");
    let v1 = b"the first version of the readme\n".to_vec();
    let v2 = b"the second version of the readme, longer\n".to_vec();
    std::fs::write(src.join("docs/readme.txt"), &v1).expect("write");
    std::fs::write(src.join("docs/notes/todo.md"), b"- test the UI\n").expect("write");
    sg.backup(&[&src], &[]);
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(src.join("docs/readme.txt"), &v2).expect("write");
    sg.backup(&[&src], &["--tag", "second"]);
    let config = ws.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.docs]\nkind = \"backup\"\npaths = [\"{}\"]\nschedule = \"@yearly\"\n",
            src.display()
        ),
    )
    .expect("config");
    sg.config = config;
    sg.extra_env.push((
        "SNAPGUARD_DAEMON_SOCKET".into(),
        ws.path("daemon.sock").into(),
    ));
    let state = ws.path("state");
    let state_arg = state.display().to_string();
    crate::web::add_admin(&sg, &state, PASSWORD);
    let mut daemon = Bg::spawn(&sg, &[os("daemon"), os("--state-dir"), os(&state_arg)]);
    let port = crate::web::wait_for_address(&state, &mut daemon);
    let downloads = ws.path("downloads");
    std::fs::create_dir_all(&downloads).expect("mkdir");
    let chromedriver = start_chromedriver(&artifacts().join("chromedriver.log"), &ws.path("tmp"));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let base = format!("https://localhost:{port}");
    let restore_target = ws.path("restored");
    rt.block_on(async {
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(CHROMIUM).expect("binary");
        for a in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ] {
            caps.add_arg(a).expect("arg");
        }
        // The daemon's self-signed certificate.
        caps.accept_insecure_certs(true).expect("insecure certs");
        caps.add_experimental_option(
            "prefs",
            json!({
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            }),
        )
        .expect("prefs");
        let d = Arc::new(
            WebDriver::new(format!("http://127.0.0.1:{}", chromedriver.port), caps)
                .await
                .expect("a Chromium session"),
        );

        // Log in.
        d.goto(&base).await.expect("open the UI");
        wait_js(&d, "the login form", "return !!document.querySelector('#login-form') && document.querySelector('#login-form').offsetParent !== null").await;
        shot(&d, "login-desktop").await;
        d.find(By::Id("username")).await.expect("username").send_keys("admin").await.expect("type");
        d.find(By::Id("password")).await.expect("password").send_keys("wrong password").await.expect("type");
        click(&d, "#login-submit").await;
        wait_js(&d, "the login error", "const e = document.querySelector('#login-error'); return e && e.textContent.trim().length > 0").await;
        let pw = d.find(By::Id("password")).await.expect("password");
        pw.clear().await.expect("clear");
        pw.send_keys(PASSWORD).await.expect("type");
        click(&d, "#login-submit").await;

        // The dashboard: cards and charts drawn from the repository.
        wait_js(&d, "the dashboard", "return document.querySelectorAll('#dashboard [data-card]').length >= 3").await;
        wait_js(&d, "the growth chart", "const s = document.querySelector('svg#chart-growth'); return s && s.querySelectorAll('path,polyline,rect,circle').length > 0").await;
        let text = wait_js(&d, "dashboard text", "return document.querySelector('#dashboard').innerText").await;
        assert!(text.as_str().unwrap_or("").contains('2'), "snapshot count missing: {text}");
        shot(&d, "dashboard-desktop").await;

        // Snapshots: both are listed.
        click(&d, "a[data-nav=snapshots]").await;
        wait_js(&d, "the snapshots table", "return document.querySelectorAll('#snapshots-table tr[data-snapshot]').length === 2").await;
        shot(&d, "snapshots-desktop").await;
        // Compare the newest with the one before: the treemap of changed bytes and the list.
        click(&d, "#snapshots-table a[data-action=compare]").await;
        wait_js(&d, "the treemap", "const t = document.querySelector('svg#diff-treemap'); return t && t.querySelectorAll('rect').length > 0").await;
        wait_js(&d, "the changed file", "const t = document.querySelector('#diff-table'); return t && t.innerText.includes('readme.txt')").await;
        shot(&d, "diff-desktop").await;

        // Browse the newest snapshot down to docs/.
        let latest = sg.run(["--json", "snapshots"]).expect_code(0).json();
        let newest = latest
            .as_array()
            .and_then(|a| a.iter().max_by_key(|s| s["time"].as_str().map(str::to_owned)))
            .and_then(|s| s["id"].as_str())
            .expect("newest id")
            .to_string();
        let docs = format!("{}/docs", src.display());
        d.goto(format!("{base}/#/browse/{newest}?path={docs}")).await.expect("browse");
        let readme = format!("{docs}/readme.txt");
        wait_js(&d, "the listing", &format!("return !!document.querySelector('#browse-table tr[data-path=\"{readme}\"]')")).await;
        wait_js(&d, "the breadcrumbs", "return document.querySelector('#breadcrumbs').innerText.includes('docs')").await;
        shot(&d, "browse-desktop").await;

        // Restore the folder to a path on the server.
        wait_js(&d, "the restore form", "return !!document.querySelector('#restore-form')").await;
        let target = d.find(By::Id("restore-target")).await.expect("target");
        target.clear().await.expect("clear");
        target.send_keys(restore_target.display().to_string()).await.expect("type");
        click(&d, "#restore-submit").await;
        wait_js(&d, "the restore result", "const e = document.querySelector('#restore-result'); return e && /\\d/.test(e.textContent)").await;

        // The time machine: two versions of readme.txt; download the old one.
        d.goto(format!("{base}/#/timemachine?path={readme}")).await.expect("time machine");
        wait_js(&d, "the versions", "return document.querySelectorAll('#tm-timeline .tm-version').length === 2").await;
        shot(&d, "timemachine-desktop").await;
        let first = d
            .find(By::Css("#tm-timeline .tm-version"))
            .await
            .expect("the oldest version");
        first.click().await.expect("select it");
        // Keyboard: the timeline is reachable and its versions take the focus.
        let focused = wait_js(&d, "focus", "document.querySelector('#tm-timeline .tm-version').focus(); return document.activeElement && document.activeElement.classList.contains('tm-version')").await;
        assert_eq!(focused, Value::Bool(true));
        wait_js(&d, "the download link", "const a = document.querySelector('#tm-download'); return a && a.getAttribute('href')").await;
        click(&d, "#tm-download").await;
        let got = wait_for_file(&downloads, "readme.txt");
        assert_eq!(got, v1, "the downloaded old version differs from the original");
        // The newer version against the older one, line by line.
        let versions = d.find_all(By::Css("#tm-timeline .tm-version")).await.expect("versions");
        versions[1].click().await.expect("select the newer version");
        click(&d, "#tm-details [data-action=compare]").await;
        let diff = wait_js(&d, "the line diff", "const p = document.querySelector('pre.diff-view'); return p && p.innerText").await;
        let diff = diff.as_str().unwrap_or_default();
        assert!(
            diff.contains("- the first version of the readme")
                && diff.contains("+ the second version of the readme, longer"),
            "{diff}"
        );

        // Dark mode, remembered across a reload.
        d.goto(format!("{base}/#/dashboard")).await.expect("dashboard");
        click(&d, "#theme-toggle").await;
        let theme = wait_js(&d, "the theme", "return document.documentElement.getAttribute('data-theme')").await;
        let other = if theme == "dark" { "light" } else { "dark" };
        if theme != "dark" {
            click(&d, "#theme-toggle").await;
            wait_js(&d, "dark", "return document.documentElement.getAttribute('data-theme') === 'dark'").await;
        }
        let _ = other;
        assert_eq!(
            wait_js(&d, "stored theme", "return localStorage.getItem('sg-theme')").await,
            "dark"
        );
        d.refresh().await.expect("reload");
        wait_js(&d, "dark after reload", "return document.documentElement.getAttribute('data-theme') === 'dark'").await;
        wait_js(&d, "the dashboard again", "return document.querySelectorAll('#dashboard [data-card]').length >= 3").await;
        let bg = wait_js(&d, "background", "return getComputedStyle(document.body).backgroundColor").await;
        let dark_bg = bg.as_str().unwrap_or("").to_string();
        shot(&d, "dashboard-dark-desktop").await;

        // A phone: 375 px wide, nothing wider than the screen.
        d.set_window_rect(0, 0, 375, 812).await.expect("phone size");
        for (page, ready) in [
            ("dashboard", "return document.querySelectorAll('#dashboard [data-card]').length >= 3"),
            ("snapshots", "return document.querySelectorAll('#snapshots-table tr[data-snapshot]').length === 2"),
            ("timemachine", "return !!document.querySelector('#tm-path')"),
        ] {
            d.goto(format!("{base}/#/{page}")).await.expect("page");
            wait_js(&d, page, ready).await;
            let width = wait_js(&d, "width", "return [document.documentElement.scrollWidth, window.innerWidth]").await;
            let (scroll, inner) = (width[0].as_i64().unwrap_or(0), width[1].as_i64().unwrap_or(0));
            assert!(scroll <= inner, "{page}: the page scrolls sideways at 375 px ({scroll} > {inner})");
            shot(&d, &format!("{page}-phone-dark")).await;
        }
        // Back to light: the colours change.
        click(&d, "#theme-toggle").await;
        wait_js(&d, "light", "return document.documentElement.getAttribute('data-theme') === 'light'").await;
        let light_bg = wait_js(&d, "background", "return getComputedStyle(document.body).backgroundColor").await;
        assert_ne!(light_bg.as_str().unwrap_or(""), dark_bg, "dark and light look the same");
        d.goto(format!("{base}/#/timemachine?path={readme}")).await.expect("page");
        wait_js(&d, "the versions", "return document.querySelectorAll('#tm-timeline .tm-version').length === 2").await;
        shot(&d, "timemachine-phone-light").await;

        let d = Arc::try_unwrap(d).unwrap_or_else(|_| panic!("the driver is still shared"));
        d.quit().await.expect("quit");
    });
    // The restored folder holds the newest contents.
    let restored_readme = walk_find(&restore_target, "readme.txt").expect("restored readme");
    assert_eq!(std::fs::read(restored_readme).expect("read"), v2);
    drop(chromedriver);
    daemon.signal(rustix::process::Signal::TERM);
    assert_eq!(daemon.finish().code, Some(0));
    eprintln!("screenshots in {}", artifacts().display());
}

fn walk_find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if p.is_dir() {
            if let Some(f) = walk_find(&p, name) {
                return Some(f);
            }
        }
    }
    None
}
