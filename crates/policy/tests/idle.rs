//! The idle-time decision, replayed from readings: PSI and load-average files as the kernel
//! writes them (tests/data, read off this machine while it compiled), and a trace of an evening
//! in which the user leaves, comes back and leaves again before the deadline.

use rstest::rstest;
use snapguard_policy::schedule::idle::{
    classify, parse_loadavg, parse_pressure, Activity, IdleAction, IdleSample, IdleThresholds,
    IdleWatch,
};

const CPU_BUSY: &str = include_str!("data/pressure-cpu-busy.txt");
const IO: &str = include_str!("data/pressure-io.txt");
const LOAD_BUSY: &str = include_str!("data/loadavg-busy.txt");

#[test]
fn kernel_files_parse() {
    let cpu = parse_pressure(CPU_BUSY).expect("cpu");
    assert!(cpu.some.avg10 > 5.0, "{cpu:?}");
    assert_eq!(cpu.full.map(|f| f.avg10), Some(0.0));
    let io = parse_pressure(IO).expect("io");
    assert!(io.full.is_some());
    assert!(parse_loadavg(LOAD_BUSY).expect("load") > 1.0);
    // A CPU file of kernels before 5.13: no "full" line.
    let old = parse_pressure("some avg10=0.00 avg60=0.01 avg300=0.00 total=12\n").expect("old");
    assert_eq!(old.full, None);
}

#[rstest]
#[case("")]
#[case("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")]
#[case("some avg10=0.00 avg60=0.00 total=0\n")]
#[case("some avg10=-1 avg60=0.00 avg300=0.00 total=0\n")]
#[case("some avg10=nan avg60=0.00 avg300=0.00 total=0\n")]
#[case("other avg10=0 avg60=0 avg300=0 total=0\n")]
#[case("some avg10 avg60=0 avg300=0\n")]
fn malformed_pressure_is_an_error(#[case] text: &str) {
    assert!(parse_pressure(text).is_err(), "{text:?} accepted");
}

#[rstest]
#[case("")]
#[case("x 1 2")]
#[case("-1.0 0 0 1/1 1")]
fn malformed_loadavg_is_an_error(#[case] text: &str) {
    assert!(parse_loadavg(text).is_err(), "{text:?} accepted");
}

fn sample(at: i64, load1: f64, cpu: f64, io: f64, session: Option<bool>) -> IdleSample {
    let p = |v: f64| {
        parse_pressure(&format!(
            "some avg10={v:.2} avg60={v:.2} avg300={v:.2} total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
        ))
        .expect("pressure")
    };
    IdleSample {
        at,
        load1,
        cpus: 2,
        cpu: Some(p(cpu)),
        io: Some(p(io)),
        session_idle: session,
    }
}

#[test]
fn the_recorded_busy_machine_is_not_idle() {
    let s = IdleSample {
        at: 0,
        load1: parse_loadavg(LOAD_BUSY).expect("load"),
        cpus: 2,
        cpu: Some(parse_pressure(CPU_BUSY).expect("cpu")),
        io: Some(parse_pressure(IO).expect("io")),
        session_idle: None,
    };
    assert!(
        matches!(classify(&s, &IdleThresholds::default()), Activity::Busy(ref why) if why.contains("load")),
        "{:?}",
        classify(&s, &IdleThresholds::default())
    );
}

#[rstest]
#[case(0.2, 0.0, 0.0, Some(true), "idle")]
#[case(0.2, 0.0, 0.0, None, "idle")]
#[case(0.2, 0.0, 0.0, Some(false), "user")]
#[case(0.8, 0.0, 0.0, Some(true), "load")]
#[case(0.2, 12.0, 0.0, Some(true), "CPU pressure")]
#[case(0.2, 0.0, 30.0, None, "I/O pressure")]
fn readings_are_classified(
    #[case] load: f64,
    #[case] cpu: f64,
    #[case] io: f64,
    #[case] session: Option<bool>,
    #[case] want: &str,
) {
    let a = classify(
        &sample(0, load, cpu, io, session),
        &IdleThresholds::default(),
    );
    let got = match &a {
        Activity::Idle => "idle".to_string(),
        Activity::UserActive => "user".to_string(),
        Activity::Busy(why) => why.clone(),
    };
    assert!(got.contains(want), "{a:?}");
}

