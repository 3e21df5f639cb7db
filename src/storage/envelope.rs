//! The serialized form of an entry in the Redis tier: one string value, so a hit is one GET.
//!
//! ```text
//! offset  size  field (integers little-endian)
//! 0       3     magic "TCE"
//! 3       1     version (2; 1 is still read)
//! 4       1     flags: bit 0 body is one zstd frame, bit 1 EntryInfo present
//! 5       4     n = length of pingora's serialized internal meta, then n bytes
//!         4     n = length of the response header, then n bytes:
//!                 2 status, 1 HTTP version (0 = 1.0, 1 = 1.1, 2 = 2),
//!                 2 reason length (0 = none) and bytes, 2 header count,
//!                 per header: 2 name length, name, 4 value length, value
//!                 (version 1 held pingora's zstd-compressed header here)
//!         2     route index                      } only with flag bit 1
//!         8     born epoch                       }
//!         2     workspace length, 0xFFFF = none  } then the UTF-8 bytes
//!         4     tag count, then 8 bytes per tag hash
//!         8     body length before compression
//!         ..    body, raw or compressed, to the end of the value
//! ```
//!
//! The internal meta is pingora-cache's own (itself versioned), so freshness,
//! the serve-stale windows, `updated`, the epoch override and variance survive
//! the round trip exactly. The response header is tagcache's own plain
//! length-prefixed list: pingora serializes it through zstd, whose
//! decompression cost about 4% of an L2 hit's CPU, for the ~300 bytes a JSON
//! API's header weighs. Read back, its values are slices of one small buffer,
//! as in the memory store. A value with another magic or
//! version is rejected with [`EnvelopeError`] and read as a miss, which is how
//! a future format change or a foreign key under our prefix is handled.
//!
//! [`EnvelopeWriter`] builds the value in one buffer as the body streams in:
//! the head first, then the body appended, raw while it is small and through a
//! streaming zstd encoder once it passes `compress_above`. Switching copies
//! only the raw prefix (at most `compress_above` bytes), so a large body is
//! never held twice.
//!
//! zstd rather than lz4: pingora-cache already links it (its header
//! serialization uses it), so it adds no code, and on the JSON this cache holds
//! level 1 compresses about twice as well as lz4 while still decompressing at
//! well over 1 GB/s, which keeps a hit's decompression far below the network
//! round trip.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use pingora_cache::CacheMeta;
use pingora_http::ResponseHeader;

use super::EntryInfo;

/// The first bytes of every value.
pub const MAGIC: [u8; 3] = *b"TCE";
/// The format version written.
pub const VERSION: u8 = 2;
/// The older version still read: its header is pingora's serialized form.
const VERSION_PINGORA_HEADER: u8 = 1;
/// zstd level used for bodies: the fastest, which is what a cache wants.
const LEVEL: i32 = 1;

const FLAG_ZSTD: u8 = 1;
const FLAG_INFO: u8 = 2;
const NO_WORKSPACE: u16 = u16::MAX;
const FLAGS_AT: usize = 4;

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The value does not start with tagcache's magic: a foreign key under our prefix.
    #[error("not a tagcache entry")]
    BadMagic,
    /// Written by a tagcache with another format version.
    #[error("entry format version {0} is not supported")]
    Version(u8),
    /// The value ends before its fields do, or a length is inconsistent.
    #[error("entry is truncated or malformed")]
    Malformed,
    /// pingora-cache could not read the meta or header.
    #[error("entry meta is unreadable: {0}")]
    Meta(String),
    /// The body is larger than allowed, or its compressed frame is corrupt.
    #[error("entry body is unreadable")]
    Body,
}

/// An entry read back from its value.
#[derive(Debug)]
pub struct Decoded {
    /// The response meta, with the [`EntryInfo`] attached when it was stored.
    pub meta: CacheMeta,
    /// The whole body, uncompressed.
    pub body: Bytes,
}

