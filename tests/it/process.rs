//! The `tagcache run` process as a supervisor sees it: a taken port ends it
//! at once with a non-zero exit, SIGHUP never stops it, and a graceful stop
//! ends as soon as the last request in flight is answered.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{free_port, free_ports, wait_for_port, Origin};

fn config(listen: u16, admin: u16, upstream: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tagcache-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("run-{listen}.yaml"));
    let sock = dir.join(format!("upgrade-{listen}.sock"));
    let sock = sock.display();
    std::fs::write(
        &path,
        format!(
            r#"listen: "127.0.0.1:{listen}"
upstream:
  address: "{upstream}"
admin:
  listen: "127.0.0.1:{admin}"
  token: "t"
server:
  threads: 1
  grace_period: 10s
  upgrade_sock: "{sock}"
tenant:
  workspace: {{ header: X-Workspace-ID }}
routes:
  - name: item
    match: "GET /item/{{id}}"
    ttl: 60s
"#
        ),
    )
    .unwrap();
    path
}

fn run(config: &std::path::Path) -> Child {
    run_logging(config, "warn")
}

/// `tagcache run` with its process log at `level` (`RUST_LOG` unset, so that
/// the level applies), stderr piped.
fn run_logging(config: &std::path::Path, level: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(["run", "-c"])
        .arg(config)
        .env_remove("RUST_LOG")
        .env("TAGCACHE_LOG", level)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tagcache")
}

/// Everything the exited `child` wrote to its piped stderr.
fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// Waits up to `limit` for the process to exit; its exit code and how long it took.
fn exit_within(child: &mut Child, limit: Duration) -> Option<(i32, Duration)> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status.code().unwrap_or(-1), start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

fn get(port: u16, target: &str, headers: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn a_taken_admin_port_ends_the_process_at_once_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = taken.local_addr().unwrap().port();
    let mut child = run(&config(free_port(), admin, "127.0.0.1:1"));
    let (code, took) =
        exit_within(&mut child, Duration::from_secs(5)).expect("still running with a taken port");
    assert_ne!(code, 0);
    assert!(took < Duration::from_secs(5));
    let err = stderr_of(&mut child);
    assert!(err.contains(&format!("127.0.0.1:{admin}")), "{err}");
    drop(taken);
}

#[test]
fn a_taken_proxy_port_ends_the_process_at_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().port();
    let mut child = run(&config(listen, free_port(), "127.0.0.1:1"));
    let (code, _) =
        exit_within(&mut child, Duration::from_secs(5)).expect("still running with a taken port");
    assert_ne!(code, 0);
}

