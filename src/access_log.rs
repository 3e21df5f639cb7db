//! The access log: one line per request, JSON or text, to stdout or a file.
//!
//! The request path only formats its line and hands it to a bounded channel;
//! one writer thread batches lines into buffered writes and flushes when the
//! channel goes quiet, so a request never waits on the disk. When the channel
//! is full (the disk cannot keep up) lines are dropped, never
//! queued without bound. The file is reopened on [`AccessLog::reopen`]
//! (SIGUSR1, after logrotate moved it) and, with `max_size`, rotated to
//! `FILE.1` when it grows past that size.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{AccessFormat, AccessLogConfig};

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 16 * 1024;

/// Opens `config`'s access log file for appending once, so that a path that
/// cannot be written stops start-up or a reload with the path named.
///
/// # Errors
/// The path and what the system said.
pub fn check(config: &crate::config::Config) -> Result<(), String> {
    if let Some(path) = config.log.access.as_ref().and_then(|a| a.path.as_ref()) {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open the access log {}: {e}", path.display()))?;
    }
    Ok(())
}

/// One request, as the access log records it.
#[derive(Debug, Default)]
pub struct Line<'a> {
    /// The request id (`X-Request-ID`).
    pub request_id: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The path, and the query unless the config drops it.
    pub path: &'a str,
    /// The query, if any.
    pub query: Option<&'a str>,
    /// The matched route, if any.
    pub route: Option<&'a str>,
    /// The workspace, as given or hashed.
    pub workspace: Option<&'a str>,
    /// The user, as given or hashed.
    pub user: Option<&'a str>,
    /// `X-Cache-Status`.
    pub cache_status: Option<&'a str>,
    /// `X-Cache-Layer`.
    pub layer: Option<&'a str>,
    /// The response status (0 when none was sent).
    pub status: u16,
    /// Body bytes sent.
    pub bytes: usize,
    /// From the request's start to its end.
    pub total: Duration,
    /// Waiting for the origin's response header, when it was asked.
    pub origin: Option<Duration>,
}

/// An open access log.
#[derive(Debug)]
pub struct AccessLog {
    format: AccessFormat,
    query: bool,
    hash_identities: bool,
    tx: SyncSender<Vec<u8>>,
    reopen: Arc<AtomicBool>,
}

enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File {
        path: PathBuf,
        out: BufWriter<File>,
        written: u64,
    },
}

impl Sink {
    fn open(path: &Option<PathBuf>) -> io::Result<Sink> {
        Ok(match path {
            None => Sink::Stdout(BufWriter::new(io::stdout())),
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                let written = file.metadata().map(|m| m.len()).unwrap_or(0);
                Sink::File {
                    path: path.clone(),
                    out: BufWriter::new(file),
                    written,
                }
            }
        })
    }

    fn write(&mut self, line: &[u8]) {
        // A failed write (a full disk) loses lines, never the request.
        let _ = match self {
            Sink::Stdout(out) => out.write_all(line),
            Sink::File { out, written, .. } => {
                *written += line.len() as u64;
                out.write_all(line)
            }
        };
    }

    fn flush(&mut self) {
        let _ = match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File { out, .. } => out.flush(),
        };
    }
}