impl Decoded {
    /// The entry as a response that may be served, found in Redis.
    pub fn servable(&self) -> super::Servable<'_> {
        super::Servable::of_meta(&self.meta, self.body.clone(), super::Layer::Redis)
    }
}

enum Sink {
    Raw(Vec<u8>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// Builds a value while the body streams in.
pub struct EnvelopeWriter {
    sink: Sink,
    /// Where the uncompressed body length is patched in by [`Self::finish`].
    body_len_at: usize,
    body_start: usize,
    body_len: u64,
    compress_above: usize,
}

impl std::fmt::Debug for EnvelopeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeWriter")
            .field("body_len", &self.body_len)
            .finish_non_exhaustive()
    }
}

fn put_len(buf: &mut Vec<u8>, bytes: &[u8]) -> Result<(), EnvelopeError> {
    let len = u32::try_from(bytes.len()).map_err(|_| EnvelopeError::Malformed)?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

impl EnvelopeWriter {
    /// Starts a value for `meta`. `size_hint` (the Content-Length, if known)
    /// sizes the buffer and, above `compress_above`, starts compressing at once.
    ///
    /// # Errors
    /// When pingora cannot serialize the meta.
    pub fn new(
        meta: &CacheMeta,
        compress_above: usize,
        size_hint: Option<usize>,
    ) -> Result<Self, EnvelopeError> {
        Self::with_info(
            meta,
            EntryInfo::of(meta).map(|i| &**i),
            compress_above,
            size_hint,
        )
    }

    /// Like [`Self::new`], with the [`EntryInfo`] given apart from the meta.
    ///
    /// # Errors
    /// When pingora cannot serialize the meta.
    pub fn with_info(
        meta: &CacheMeta,
        info: Option<&EntryInfo>,
        compress_above: usize,
        size_hint: Option<usize>,
    ) -> Result<Self, EnvelopeError> {
        let (internal, _) = meta
            .serialize()
            .map_err(|e| EnvelopeError::Meta(e.to_string()))?;
        let header = encode_header(meta.response_header())?;
        let info_len = info.map_or(0, |i| {
            2 + 8 + 2 + i.workspace.as_ref().map_or(0, |w| w.len()) + 4 + i.tags.len() * 8
        });
        let head = 3 + 1 + 1 + 4 + internal.len() + 4 + header.len() + info_len + 8;
        let body_guess = size_hint.unwrap_or(0).min(1 << 20);
        let mut buf = Vec::with_capacity(head + body_guess);
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        buf.push(if info.is_some() { FLAG_INFO } else { 0 });
        put_len(&mut buf, &internal)?;
        put_len(&mut buf, &header)?;
        if let Some(info) = info {
            buf.extend_from_slice(&info.route.to_le_bytes());
            buf.extend_from_slice(&info.born.to_le_bytes());
            match &info.workspace {
                Some(w) => {
                    let len = u16::try_from(w.len())
                        .ok()
                        .filter(|l| *l != NO_WORKSPACE)
                        .ok_or(EnvelopeError::Malformed)?;
                    buf.extend_from_slice(&len.to_le_bytes());
                    buf.extend_from_slice(w.as_bytes());
                }
                None => buf.extend_from_slice(&NO_WORKSPACE.to_le_bytes()),
            }
            let count = u32::try_from(info.tags.len()).map_err(|_| EnvelopeError::Malformed)?;
            buf.extend_from_slice(&count.to_le_bytes());
            for tag in info.tags.iter() {
                buf.extend_from_slice(&tag.to_le_bytes());
            }
        }
        let body_len_at = buf.len();
        buf.extend_from_slice(&0u64.to_le_bytes());
        let body_start = buf.len();
        let mut writer = EnvelopeWriter {
            sink: Sink::Raw(buf),
            body_len_at,
            body_start,
            body_len: 0,
            compress_above,
        };
        if size_hint.is_some_and(|n| n > compress_above) {
            writer.start_compressing()?;
        }
        Ok(writer)
    }

    /// Moves the raw body written so far into a new zstd frame in the same buffer.
    fn start_compressing(&mut self) -> Result<(), EnvelopeError> {
        let Sink::Raw(buf) = &mut self.sink else {
            return Ok(());
        };
        let mut buf = std::mem::take(buf);
        let prefix = buf.split_off(self.body_start);
        buf[FLAGS_AT] |= FLAG_ZSTD;
        let mut encoder =
            zstd::stream::write::Encoder::new(buf, LEVEL).map_err(|_| EnvelopeError::Body)?;
        encoder
            .write_all(&prefix)
            .map_err(|_| EnvelopeError::Body)?;
        self.sink = Sink::Zstd(encoder);
        Ok(())
    }

    /// Appends a piece of the body.
    ///
    /// # Errors
    /// When the compressor fails (it does not on memory buffers).
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), EnvelopeError> {
        let after = self.body_len + chunk.len() as u64;
        if matches!(self.sink, Sink::Raw(_)) && after > self.compress_above as u64 {
            self.start_compressing()?;
        }
        match &mut self.sink {
            Sink::Raw(buf) => buf.extend_from_slice(chunk),
            Sink::Zstd(encoder) => encoder.write_all(chunk).map_err(|_| EnvelopeError::Body)?,
        }
        self.body_len = after;
        Ok(())
    }

    /// Body bytes written so far, before compression.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// The finished value.
    ///
    /// # Errors
    /// When the compressor fails to close its frame.
    pub fn finish(self) -> Result<Vec<u8>, EnvelopeError> {
        let mut buf = match self.sink {
            Sink::Raw(buf) => buf,
            Sink::Zstd(encoder) => encoder.finish().map_err(|_| EnvelopeError::Body)?,
        };
        buf[self.body_len_at..self.body_len_at + 8].copy_from_slice(&self.body_len.to_le_bytes());
        Ok(buf)
    }
}

