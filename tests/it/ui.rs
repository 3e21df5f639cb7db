//! The admin dashboard (`/ui`): served without the token, with a strict
//! Content-Security-Policy, no inline script, and no data of its own.

use crate::util::{Proxy, Resp, TOKEN};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

async fn get(p: &Proxy, path: &str) -> Resp {
    Resp::from(p.client.get(p.admin_url(path)).send().await.unwrap()).await
}

fn assert_hardened(r: &Resp, path: &str) {
    assert_eq!(r.status, 200, "{path}");
    assert_eq!(r.header("content-security-policy"), Some(CSP), "{path}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
}

/// Every `src="..."` and `href="..."` of the page.
fn references(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (at, _) in page.match_indices(attr) {
            let rest = &page[at + attr.len()..];
            out.push(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    out
}

#[tokio::test]
async fn the_page_is_public_hardened_and_has_no_inline_script() {
    let p = Proxy::start();
    for path in ["/ui", "/ui/"] {
        let r = get(&p, path).await;
        assert_hardened(&r, path);
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        let page = r.text.to_ascii_lowercase();
        // Every script is a file of this origin, with no body.
        let scripts: Vec<&str> = page.split("<script").skip(1).collect();
        assert!(!scripts.is_empty());
        for s in scripts {
            let (tag, after) = s.split_once('>').unwrap();
            assert!(tag.contains("src=\"/ui/"), "inline script: <script{tag}>");
            assert!(after.starts_with("</script>"), "script with a body");
        }
        for inline in [
            "<style",
            " style=",
            " onclick=",
            " onload=",
            " onsubmit=",
            "javascript:",
        ] {
            assert!(!page.contains(inline), "{inline} in the page");
        }
        // No secret and no data in the page itself.
        assert!(!r.text.contains(TOKEN));
        assert!(!r.text.contains("\"hits\""));
    }
}

#[tokio::test]
async fn every_file_of_the_page_is_served_hardened_with_its_type() {
    let p = Proxy::start();
    let page = get(&p, "/ui").await.text;
    let mut files = references(&page);
    files.retain(|f| !f.starts_with("data:"));
    assert!(files.contains(&"/ui/app.js".to_string()), "{files:?}");
    assert!(files.contains(&"/ui/app.css".to_string()), "{files:?}");
    // The modules app.js imports, and theirs.
    let mut i = 0;
    while i < files.len() {
        let path = files[i].clone();
        let r = get(&p, &path).await;
        assert_hardened(&r, &path);
        let want = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(r.header("content-type"), Some(want), "{path}");
        for (at, _) in r.text.match_indices(" from \"./") {
            let rest = &r.text[at + 9..];
            let import = format!("/ui/{}", &rest[..rest.find('"').unwrap()]);
            if !files.contains(&import) {
                files.push(import);
            }
        }
        i += 1;
    }
    assert!(files.len() >= 5, "{files:?}");
}

#[tokio::test]
async fn the_page_needs_no_token_but_its_data_does() {
    let p = Proxy::start();
    assert_eq!(get(&p, "/ui").await.status, 200);
    for path in ["/stats", "/metrics"] {
        assert_eq!(get(&p, path).await.status, 401, "{path}");
    }
    // Only GET serves the page; other methods and other paths under /ui are
    // the admin API's, behind the token.
    for path in ["/ui/nope.js", "/uix", "/ui/app.js/x"] {
        assert_eq!(get(&p, path).await.status, 401, "{path}");
    }
    let r = p.client.post(p.admin_url("/ui")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = p
        .client
        .post(p.admin_url("/ui"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