#[test]
fn sighup_does_not_stop_the_server_and_an_idle_sigterm_stops_it_at_once() {
    let origin = Origin::start();
    let [listen, admin] = free_ports();
    let mut child = run(&config(listen, admin, &origin.addr.to_string()));
    wait_for_port(listen);
    wait_for_port(admin);
    signal(&child, "HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped the server"
    );
    assert!(get(admin, "/health", "").starts_with("HTTP/1.1 200"));
    assert!(get(listen, "/item/1", "X-Workspace-ID: w1\r\n").starts_with("HTTP/1.1 200"));
    // Idle: the grace period is 10 s, the stop takes far less.
    signal(&child, "TERM");
    let (code, took) =
        exit_within(&mut child, Duration::from_secs(5)).expect("idle SIGTERM waited");
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn sigterm_answers_a_connection_accepted_before_its_request_arrived() {
    let origin = Origin::start();
    let [listen, admin] = free_ports();
    let mut child = run(&config(listen, admin, &origin.addr.to_string()));
    wait_for_port(listen);
    // Accepted, but its request is not sent yet when the stop begins.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", listen)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    write!(
        s,
        "GET /item/late HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Workspace-ID: w1\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let (code, _) = exit_within(&mut child, Duration::from_secs(8)).expect("did not stop");
    assert_eq!(code, 0);
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_stops() {
    let origin = Origin::start();
    let [listen, admin] = free_ports();
    let mut child = run(&config(listen, admin, &origin.addr.to_string()));
    wait_for_port(listen);
    let slow = std::thread::spawn(move || {
        get(
            listen,
            "/item/slow",
            "X-Workspace-ID: w1\r\nx-origin-delay-ms: 1500\r\n",
        )
    });
    std::thread::sleep(Duration::from_millis(400));
    let start = Instant::now();
    signal(&child, "TERM");
    let (code, _) = exit_within(&mut child, Duration::from_secs(8)).expect("did not stop");
    let answer = slow.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(code, 0);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "stopped before the request ended: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn sighup_and_tagcache_reload_apply_the_edited_file() {
    let origin = Origin::start();
    let [listen, admin] = free_ports();
    let path = config(listen, admin, &origin.addr.to_string());
    let mut child = run(&path);
    wait_for_port(listen);
    wait_for_port(admin);
    let status = |target: &str| {
        let answer = get(listen, target, "X-Workspace-ID: w1\r\n");
        answer
            .lines()
            .find_map(|l| l.strip_prefix("x-cache-status: "))
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(status("/other/1"), "BYPASS");
    let text = std::fs::read_to_string(&path).unwrap();
    let with_other =
        format!("{text}  - name: other\n    match: \"GET /other/{{id}}\"\n    ttl: 60s\n");
    std::fs::write(&path, &with_other).unwrap();
    signal(&child, "HUP");
    let start = Instant::now();
    while status("/other/2") == "BYPASS" {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "SIGHUP did not reload"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.try_wait().unwrap().is_none());

    // The CLI: a broken file is refused (exit 1, the problem named), then a
    // good one applied (exit 0).
    let cli = |env_token: &str| {
        Command::new(env!("CARGO_BIN_EXE_tagcache"))
            .args(["reload", "--admin", &format!("http://127.0.0.1:{admin}")])
            .env("TAGCACHE_ADMIN_TOKEN", env_token)
            .output()
            .unwrap()
    };
    std::fs::write(&path, with_other.replace("ttl: 60s", "ttl: forever")).unwrap();
    let out = cli("t");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("forever"), "{err}");
    std::fs::write(&path, &text).unwrap();
    let out = cli("t");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("routes_removed"));
    assert_eq!(status("/other/3"), "BYPASS");
    signal(&child, "TERM");
    assert!(exit_within(&mut child, Duration::from_secs(5)).is_some());
}

#[test]
fn a_binary_upgrade_hands_the_sockets_over_without_a_failed_request() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let origin = Origin::start();
    let [listen, admin] = free_ports();
    let path = config(listen, admin, &origin.addr.to_string());
    let mut old = run(&path);
    wait_for_port(listen);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let answer = get(
                        listen,
                        &format!("/item/{}", (c * 7 + i) % 20),
                        "X-Workspace-ID: w1\r\n",
                    );
                    if answer.starts_with("HTTP/1.1 200") {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The new process waits for the sockets; the old one hands them over on SIGQUIT.
    let mut new = Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(["run", "--upgrade", "-c"])
        .arg(&path)
        .env("TAGCACHE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the new process");
    std::thread::sleep(Duration::from_millis(500));
    signal(&old, "QUIT");
    let (code, _) =
        exit_within(&mut old, Duration::from_secs(20)).expect("the old process drained");
    assert_eq!(code, 0);
    // The new process serves on the same port.
    std::thread::sleep(Duration::from_millis(300));
    assert!(new.try_wait().unwrap().is_none(), "the new process exited");
    let served_before = ok.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert!(
        ok.load(Ordering::Relaxed) > served_before,
        "the new process did not serve"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "{} ok",
        ok.load(Ordering::Relaxed)
    );
    signal(&new, "TERM");
    assert!(exit_within(&mut new, Duration::from_secs(5)).is_some());
}

#[test]
fn pingora_log_records_and_tagcache_events_reach_the_same_log() {
    // Pingora logs through the `log` crate and tagcache through `tracing`:
    // the subscriber's bridge must carry both to stderr.
    let origin = Origin::start();
    let [listen, admin] = free_ports();
    let mut child = run_logging(&config(listen, admin, &origin.addr.to_string()), "info");
    wait_for_port(listen);
    signal(&child, "TERM");
    exit_within(&mut child, Duration::from_secs(5)).expect("idle SIGTERM waited");
    let err = stderr_of(&mut child);
    assert!(
        err.contains("pingora_core::server: Server starting"),
        "{err}"
    );
    assert!(
        err.contains("tagcache::cli::run: tagcache started"),
        "{err}"
    );
}
