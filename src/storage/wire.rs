//! A stored response's header block as it goes on the wire: the status line
//! and the stored fields, serialized once when the entry is stored, so that
//! a hit is this block, its own few fields and the body, written as bytes.
//!
//! The block is what Pingora's HTTP/1 writer would send for the stored
//! header (same status line, same field names and case), less the fields a
//! hit sets itself: `Age`, `Date`, `Connection` (Pingora's), `X-Request-ID`,
//! `X-Cache-Status`, `X-Cache-Layer` and `Cache-Status` (tagcache's). A
//! stored header that a hit could not answer exactly this way (a stored
//! `Transfer-Encoding` or `X-Cache-Key`, a version other than HTTP/1.x) has
//! no block, and its hits take the path that builds a header map.

use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderName, HeaderValue, StatusCode};
use pingora_http::ResponseHeader;

/// Fields a hit always writes itself, so the block leaves them out.
const PER_HIT: [HeaderName; 7] = [
    header::AGE,
    header::DATE,
    header::CONNECTION,
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("x-cache-status"),
    HeaderName::from_static("x-cache-layer"),
    HeaderName::from_static("cache-status"),
];

/// Fields a hit sets only sometimes: a stored one would be sent beside the
/// hit's own, so a header holding one gets no block.
const SOMETIMES_PER_HIT: [HeaderName; 2] = [
    header::TRANSFER_ENCODING,
    HeaderName::from_static("x-cache-key"),
];

/// How a hit frames the stored body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The block holds the stored `Content-Length`.
    Length,
    /// No length was stored: the body goes as one chunk, with
    /// `Transfer-Encoding: chunked`, as Pingora would frame it.
    Chunked,
    /// 204 or 304: no body.
    Empty,
}

/// The serialized status line and stored fields of a response.
#[derive(Debug, Clone)]
pub struct WireHead {
    bytes: Bytes,
    framing: Framing,
}

impl WireHead {
    /// The block for `header`, or `None` when a hit of it must build its
    /// header the long way (see the module doc).
    pub fn of(header: &ResponseHeader) -> Option<Self> {
        if header.version != http::Version::HTTP_11 && header.version != http::Version::HTTP_10 {
            return None;
        }
        if SOMETIMES_PER_HIT
            .iter()
            .any(|n| header.headers.contains_key(n))
        {
            return None;
        }
        let framing = if matches!(
            header.status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        ) {
            Framing::Empty
        } else if header.headers.contains_key(header::CONTENT_LENGTH) {
            Framing::Length
        } else {
            Framing::Chunked
        };
        let fields: usize = header
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        let mut buf = BytesMut::with_capacity(fields + 64);
        // The status line as Pingora writes it: hits always go as HTTP/1.1.
        buf.put_slice(b"HTTP/1.1 ");
        buf.put_slice(header.status.as_str().as_bytes());
        buf.put_u8(b' ');
        if let Some(reason) = header.get_reason_phrase() {
            buf.put_slice(reason.as_bytes());
        }
        buf.put_slice(b"\r\n");
        let fields_at = buf.len();
        // Written whole, then the per-hit lines dropped: cheaper than a
        // copy of the header without them, which a Redis hit paid each time.
        header.header_to_h1_wire(&mut buf);
        drop_per_hit_lines(&mut buf, fields_at);
        Some(WireHead {
            bytes: buf.freeze(),
            framing,
        })
    }

