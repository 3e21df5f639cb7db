//! `X-Request-ID`: the client's, when it is a sane token, else one made
//! here; sent to the origin, returned to the client and written to the
//! access log, so one request can be followed through every log.

use std::cell::Cell;

use http::{HeaderName, HeaderValue};
use pingora_http::RequestHeader;

/// The header.
pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client request id kept.
const MAX_LEN: usize = 128;

/// The request's id: its own `X-Request-ID` when there is exactly one, of at
/// most 128 characters from `[A-Za-z0-9._:+=/-]`; otherwise a new one.
pub(crate) fn of(req: &RequestHeader) -> HeaderValue {
    let mut given = req.headers.get_all(&HEADER).iter();
    if let (Some(v), None) = (given.next(), given.next()) {
        let b = v.as_bytes();
        if !b.is_empty()
            && b.len() <= MAX_LEN
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._:+=/-".contains(c))
        {
            return v.clone();
        }
    }
    generate()
}

thread_local! {
    /// This thread's prefix (random per thread and process) and counter: ids
    /// are unique without a shared counter bouncing between cores.
    static NEXT: Cell<(u64, u64)> = Cell::new((seed(), 0));
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS once per process; the thread id and
    // the time make each thread's prefix its own.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.write(format!("{:?}", std::thread::current().id()).as_bytes());
    h.finish()
}

/// A new id: 16 hex digits of this thread's prefix, then its counter.
fn generate() -> HeaderValue {
    let (prefix, n) = NEXT.with(|c| {
        let (p, n) = c.get();
        c.set((p, n.wrapping_add(1)));
        (p, n)
    });
    // Written digit by digit: `format!` cost a memory hit a twentieth of
    // its instructions.
    let mut text = [0u8; 32];
    let len = hex(&mut text, prefix, n);
    // Hex digits only: always a valid header value.
    HeaderValue::from_bytes(&text[..len]).unwrap_or(HeaderValue::from_static("-"))
}

/// Writes `prefix` as 16 hex digits, then `n` in hex without leading zeros
/// (`format!("{prefix:016x}{n:x}")`), and returns the length.
fn hex(out: &mut [u8; 32], prefix: u64, n: u64) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let nibble = |v: u64, i: usize| DIGITS[((v >> (4 * i)) & 0xf) as usize];
    for (i, b) in out[..16].iter_mut().enumerate() {
        *b = nibble(prefix, 15 - i);
    }
    let digits = (64 - n.leading_zeros() as usize).div_ceil(4).max(1);
    for (i, b) in out[16..16 + digits].iter_mut().enumerate() {
        *b = nibble(n, digits - 1 - i);
    }
    16 + digits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ids: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for id in ids {
            r.append_header("x-request-id", *id).unwrap();
        }
        r
    }

    #[test]
    fn a_sane_client_id_is_kept_anything_else_is_replaced() {
        assert_eq!(of(&req(&["abc-123_x:y"])), "abc-123_x:y");
        for bad in [&["a b"][..], &["<script>"], &["a", "b"], &[""]] {
            let id = of(&req(bad));
            assert!(id.len() > 16, "{bad:?} gave {id:?}");
            assert!(id.to_str().unwrap().bytes().all(|c| c.is_ascii_hexdigit()));
        }
        let long = "x".repeat(129);
        assert_ne!(of(&req(&[long.as_str()])), long.as_str());
    }

    #[test]
    fn ids_are_the_prefix_in_16_hex_digits_then_the_counter_in_hex() {
        for (prefix, n) in [
            (0, 0),
            (1, 1),
            (0xdead_beef, 0xf),
            (u64::MAX, 0x10),
            (0x0123_4567_89ab_cdef, u64::MAX),
            (42, 0x8000_0000_0000_0000),
        ] {
            let mut out = [0u8; 32];
            let len = hex(&mut out, prefix, n);
            assert_eq!(
                std::str::from_utf8(&out[..len]).unwrap(),
                format!("{prefix:016x}{n:x}")
            );
        }
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(of(&req(&[])), of(&req(&[])));
    }
}