fn http_version_code(v: http::Version) -> u8 {
    match v {
        http::Version::HTTP_10 => 0,
        http::Version::HTTP_2 => 2,
        _ => 1,
    }
}

/// Most header fields a stored header may have. Pingora reads at most 256
/// from an origin; an `http::HeaderMap` holds at most 32,768 and panics
/// when appended to beyond that, so a damaged count must stop here.
const MAX_HEADERS: usize = 4096;

/// The header in the plain form described in the module docs.
fn encode_header(header: &ResponseHeader) -> Result<Vec<u8>, EnvelopeError> {
    // Only a reason phrase other than the status' canonical one is kept.
    let reason = header
        .get_reason_phrase()
        .filter(|r| Some(*r) != header.status.canonical_reason())
        .unwrap_or("")
        .as_bytes();
    let size = 7
        + reason.len()
        + header
            .headers
            .iter()
            .map(|(n, v)| 6 + n.as_str().len() + v.len())
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&header.status.as_u16().to_le_bytes());
    out.push(http_version_code(header.version));
    let len = u16::try_from(reason.len()).map_err(|_| EnvelopeError::Malformed)?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(reason);
    if header.headers.len() > MAX_HEADERS {
        return Err(EnvelopeError::Malformed);
    }
    let count = u16::try_from(header.headers.len()).map_err(|_| EnvelopeError::Malformed)?;
    out.extend_from_slice(&count.to_le_bytes());
    for (name, value) in header.headers.iter() {
        let name = name.as_str().as_bytes();
        let len = u16::try_from(name.len()).map_err(|_| EnvelopeError::Malformed)?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(name);
        let len = u32::try_from(value.len()).map_err(|_| EnvelopeError::Malformed)?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    Ok(out)
}

