//! The `tagcache` command: `check`, `--version`, and `run` refusing bad configs.

use std::process::Command;

fn tagcache(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagcache"));
    cmd.args(args).env_remove("TAGCACHE_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run tagcache");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tagcache-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn version() {
    let (code, out, _) = tagcache(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("tagcache "), "{out}");
}

#[test]
fn example_config_passes_check() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/tagcache.example.yaml");
    let (code, out, err) = tagcache(&["check", "-c", example], &[("TAGCACHE_ADMIN_TOKEN", "t")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok"));
    // Identity from headers is trusted: check says so.
    assert!(err.contains("warning"), "{err}");
}

#[test]
fn every_problem_is_listed_with_its_position() {
    let path = write(
        "bad.yaml",
        r#"listen: "127.0.0.1:8080"
upstream:
  address: "127.0.0.1:3000"
  conect_timeout: 2s
admin:
  token: "${TAGCACHE_UNSET_VARIABLE}"
storage:
  memory:
    max_size: lots
routes:
  - name: a
    match: "GET /x/{id}"
    tll: 10s
  - name: b
    match: "POST /y"
    ttl: 5 parsecs
"#,
    );
    let (code, _out, err) = tagcache(&["check", "-c", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    let file = path.display().to_string();
    for (line, needle) in [
        (4, "conect_timeout"),
        (6, "TAGCACHE_UNSET_VARIABLE"),
        (9, "lots"),
        (13, "tll"),
        (15, "POST"),
        (16, "parsecs"),
    ] {
        let prefix = format!("{file}:{line}:");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(needle)),
            "no error at line {line} mentioning {needle:?} in:\n{err}"
        );
    }
    assert!(err.contains("did you mean \"connect_timeout\""), "{err}");
    assert!(err.contains("did you mean \"ttl\""), "{err}");
}

#[test]
fn run_refuses_an_invalid_config() {
    let path = write("invalid-run.yaml", "upstream: {}\n");
    let (code, _, err) = tagcache(&["run", "-c", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("address"), "{err}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let (code, _, err) = tagcache(&["check", "-c", "/nonexistent/tagcache.yaml"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/tagcache.yaml"), "{err}");
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits() {
    let origin = crate::util::Origin::start();
    let [port, admin] = crate::util::free_ports();
    let path = write(
        "graceful.yaml",
        &format!(
            r#"listen: "127.0.0.1:{port}"
upstream: {{ address: "{}" }}
admin: {{ listen: "127.0.0.1:{admin}" }}
server: {{ threads: 1, grace_period: 2s }}
routes: []
"#,
            origin.addr
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(["run", "-c", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::util::wait_for_port(port);
    let in_flight = std::thread::spawn(move || {
        crate::util::raw_get(port, "/slow", &[("x-origin-delay-ms", "1000")])
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, _) = in_flight.join().unwrap();
    assert_eq!(status, 200, "the in-flight request was cut off");
    let mut exited = None;
    for _ in 0..150 {
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let Some(_status) = exited else {
        let _ = child.kill();
        panic!(
            "tagcache still running {:?} after SIGTERM",
            started.elapsed()
        );
    };
    assert!(started.elapsed() < std::time::Duration::from_secs(12));
}
