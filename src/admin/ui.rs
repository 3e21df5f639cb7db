//! The admin dashboard: `GET /ui` and its files, embedded in the binary.
//!
//! The page is static: plain HTML, CSS and JavaScript modules under
//! `src/admin/ui/`, compiled in with `include_bytes!`, so nothing is fetched
//! from elsewhere and nothing is built at run time. It holds no data and no
//! secret, so it is served without the admin token; the page asks for the
//! token, keeps it in the tab's `sessionStorage`, and sends it as a Bearer
//! token on every call it makes to the admin API (`/stats`, `/metrics`,
//! `/health`, `/purge`, `/settings`, `/warm`, `/stats/workspaces`), which
//! check it as they do for any other client.
//!
//! Every file is answered with a strict `Content-Security-Policy` (scripts,
//! styles and connections to this origin only, no inline script or style, no
//! form submission, no framing), `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.

use http::{Response, StatusCode};

/// The `Content-Security-Policy` of the page and its files.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// One embedded file of the page.
struct Asset {
    /// The path it is served at.
    path: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes.
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of the page. `/ui` and `/ui/` are the page itself.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/ui",
        content_type: HTML,
        body: include_bytes!("ui/index.html"),
    },
    Asset {
        path: "/ui/",
        content_type: HTML,
        body: include_bytes!("ui/index.html"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: CSS,
        body: include_bytes!("ui/app.css"),
    },
    Asset {
        path: "/ui/app.js",
        content_type: JS,
        body: include_bytes!("ui/app.js"),
    },
    Asset {
        path: "/ui/api.js",
        content_type: JS,
        body: include_bytes!("ui/api.js"),
    },
    Asset {
        path: "/ui/dom.js",
        content_type: JS,
        body: include_bytes!("ui/dom.js"),
    },
    Asset {
        path: "/ui/prom.js",
        content_type: JS,
        body: include_bytes!("ui/prom.js"),
    },
    Asset {
        path: "/ui/forms.js",
        content_type: JS,
        body: include_bytes!("ui/forms.js"),
    },
];

/// The answer to `GET path` when `path` is the page or one of its files,
/// `None` otherwise (the admin API then handles the request).
pub fn asset(path: &str) -> Option<Response<Vec<u8>>> {
    let asset = ASSETS.iter().find(|a| a.path == path)?;
    Some(
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", asset.content_type)
            .header("content-security-policy", CSP)
            .header("x-content-type-options", "nosniff")
            .header("referrer-policy", "no-referrer")
            .header("cache-control", "no-store")
            .header("content-length", asset.body.len())
            .body(asset.body.to_vec())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html() -> &'static str {
        std::str::from_utf8(include_bytes!("ui/index.html")).unwrap()
    }

    #[test]
    fn the_page_has_no_inline_script_style_or_handler() {
        let page = html().to_ascii_lowercase();
        for (at, _) in page.match_indices("<script") {
            let tag = &page[at..at + page[at..].find('>').unwrap()];
            assert!(tag.contains(" src=\"/ui/"), "inline script: {tag}");
            let close = &page[at + tag.len() + 1..];
            assert!(close.starts_with("</script>"), "script with a body: {tag}");
        }
        assert!(!page.contains("<style"), "inline <style>");
        assert!(!page.contains(" style="), "style attribute");
        assert!(!page.contains("javascript:"), "javascript: URL");
        for handler in [" onclick", " onload", " onsubmit", " onerror", " oninput"] {
            assert!(!page.contains(handler), "inline handler {handler}");
        }
    }

    #[test]
    fn every_file_the_page_names_is_served() {
        let page = html();
        for needle in ["src=\"", "href=\""] {
            for (at, _) in page.match_indices(needle) {
                let rest = &page[at + needle.len()..];
                let url = &rest[..rest.find('"').unwrap()];
                if url.starts_with("data:") || url.starts_with('#') {
                    continue;
                }
                assert!(asset(url).is_some(), "{url} is named but not served");
            }
        }
    }

    #[test]
    fn every_module_the_scripts_import_is_served() {
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(a.body).unwrap();
            for (at, _) in text.match_indices(" from \"") {
                let rest = &text[at + 7..];
                let url = &rest[..rest.find('"').unwrap()];
                let path = url.strip_prefix("./").map(|p| format!("/ui/{p}"));
                let path = path.as_deref().unwrap_or(url);
                assert!(asset(path).is_some(), "{}: {url} is not served", a.path);
            }
        }
    }

    #[test]
    fn other_paths_are_left_to_the_api() {
        for path in ["/ui/x.js", "/uix", "/ui/../stats", "/stats", "/"] {
            assert!(asset(path).is_none(), "{path}");
        }
    }
}
