//! A minimal client for the admin API, used by `tagcache purge`.
//!
//! It speaks plain HTTP/1.1 over one TCP connection: the admin listener is
//! loopback or a private address, and a full HTTP client crate would be most
//! of the binary's size for one request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Why a call to the admin API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The admin URL is not `http://host:port`.
    #[error("admin URL must look like http://127.0.0.1:9090, got {0:?}")]
    BadUrl(String),
    /// Connecting, writing or reading failed.
    #[error("admin API unreachable: {0}")]
    Io(#[from] std::io::Error),
    /// The answer was not HTTP.
    #[error("admin API sent an invalid response")]
    BadResponse,
}

/// An admin API answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

/// POSTs a JSON body to `admin` + `path`.
///
/// # Errors
/// See [`ClientError`].
pub fn post_json(
    admin: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<Answer, ClientError> {
    let hostport = admin
        .strip_prefix("http://")
        .map(|s| s.trim_end_matches('/'))
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .ok_or_else(|| ClientError::BadUrl(admin.to_string()))?;
    let mut stream = TcpStream::connect(hostport)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(ClientError::BadResponse)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(ClientError::BadResponse)?;
    Ok(Answer {
        status,
        body: body.to_string(),
    })
}