    /// The status line and stored fields, each line ending in CRLF.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How the body is framed.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Bytes the block takes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the block is empty (never: it holds at least a status line).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Removes from `buf`, past `from`, the field lines of the [`PER_HIT`]
/// names. Each line is `name: value` and CRLF; a value holds no CR or LF
/// (`HeaderValue` refuses them), so lines split exactly.
fn drop_per_hit_lines(buf: &mut BytesMut, from: usize) {
    let mut read = from;
    let mut write = from;
    while read < buf.len() {
        let end = buf[read..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(buf.len(), |i| read + i + 1);
        let line = &buf[read..end];
        let name = line.split(|b| *b == b':').next().unwrap_or(line);
        let per_hit = PER_HIT
            .iter()
            .any(|n| n.as_str().as_bytes().eq_ignore_ascii_case(name));
        if !per_hit {
            buf.copy_within(read..end, write);
            write += end - read;
        }
        read = end;
    }
    buf.truncate(write);
}

/// Appends one header line, with the name as Pingora writes it (its titled
/// form for the few names it titles, else lower case).
pub fn put_field(buf: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    let title = match *name {
        header::AGE => "Age",
        header::DATE => "Date",
        header::CONNECTION => "Connection",
        header::CONTENT_LENGTH => "Content-Length",
        header::TRANSFER_ENCODING => "Transfer-Encoding",
        _ => name.as_str(),
    };
    buf.extend_from_slice(title.as_bytes());
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// A hit's answer in three slices, for one vectored write without copying
/// the body: the header (with the chunk-size line when the body goes as a
/// chunk), the stored body, and the end of the chunked framing.
pub struct Assembled {
    /// Status line, fields, blank line (and chunk-size line).
    pub head: Vec<u8>,
    /// The body, shared with the store.
    pub body: Bytes,
    /// What follows the body: the last chunk, or nothing.
    pub tail: &'static [u8],
}

/// A hit's response: the stored block, `Age` and the framing field, then
/// what `decorate` appends (the cache status fields), then Pingora's `Date`
/// and `Connection`, the blank line, and the body (framed as one chunk when
/// no length was stored). `decorate` writes whole lines with [`put_field`].
pub fn assemble(
    head: &WireHead,
    age_secs: u64,
    decorate: impl FnOnce(&mut Vec<u8>),
    date: &HeaderValue,
    keepalive: bool,
    body: Bytes,
) -> Assembled {
    let mut out = Vec::with_capacity(head.len() + 320);
    out.extend_from_slice(head.bytes());
    let mut digits = itoa::Buffer::new();
    put_field(&mut out, &header::AGE, digits.format(age_secs).as_bytes());
    if head.framing == Framing::Chunked {
        put_field(&mut out, &header::TRANSFER_ENCODING, b"chunked");
    }
    decorate(&mut out);
    put_field(&mut out, &header::DATE, date.as_bytes());
    let connection: &[u8] = if keepalive { b"keep-alive" } else { b"close" };
    put_field(&mut out, &header::CONNECTION, connection);
    out.extend_from_slice(b"\r\n");
    let (body, tail): (Bytes, &'static [u8]) = match head.framing {
        Framing::Length => (body, b""),
        Framing::Chunked if body.is_empty() => (body, b"0\r\n\r\n"),
        Framing::Chunked => {
            out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            (body, b"\r\n0\r\n\r\n")
        }
        Framing::Empty => (Bytes::new(), b""),
    };
    Assembled {
        head: out,
        body,
        tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header as the store keeps it: bare parts, no case map.
    fn stored(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut map = http::HeaderMap::new();
        for (n, v) in fields {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let status = StatusCode::from_u16(status).unwrap();
        crate::storage::bare_header(status, http::Version::HTTP_11, map, None).unwrap()
    }

    fn text(head: &WireHead, body: &'static [u8]) -> String {
        let date = HeaderValue::from_static("Sun, 29 Nov 2026 08:00:00 GMT");
        let out = assemble(
            head,
            7,
            |b| put_field(b, &HeaderName::from_static("x-cache-status"), b"HIT"),
            &date,
            true,
            Bytes::from_static(body),
        );
        let mut all = out.head;
        all.extend_from_slice(&out.body);
        all.extend_from_slice(out.tail);
        String::from_utf8(all).unwrap()
    }

    #[test]
    fn a_stored_header_goes_out_as_pingora_writes_it_with_the_hit_fields_after() {
        let h = stored(
            200,
            &[
                ("content-type", "text/plain"),
                ("content-length", "2"),
                ("age", "100"),
                ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
                ("x-cache-status", "MISS"),
            ],
        );
        let head = WireHead::of(&h).unwrap();
        assert_eq!(head.framing(), Framing::Length);
        assert_eq!(
            text(&head, b"ok"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\
             Age: 7\r\nx-cache-status: HIT\r\nDate: Sun, 29 Nov 2026 08:00:00 GMT\r\n\
             Connection: keep-alive\r\n\r\nok"
        );
    }

    #[test]
    fn every_line_of_a_per_hit_field_is_left_out_whatever_its_case() {
        // A header read from the network keeps its case map.
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.append_header("Content-Length", "2").unwrap();
        h.append_header("DATE", "Mon, 01 Jan 2024 00:00:00 GMT")
            .unwrap();
        h.append_header("Set-Cookie", "a=1").unwrap();
        h.append_header("x-cache-status", "MISS").unwrap();
        h.append_header("Set-Cookie", "b=2").unwrap();
        h.append_header("X-Cache-Status", "MISS").unwrap();
        h.append_header("Connection", "keep-alive").unwrap();
        h.append_header("X-Note", "age: 5").unwrap();
        let head = WireHead::of(&h).unwrap();
        assert_eq!(
            std::str::from_utf8(head.bytes()).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\n\
             Set-Cookie: b=2\r\nX-Note: age: 5\r\n"
        );
    }

    #[test]
    fn a_body_stored_without_length_is_one_chunk() {
        let head = WireHead::of(&stored(200, &[("content-type", "a/b")])).unwrap();
        assert_eq!(head.framing(), Framing::Chunked);
        let t = text(&head, b"hello");
        assert!(t.contains("Transfer-Encoding: chunked\r\n"), "{t}");
        assert!(t.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "{t}");
        let empty = text(&head, b"");
        assert!(empty.ends_with("\r\n\r\n0\r\n\r\n"), "{empty}");
    }

    #[test]
    fn no_content_statuses_have_no_body_or_framing() {
        let head = WireHead::of(&stored(204, &[])).unwrap();
        assert_eq!(head.framing(), Framing::Empty);
        let t = text(&head, b"");
        assert!(t.starts_with("HTTP/1.1 204 No Content\r\n"), "{t}");
        assert!(!t.contains("Transfer-Encoding"), "{t}");
        assert!(t.ends_with("keep-alive\r\n\r\n"), "{t}");
    }

    #[test]
    fn a_custom_reason_phrase_is_kept() {
        let mut h = stored(200, &[("content-length", "0")]);
        h.set_reason_phrase(Some("Fine")).unwrap();
        let t = text(&WireHead::of(&h).unwrap(), b"");
        assert!(t.starts_with("HTTP/1.1 200 Fine\r\n"), "{t}");
    }

    #[test]
    fn fields_a_hit_sets_only_sometimes_leave_the_header_without_a_block() {
        assert!(WireHead::of(&stored(200, &[("transfer-encoding", "chunked")])).is_none());
        assert!(WireHead::of(&stored(200, &[("x-cache-key", "k")])).is_none());
    }
}