/// An evening replayed minute by minute: the user works until 20:00, leaves, the load decays;
/// the job starts after two idle minutes, pauses when the user returns at 20:10, resumes when
/// they leave at 20:20, and the next night it is forced at its deadline.
#[test]
fn an_evening_trace() {
    let th = IdleThresholds::default();
    let deadline = 10_000;
    let mut w = IdleWatch::new();
    let mut running = false;
    let mut log = Vec::new();
    // (minute, load1, cpu %, io %, session idle)
    let trace: &[(i64, f64, f64, f64, Option<bool>)] = &[
        (0, 1.9, 20.0, 3.0, Some(false)),
        (1, 1.5, 15.0, 1.0, Some(false)),
        (2, 1.0, 8.0, 1.0, Some(true)),
        (3, 0.7, 4.0, 0.5, Some(true)),
        (4, 0.7, 1.0, 0.1, Some(true)),
        (5, 0.3, 0.5, 0.0, Some(true)),
        (6, 0.2, 0.2, 0.0, Some(true)),
        (7, 0.1, 0.1, 0.0, Some(true)),
        (8, 1.4, 9.0, 12.0, Some(true)),
        (9, 1.6, 9.0, 12.0, Some(true)),
        (10, 1.8, 9.0, 12.0, Some(false)),
        (15, 1.8, 9.0, 12.0, Some(false)),
        (20, 1.2, 9.0, 12.0, Some(true)),
    ];
    for &(min, load, cpu, io, session) in trace {
        let s = sample(min * 60, load, cpu, io, session);
        let a = w.observe(&s, &th, running, deadline);
        if matches!(a, IdleAction::StartIdle | IdleAction::StartDeadline) {
            running = true;
        }
        log.push((min, a));
    }
    let actions: Vec<String> = log
        .iter()
        .map(|(m, a)| {
            let short = match a {
                IdleAction::Wait(_) => "wait",
                IdleAction::StartIdle => "start-idle",
                IdleAction::StartDeadline => "start-deadline",
                IdleAction::Run => "run",
                IdleAction::Throttle => "throttle",
                IdleAction::Pause => "pause",
            };
            format!("{m}:{short}")
        })
        .collect();
    assert_eq!(
        actions,
        [
            "0:wait",
            "1:wait",
            "2:wait",
            "3:wait",
            "4:wait",
            // Idle (load 0.15 per CPU) from minute 5; two minutes later it starts.
            "5:wait",
            "6:wait",
            "7:start-idle",
            // Its own load does not stop it.
            "8:run",
            "9:run",
            "10:pause",
            "15:pause",
            "20:run",
        ],
        "{log:#?}"
    );

    // The next night the user never leaves: the job starts at the deadline, and with the user
    // present past the deadline it is throttled, not paused.
    let mut w = IdleWatch::new();
    let busy = |at| sample(at, 1.9, 20.0, 3.0, Some(false));
    assert!(matches!(
        w.observe(&busy(deadline - 60), &th, false, deadline),
        IdleAction::Wait(ref why) if why.contains("session")
    ));
    assert_eq!(
        w.observe(&busy(deadline), &th, false, deadline),
        IdleAction::StartDeadline
    );
    assert_eq!(
        w.observe(&busy(deadline + 60), &th, true, deadline),
        IdleAction::Throttle
    );
}

#[test]
fn a_busy_reading_restarts_the_idle_stretch() {
    let th = IdleThresholds::default();
    let mut w = IdleWatch::new();
    let quiet = |at| sample(at, 0.1, 0.0, 0.0, None);
    assert!(matches!(
        w.observe(&quiet(0), &th, false, 1_000_000),
        IdleAction::Wait(_)
    ));
    assert!(matches!(
        w.observe(&quiet(100), &th, false, 1_000_000),
        IdleAction::Wait(_)
    ));
    // A short burst of I/O: the two minutes count again from the next quiet reading.
    assert!(matches!(
        w.observe(&sample(110, 0.1, 0.0, 40.0, None), &th, false, 1_000_000),
        IdleAction::Wait(ref why) if why.contains("I/O")
    ));
    assert_eq!(w.idle_since(), None);
    assert!(matches!(
        w.observe(&quiet(120), &th, false, 1_000_000),
        IdleAction::Wait(_)
    ));
    assert!(matches!(
        w.observe(&quiet(200), &th, false, 1_000_000),
        IdleAction::Wait(_)
    ));
    assert_eq!(
        w.observe(&quiet(240), &th, false, 1_000_000),
        IdleAction::StartIdle
    );
}

/// `loginctl show-session` output as logind prints it (systemd 252, Debian 12).
#[test]
fn logind_sessions_say_whether_someone_is_there() {
    use snapguard_policy::schedule::idle::{parse_session_props, user_presence};
    let desktop_busy = parse_session_props("Type=wayland\nClass=user\nActive=yes\nIdleHint=no\n");
    let desktop_idle = parse_session_props("Type=wayland\nClass=user\nActive=yes\nIdleHint=yes\n");
    let ssh = parse_session_props("Type=tty\nClass=user\nActive=no\nIdleHint=no\n");
    let greeter = parse_session_props("Type=x11\nClass=greeter\nActive=yes\nIdleHint=no\n");
    assert_eq!(user_presence(&[]), None);
    assert_eq!(
        user_presence(std::slice::from_ref(&greeter)),
        None,
        "a login screen is nobody"
    );
    assert_eq!(
        user_presence(std::slice::from_ref(&ssh)),
        None,
        "inactive sessions do not count"
    );
    assert_eq!(user_presence(&[desktop_idle.clone(), ssh]), Some(true));
    assert_eq!(
        user_presence(&[desktop_idle, desktop_busy, greeter]),
        Some(false)
    );
}
