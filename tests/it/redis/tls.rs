//! `rediss://`: the Redis tier over TLS, with the server's certificate
//! verified against a CA made for the test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{two_synced, wait_l2_stored, RedisOpts, RedisServer};
use crate::util::Origin;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a server certificate for 127.0.0.1 in `dir`.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=tagcache test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_tier_works_over_tls() {
    let dir = std::env::temp_dir().join(format!("tagcache-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    certificates(&dir);
    let path = |f: &str| dir.join(f).display().to_string();
    let redis = RedisServer::start_tls(&path("server.crt"), &path("server.key"), &path("ca.crt"));
    // rustls-native-certs reads the trusted roots from here; only TLS connections look.
    std::env::set_var("SSL_CERT_FILE", path("ca.crt"));

    let origin = Origin::start();
    let mut opts = RedisOpts::server(&redis);
    opts.target = format!("url: \"rediss://127.0.0.1:{}\"", redis.port);
    let (a, b) = two_synced(&origin, &opts).await;
    a.get("/item/tls", Some("w1"), None).await;
    wait_l2_stored(&a, 1).await;
    let hit = b.get("/item/tls", Some("w1"), None).await;
    assert_eq!((hit.cache(), hit.layer()), ("HIT", "REDIS"));
    let version = origin.bump();
    a.purge_tags(&["item:w1:tls"], false).await;
    let start = Instant::now();
    while b.get("/item/tls", Some("w1"), None).await.json()["version"] != version {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "purge never reached B"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
