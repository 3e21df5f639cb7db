//! Config loading: any text must give a config or diagnostics, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = |name: &str| match name {
        "EMPTY" => Some(String::new()),
        "SECRET" => Some("fuzz-secret-0123456789abcdef-0123456789".to_string()),
        n if n.len() < 8 => Some(format!("value-of-{n}")),
        _ => None,
    };
    match tagcache::config::load_str(&text, "fuzz.yaml", &env) {
        Ok(loaded) => {
            // A loaded config builds its routes and keys without panicking.
            let _ = tagcache::route::Router::new(&loaded.config.routes);
            let _ = format!("{:?}", loaded.config);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