/// Reads a header written by [`encode_header`]. Names and values are checked
/// as HTTP requires: a value from Redis is not trusted more than one from the
/// network. The values end up in one buffer of their own, so the header never
/// keeps the (possibly compressed) value it came from alive.
fn decode_header(raw: &[u8]) -> Result<ResponseHeader, EnvelopeError> {
    let mut r = Reader { buf: raw, pos: 0 };
    let status = r.u16()?;
    let version = match r.array::<1>()?[0] {
        0 => http::Version::HTTP_10,
        1 => http::Version::HTTP_11,
        2 => http::Version::HTTP_2,
        _ => return Err(EnvelopeError::Malformed),
    };
    let reason_len = r.u16()? as usize;
    let reason = r.take(reason_len)?;
    let count = r.u16()? as usize;
    if count > MAX_HEADERS {
        return Err(EnvelopeError::Malformed);
    }
    let headers_at = r.pos;
    // First pass: the values' total size, so they fit one allocation.
    let mut total = 0;
    for _ in 0..count {
        let n = r.u16()? as usize;
        r.take(n)?;
        let v = r.u32()? as usize;
        r.take(v)?;
        total += v;
    }
    if r.pos != raw.len() {
        return Err(EnvelopeError::Malformed);
    }
    let mut values = Vec::with_capacity(total);
    let mut fields = Vec::with_capacity(count);
    r.pos = headers_at;
    for _ in 0..count {
        let n = r.u16()? as usize;
        let name = r.take(n)?;
        let v = r.u32()? as usize;
        let start = values.len();
        values.extend_from_slice(r.take(v)?);
        fields.push((name, start..values.len()));
    }
    let values = Bytes::from(values);
    // Built as bare `http` parts: pingora's `append_header` would parse each
    // name a second time.
    let mut headers = http::HeaderMap::with_capacity(count + super::HIT_HEADER_ROOM);
    for (name, range) in fields {
        let name = http::HeaderName::from_bytes(name).map_err(|_| EnvelopeError::Malformed)?;
        let value = http::HeaderValue::from_maybe_shared(values.slice(range))
            .map_err(|_| EnvelopeError::Malformed)?;
        headers
            .try_append(name, value)
            .map_err(|_| EnvelopeError::Malformed)?;
    }
    let status = http::StatusCode::from_u16(status).map_err(|_| EnvelopeError::Malformed)?;
    let reason = if reason.is_empty() {
        None
    } else {
        Some(std::str::from_utf8(reason).map_err(|_| EnvelopeError::Malformed)?)
    };
    let header = super::bare_header(status, version, headers, reason)
        .map_err(|e| EnvelopeError::Meta(e.to_string()))?;
    Ok(header)
}

/// pingora's serialized form of a bare header, to read version 2's internal
/// meta with: pingora reads the internal meta only together with a header.
fn placeholder_header() -> &'static [u8] {
    static PLACEHOLDER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PLACEHOLDER.get_or_init(|| {
        let now = std::time::SystemTime::now();
        ResponseHeader::build_no_case(200, Some(0))
            .ok()
            .and_then(|h| CacheMeta::new(now, now, 0, 0, h).serialize().ok())
            .map(|(_, header)| header)
            .unwrap_or_default()
    })
}

/// Encodes a whole entry at once (used when rewriting the meta of a stored entry).
///
/// # Errors
/// As [`EnvelopeWriter::new`].
pub fn encode(
    meta: &CacheMeta,
    info: Option<&EntryInfo>,
    body: &[u8],
    compress_above: usize,
) -> Result<Vec<u8>, EnvelopeError> {
    let mut writer = EnvelopeWriter::with_info(meta, info, compress_above, Some(body.len()))?;
    writer.write(body)?;
    writer.finish()
}

