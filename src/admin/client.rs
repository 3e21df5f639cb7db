//! The admin API client behind the operator commands (`tagcache purge`,
//! `reload`, `health`).
//!
//! It is `ureq`: blocking, so the commands need no runtime, with rustls (ring)
//! and the Mozilla root certificates for `https://` admin URLs, so no system
//! TLS library is needed. Connect and read timeouts are explicit, and an HTTP
//! error status is an [`Answer`] like any other: the caller decides what a
//! refusal means.

use std::time::Duration;

use ureq::Agent;

/// Why a call to the admin API got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The admin URL is not `http://` or `https://` with a host.
    #[error("admin URL must look like http://127.0.0.1:9090 or https://host:port, got {0:?}")]
    BadUrl(String),
    /// Connecting, or waiting for the answer, took longer than its timeout.
    #[error("no answer from the admin listener at {url} within the {what} timeout ({after:?})")]
    Timeout {
        /// The URL called.
        url: String,
        /// `connect` or `read`.
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The admin listener could not be reached (refused, unknown host, TLS
    /// failure, connection reset) or sent something that is not HTTP.
    #[error("cannot reach the admin listener at {url}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What went wrong, from the HTTP client.
        reason: String,
    },
}

/// An admin API answer, whatever its status.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Connect and read timeouts of admin calls.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Opening the connection (TCP, then TLS for `https://`).
    pub connect: Duration,
    /// Sending the request and receiving the whole answer.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(30),
        }
    }
}

/// A client for one admin listener.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    timeouts: Timeouts,
    agent: Agent,
}

/// Most bytes of an answer read (admin answers are small JSON).
const MAX_ANSWER: u64 = 16 << 20;

impl AdminClient {
    /// A client for the admin listener at `base` (`http://host:port` or
    /// `https://host:port`, a trailing `/` allowed), sending `token` as
    /// `Authorization: Bearer` when given.
    ///
    /// # Errors
    /// [`ClientError::BadUrl`] when `base` is not such a URL.
    pub fn new(base: &str, token: Option<&str>, timeouts: Timeouts) -> Result<Self, ClientError> {
        let trimmed = base.trim_end_matches('/');
        let uri: http::Uri = trimmed
            .parse()
            .map_err(|_| ClientError::BadUrl(base.to_string()))?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        let bare = uri.path_and_query().is_none_or(|pq| pq.as_str() == "/");
        if !scheme_ok || uri.host().is_none_or(str::is_empty) || !bare {
            return Err(ClientError::BadUrl(base.to_string()));
        }
        let agent: Agent = Agent::config_builder()
            .timeout_connect(Some(timeouts.connect))
            .timeout_recv_response(Some(timeouts.read))
            .timeout_recv_body(Some(timeouts.read))
            .timeout_send_body(Some(timeouts.read))
            .http_status_as_error(false)
            .max_redirects(0)
            // The admin listener is on loopback or a private network: never
            // through an HTTP_PROXY of the environment (curl would; the
            // container's health check must not).
            .proxy(None)
            .user_agent(concat!("tagcache/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(AdminClient {
            base: trimmed.to_string(),
            token: token.filter(|t| !t.is_empty()).map(str::to_string),
            timeouts,
            agent,
        })
    }

    /// The admin listener's base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET base + path`.
    ///
    /// # Errors
    /// When no answer came; see [`ClientError`].
    pub fn get(&self, path: &str) -> Result<Answer, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.answer(&url, req.call())
    }

    /// `POST base + path` with a JSON body.
    ///
    /// # Errors
    /// When no answer came; see [`ClientError`].
    pub fn post_json(&self, path: &str, body: &str) -> Result<Answer, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .agent
            .post(&url)
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.answer(&url, req.send(body))
    }

    fn answer(
        &self,
        url: &str,
        sent: Result<http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, ClientError> {
        let mut response = sent.map_err(|e| self.error(url, e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(|e| self.error(url, e))?;
        Ok(Answer { status, body })
    }

    fn error(&self, url: &str, e: ureq::Error) -> ClientError {
        match e {
            ureq::Error::Timeout(which) => ClientError::Timeout {
                url: url.to_string(),
                what: match which {
                    ureq::Timeout::Connect | ureq::Timeout::Resolve => "connect",
                    _ => "read",
                },
                after: match which {
                    ureq::Timeout::Connect | ureq::Timeout::Resolve => self.timeouts.connect,
                    _ => self.timeouts.read,
                },
            },
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                ClientError::Timeout {
                    url: url.to_string(),
                    what: "read",
                    after: self.timeouts.read,
                }
            }
            ureq::Error::BadUri(_) => ClientError::BadUrl(url.to_string()),
            other => ClientError::Unreachable {
                url: url.to_string(),
                reason: other.to_string(),
            },
        }
    }
}

/// POSTs a JSON body to `admin` + `path` with the default timeouts.
///
/// # Errors
/// See [`ClientError`].
pub fn post_json(
    admin: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<Answer, ClientError> {
    AdminClient::new(admin, token, Timeouts::default())?.post_json(path, body)
}
