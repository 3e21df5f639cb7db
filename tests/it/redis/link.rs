//! A TCP link between one instance and Redis that a test can freeze: bytes
//! stop flowing both ways while every connection stays open, as when a
//! network path stalls (the instance's heartbeats and pings go unanswered,
//! while other instances still reach Redis).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A forwarder from an ephemeral port to `target`, on its own thread.
pub struct Link {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Link {
    /// Forwards every connection made to [`Self::url`] to `target` (`host:port`).
    pub fn to(target: &str) -> Link {
        let target = target.to_string();
        let frozen = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind link");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("link address");
        let (f, s) = (frozen.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("link runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("link listener");
                while !s.load(Ordering::Relaxed) {
                    let Ok(Ok((client, _))) =
                        tokio::time::timeout(Duration::from_millis(50), listener.accept()).await
                    else {
                        continue;
                    };
                    let Ok(server) = TcpStream::connect(&target).await else {
                        continue;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, f.clone(), s.clone()));
                    tokio::spawn(pump(sr, cw, f.clone(), s.clone()));
                }
            });
        });
        Link { addr, frozen, stop }
    }

    /// The Redis URL that goes through the link.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Stops forwarding: bytes already sent wait in the sockets' buffers.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Forwards again, starting with what waited.
    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if frozen.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        // Read with a short timeout so a freeze takes effect between reads.
        let n = match tokio::time::timeout(Duration::from_millis(20), from.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        // What was read before a freeze is held back until the thaw.
        while frozen.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