thread_local! {
    /// A decompression context per thread: creating one costs more than
    /// decompressing a typical body.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses one frame of at most `capacity` bytes.
fn decompress(frame: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match &mut *slot {
            Some(d) => d,
            empty => empty.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(frame, capacity)
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        let end = self.pos.checked_add(n).ok_or(EnvelopeError::Malformed)?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(EnvelopeError::Malformed)?;
        self.pos = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, EnvelopeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, EnvelopeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn sized(&mut self) -> Result<&'a [u8], EnvelopeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Reads a value back. An uncompressed body is a slice of `value` (no copy);
/// a compressed one is decompressed once. Bodies longer than `max_body` are
/// refused, so a corrupt or hostile length cannot make us allocate.
///
/// # Errors
/// See [`EnvelopeError`].
pub fn decode(value: Vec<u8>, max_body: usize) -> Result<Decoded, EnvelopeError> {
    let value = Bytes::from(value);
    let mut r = Reader {
        buf: &value,
        pos: 0,
    };
    if r.take(3)? != MAGIC {
        return Err(EnvelopeError::BadMagic);
    }
    let version = r.array::<1>()?[0];
    if version != VERSION && version != VERSION_PINGORA_HEADER {
        return Err(EnvelopeError::Version(version));
    }
    let flags = r.array::<1>()?[0];
    let internal = r.sized()?;
    let header = r.sized()?;
    let meta_error = |e: pingora_error::BError| EnvelopeError::Meta(e.to_string());
    let mut meta = if version == VERSION_PINGORA_HEADER {
        CacheMeta::deserialize(internal, header).map_err(meta_error)?
    } else {
        let header = decode_header(header)?;
        let mut meta =
            CacheMeta::deserialize(internal, placeholder_header()).map_err(meta_error)?;
        *meta.response_header_mut() = header;
        meta
    };
    if flags & FLAG_INFO != 0 {
        let route = r.u16()?;
        let born = r.u64()?;
        let workspace = match r.u16()? {
            NO_WORKSPACE => None,
            n => Some(Arc::<str>::from(
                std::str::from_utf8(r.take(n as usize)?).map_err(|_| EnvelopeError::Malformed)?,
            )),
        };
        let count = r.u32()? as usize;
        let raw = r.take(count.checked_mul(8).ok_or(EnvelopeError::Malformed)?)?;
        let tags = raw
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Arc::new(EntryInfo {
            route,
            workspace,
            tags,
            born,
        })
        .attach(&mut meta);
    }
    let body_len = usize::try_from(r.u64()?).map_err(|_| EnvelopeError::Malformed)?;
    if body_len > max_body {
        return Err(EnvelopeError::Body);
    }
    let start = r.pos;
    let body = if flags & FLAG_ZSTD != 0 {
        let raw = decompress(&value[start..], body_len).map_err(|_| EnvelopeError::Body)?;
        Bytes::from(raw)
    } else {
        value.slice(start..)
    };
    if body.len() != body_len {
        return Err(EnvelopeError::Malformed);
    }
    Ok(Decoded { meta, body })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn meta(info: bool) -> CacheMeta {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header
            .append_header("content-type", "application/json")
            .unwrap();
        header.append_header("etag", "\"v1\"").unwrap();
        let now = SystemTime::now();
        let mut meta = CacheMeta::new(now + Duration::from_secs(60), now, 5, 7, header);
        meta.set_variance([9u8; 16]);
        if info {
            Arc::new(EntryInfo {
                route: 3,
                workspace: Some("w1".into()),
                tags: vec![1, u64::MAX, 42].into_boxed_slice(),
                born: 77,
            })
            .attach(&mut meta);
        }
        meta
    }

    fn roundtrip(
        info: bool,
        chunks: &[&[u8]],
        compress_above: usize,
        hint: Option<usize>,
    ) -> Decoded {
        let m = meta(info);
        let mut w = EnvelopeWriter::new(&m, compress_above, hint).unwrap();
        for c in chunks {
            w.write(c).unwrap();
        }
        let value = w.finish().unwrap();
        let d = decode(value, 1 << 20).unwrap();
        assert_eq!(d.meta.fresh_until(), m.fresh_until());
        assert_eq!(d.meta.created(), m.created());
        assert_eq!(d.meta.stale_while_revalidate_sec(), 5);
        assert_eq!(d.meta.stale_if_error_sec(), 7);
        assert_eq!(d.meta.variance(), Some([9u8; 16]));
        assert_eq!(d.meta.headers().get("etag").unwrap(), "\"v1\"");
        assert_eq!(
            EntryInfo::of(&d.meta).map(|i| (**i).clone()),
            EntryInfo::of(&m).map(|i| (**i).clone())
        );
        d
    }

    fn encode_meta(meta: &CacheMeta, body: &[u8], compress_above: usize) -> Vec<u8> {
        encode(
            meta,
            EntryInfo::of(meta).map(|i| &**i),
            body,
            compress_above,
        )
        .unwrap()
    }

    #[test]
    fn small_bodies_stay_raw_and_large_ones_are_compressed() {
        let d = roundtrip(true, &[b"hello ", b"world"], 4096, None);
        assert_eq!(&d.body[..], b"hello world");

        let big: Vec<u8> = b"{\"id\":1,\"name\":\"x\"}".repeat(2000);
        let (a, b) = big.split_at(1000);
        // The threshold is crossed in the middle of the stream.
        let d = roundtrip(true, &[a, b], 4096, None);
        assert_eq!(&d.body[..], &big[..]);
        // And from the start, when the length is known.
        let d = roundtrip(false, &[&big], 4096, Some(big.len()));
        assert_eq!(&d.body[..], &big[..]);
        let value = encode_meta(&meta(true), &big, 4096);
        assert!(
            value.len() < big.len() / 4,
            "JSON compresses: {}",
            value.len()
        );
        let empty = roundtrip(true, &[], 0, Some(0));
        assert!(empty.body.is_empty());
    }

    #[test]
    fn foreign_old_and_damaged_values_are_rejected() {
        fn check(value: Vec<u8>, expected: EnvelopeError) {
            assert_eq!(decode(value, 1 << 20).unwrap_err(), expected);
        }
        check(b"some other app's value".to_vec(), EnvelopeError::BadMagic);
        check(Vec::new(), EnvelopeError::Malformed);
        let good = encode_meta(&meta(true), b"body", 4096);
        let mut old = good.clone();
        old[3] = 0;
        check(old, EnvelopeError::Version(0));
        let mut newer = good.clone();
        newer[3] = VERSION + 1;
        check(newer, EnvelopeError::Version(VERSION + 1));
        check(good[..good.len() - 2].to_vec(), EnvelopeError::Malformed);
        check(good[..20].to_vec(), EnvelopeError::Malformed);
        let big = encode_meta(&meta(true), &[b'a'; 10_000], 100);
        assert_eq!(decode(big.clone(), 9_999).unwrap_err(), EnvelopeError::Body);
        let mut corrupt = big;
        let n = corrupt.len();
        corrupt[n - 6] ^= 0xff;
        assert!(decode(corrupt, 1 << 20).is_err());
    }

    #[test]
    fn headers_come_back_exactly() {
        let mut header = ResponseHeader::build(203, None).unwrap();
        header.set_version(http::Version::HTTP_10);
        header.set_reason_phrase(Some("Fine Thanks")).unwrap();
        header.append_header("x-multi", "one").unwrap();
        header.append_header("x-multi", "two").unwrap();
        header.append_header("x-empty", "").unwrap();
        let obs_text = http::HeaderValue::from_bytes(b"caf\xe9").unwrap();
        header.append_header("x-latin1", obs_text.clone()).unwrap();
        let back = decode_header(&encode_header(&header).unwrap()).unwrap();
        assert_eq!(back.status.as_u16(), 203);
        assert_eq!(back.version, http::Version::HTTP_10);
        assert_eq!(back.get_reason_phrase(), Some("Fine Thanks"));
        let multi: Vec<_> = back.headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["one", "two"]);
        assert_eq!(back.headers.get("x-empty").unwrap(), "");
        assert_eq!(back.headers.get("x-latin1").unwrap(), &obs_text);
        assert_eq!(back.headers.len(), header.headers.len());

        let bare = ResponseHeader::build(404, None).unwrap();
        let back = decode_header(&encode_header(&bare).unwrap()).unwrap();
        assert_eq!(back.status.as_u16(), 404);
        assert!(back.headers.is_empty());
        assert_eq!(back.get_reason_phrase(), Some("Not Found"));
    }

    #[test]
    fn damaged_headers_are_rejected() {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header.append_header("etag", "\"v1\"").unwrap();
        let good = encode_header(&header).unwrap();
        assert!(decode_header(&good).is_ok());
        // Name "etag" starts after status (2), version (1), reason length
        // (2), count (2) and name length (2).
        let mut bad_name = good.clone();
        bad_name[9] = b' ';
        assert!(matches!(
            decode_header(&bad_name),
            Err(EnvelopeError::Malformed)
        ));
        let mut bad_value = good.clone();
        let n = bad_value.len();
        bad_value[n - 1] = b'\n';
        assert!(decode_header(&bad_value).is_err());
        let mut bad_version = good.clone();
        bad_version[2] = 9;
        assert!(decode_header(&bad_version).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_header(&trailing).is_err());
        assert!(decode_header(&good[..good.len() - 1]).is_err());
        let mut bad_status = good;
        bad_status[..2].copy_from_slice(&1000u16.to_le_bytes());
        assert!(decode_header(&bad_status).is_err());
    }

    #[test]
    fn decoded_headers_have_room_for_a_hits_headers() {
        let mut header = ResponseHeader::build(200, None).unwrap();
        for name in ["content-type", "etag", "cache-control", "vary", "date"] {
            header.append_header(name, "x").unwrap();
        }
        let back = decode_header(&encode_header(&header).unwrap()).unwrap();
        // The room survives a hit's clone.
        let want = 5 + crate::storage::HIT_HEADER_ROOM;
        assert!(
            back.headers.capacity() >= want,
            "{}",
            back.headers.capacity()
        );
        assert!(back.clone().headers.capacity() >= want);
    }

    #[test]
    fn a_header_count_no_map_can_hold_is_rejected() {
        // 40,000 one-letter headers: well-formed field by field, but more
        // than an http::HeaderMap holds (32,768): appending them all panics.
        let count: u16 = 40_000;
        let mut raw = Vec::new();
        raw.extend_from_slice(&200u16.to_le_bytes());
        raw.push(1);
        raw.extend_from_slice(&0u16.to_le_bytes());
        raw.extend_from_slice(&count.to_le_bytes());
        for _ in 0..count {
            raw.extend_from_slice(&1u16.to_le_bytes());
            raw.push(b'x');
            raw.extend_from_slice(&0u32.to_le_bytes());
        }
        assert!(matches!(decode_header(&raw), Err(EnvelopeError::Malformed)));
    }

    #[test]
    fn version_1_values_with_pingoras_header_are_still_read() {
        let m = meta(false);
        let (internal, header) = m.serialize().unwrap();
        let mut value = MAGIC.to_vec();
        value.push(VERSION_PINGORA_HEADER);
        value.push(0);
        put_len(&mut value, &internal).unwrap();
        put_len(&mut value, &header).unwrap();
        value.extend_from_slice(&4u64.to_le_bytes());
        value.extend_from_slice(b"body");
        let d = decode(value, 1 << 20).unwrap();
        assert_eq!(&d.body[..], b"body");
        assert_eq!(d.meta.fresh_until(), m.fresh_until());
        assert_eq!(d.meta.variance(), Some([9u8; 16]));
        assert_eq!(d.meta.headers().get("etag").unwrap(), "\"v1\"");
    }
}