impl AccessLog {
    /// Opens the log `config` describes and starts its writer thread.
    ///
    /// # Errors
    /// When the file cannot be opened for appending.
    pub fn open(config: &AccessLogConfig, hash_identities: bool) -> io::Result<AccessLog> {
        let mut sink = Sink::open(&config.path)?;
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let reopen = Arc::new(AtomicBool::new(false));
        let flag = reopen.clone();
        let max_size = config.max_size;
        std::thread::Builder::new()
            .name("tagcache-access-log".into())
            .spawn(move || loop {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(line) => {
                        sink.write(&line);
                        // Take whatever else is waiting in the same write.
                        while let Ok(line) = rx.try_recv() {
                            sink.write(&line);
                        }
                        sink.flush();
                    }
                    Err(RecvTimeoutError::Timeout) => sink.flush(),
                    Err(RecvTimeoutError::Disconnected) => {
                        sink.flush();
                        return;
                    }
                }
                let full = matches!(&sink, Sink::File { written, .. } if max_size.is_some_and(|m| *written >= m));
                if flag.swap(false, Ordering::AcqRel) || full {
                    sink.flush();
                    if let (Sink::File { path, .. }, true) = (&sink, full) {
                        let mut rotated = path.clone().into_os_string();
                        rotated.push(".1");
                        let _ = std::fs::rename(path, rotated);
                    }
                    if let Ok(fresh) = Sink::open(&match &sink {
                        Sink::File { path, .. } => Some(path.clone()),
                        Sink::Stdout(_) => None,
                    }) {
                        sink = fresh;
                    }
                }
            })?;
        Ok(AccessLog {
            format: config.format,
            query: config.query,
            hash_identities,
            tx,
            reopen,
        })
    }

    /// Reopens the file at its path (after logrotate moved it away).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
        // Wake the writer so the reopen does not wait for the next line.
        let _ = self.tx.try_send(Vec::new());
    }

    /// Records one request.
    pub fn record(&self, line: &Line<'_>) {
        let text = self.format(line, SystemTime::now());
        // A full queue (or a writer gone) drops the line rather than wait.
        let _ = self.tx.try_send(text.into_bytes());
    }

    /// The line as written, newline included.
    fn format(&self, l: &Line<'_>, now: SystemTime) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let hashed = |v: Option<&str>| match (v, self.hash_identities) {
            (Some(v), true) => Some(hash_identity(v)),
            (Some(v), false) => Some(v.to_string()),
            (None, _) => None,
        };
        let workspace = hashed(l.workspace);
        let user = hashed(l.user);
        let path = match (l.query, self.query) {
            (Some(q), true) => format!("{}?{q}", l.path),
            _ => l.path.to_string(),
        };
        let time = rfc3339(now);
        match self.format {
            AccessFormat::Json => {
                // Written field by field: a serde_json::Value map per line
                // cost a hit more than half again its instructions.
                let mut out = String::with_capacity(256);
                out.push_str("{\"time\":\"");
                out.push_str(&time);
                out.push('"');
                let mut field = |name: &str, value: Option<&str>| {
                    out.push_str(",\"");
                    out.push_str(name);
                    out.push_str("\":");
                    match value {
                        Some(v) => json_string(&mut out, v),
                        None => out.push_str("null"),
                    }
                };
                field("request_id", Some(l.request_id));
                field("method", Some(l.method));
                field("path", Some(&path));
                field("route", l.route);
                field("workspace", workspace.as_deref());
                field("user", user.as_deref());
                field("cache_status", l.cache_status);
                field("layer", l.layer);
                let _ = write!(
                    out,
                    ",\"status\":{},\"bytes\":{},\"duration_ms\":{:.3},\"origin_ms\":",
                    l.status,
                    l.bytes,
                    ms(l.total)
                );
                match l.origin {
                    Some(d) => {
                        let _ = write!(out, "{:.3}", ms(d));
                    }
                    None => out.push_str("null"),
                }
                out.push_str("}\n");
                out
            }
            AccessFormat::Text => {
                let dash = |v: Option<&str>| v.unwrap_or("-").to_string();
                let mut out = String::with_capacity(160);
                let _ = write!(
                    out,
                    "{time} {} {} {} {} {} {} route={} workspace={} user={} bytes={} duration={:.3}ms origin=",
                    l.request_id,
                    l.method,
                    path.replace(' ', "%20"),
                    l.status,
                    dash(l.cache_status),
                    dash(l.layer),
                    dash(l.route),
                    dash(workspace.as_deref()),
                    dash(user.as_deref()),
                    l.bytes,
                    ms(l.total),
                );
                match l.origin {
                    Some(d) => {
                        let _ = write!(out, "{:.3}ms", ms(d));
                    }
                    None => out.push('-'),
                }
                out.push('\n');
                out
            }
        }
    }
}

/// Appends `v` as a JSON string (quotes, backslashes and control
/// characters escaped).
fn json_string(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A workspace or user id as the log shows it with `hash_identities`: the
/// first 16 hex digits of its SHA-256, stable across instances.
pub fn hash_identity(v: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(v.as_bytes())[..8])
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), from the civil-from-days algorithm.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        let at = |s: u64, ms: u32| rfc3339(UNIX_EPOCH + Duration::new(s, ms * 1_000_000));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_921_199, 999), "2026-11-29T02:59:59.999Z");
    }

    #[test]
    fn json_lines_escape_what_a_client_sends() {
        let log = AccessLog::open(
            &AccessLogConfig {
                format: AccessFormat::Json,
                path: None,
                query: true,
                max_size: None,
            },
            false,
        )
        .unwrap();
        let line = log.format(
            &Line {
                request_id: "r\"1",
                method: "GET",
                path: "/a\\b",
                query: Some("q=\u{1}x"),
                workspace: Some("w\n1"),
                status: 200,
                bytes: 5,
                total: Duration::from_micros(1500),
                origin: Some(Duration::from_millis(2)),
                ..Line::default()
            },
            UNIX_EPOCH,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["request_id"], "r\"1");
        assert_eq!(v["path"], "/a\\b?q=\u{1}x");
        assert_eq!(v["workspace"], "w\n1");
        assert!(v["route"].is_null() && v["user"].is_null());
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["origin_ms"], 2.0);
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        assert!(line.ends_with("}\n"));
    }

    #[test]
    fn identities_hash_to_sixteen_hex_digits() {
        let h = hash_identity("w1");
        assert_eq!(h.len(), 16);
        assert_eq!(h, hash_identity("w1"));
        assert_ne!(h, hash_identity("w2"));
    }
}
