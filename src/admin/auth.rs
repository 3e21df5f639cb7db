//! Bearer-token authentication for the admin listener, compared in constant time.

use pingora_http::RequestHeader;

use crate::config::Secret;

/// Checks `Authorization: Bearer <token>` against the configured token. With
/// no token configured (only allowed on a loopback listener) every request passes.
///
/// # Errors
/// A short reason, safe to return to the caller.
pub fn check_bearer(req: &RequestHeader, token: Option<&Secret>) -> Result<(), &'static str> {
    let Some(token) = token else {
        return Ok(());
    };
    let given = req
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or("missing Authorization: Bearer token")?;
    let given = given
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .ok_or("Authorization must be a Bearer token")?;
    if constant_time_eq(given, token.expose().as_bytes()) {
        Ok(())
    } else {
        Err("invalid admin token")
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/stats", None).unwrap();
        if let Some(a) = auth {
            r.insert_header("authorization", a).unwrap();
        }
        r
    }

    #[test]
    fn bearer() {
        let t = Secret::new("tok");
        assert!(check_bearer(&req(Some("Bearer tok")), Some(&t)).is_ok());
        assert!(check_bearer(&req(Some("Bearer tok2")), Some(&t)).is_err());
        assert!(check_bearer(&req(Some("Basic tok")), Some(&t)).is_err());
        assert!(check_bearer(&req(None), Some(&t)).is_err());
        assert!(check_bearer(&req(None), None).is_ok());
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b"ab"));
    }
}
