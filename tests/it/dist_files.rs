//! Files generated from the code and checked into `dist/`: they must be what
//! the current binary generates. Regenerate them as dist/README.md says.

use std::path::{Path, PathBuf};
use std::process::Command;

fn dist(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dist")
        .join(path)
}

fn generated(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(args)
        .output()
        .expect("run tagcache");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn assert_same(file: &Path, fresh: &str, how: &str) {
    let checked_in = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e}; generate it with `{how}`", file.display()));
    assert!(
        checked_in == fresh,
        "{} is stale: regenerate it with `{how}`",
        file.display()
    );
}

#[test]
fn the_config_schema_is_current() {
    assert_same(
        &dist("tagcache.schema.json"),
        &generated(&["schema"]),
        "tagcache schema > dist/tagcache.schema.json",
    );
}

#[test]
fn shell_completions_are_current() {
    for (shell, file) in [
        ("bash", "completions/tagcache.bash"),
        ("zsh", "completions/_tagcache"),
        ("fish", "completions/tagcache.fish"),
    ] {
        assert_same(
            &dist(file),
            &generated(&["completions", shell]),
            &format!("tagcache completions {shell} > dist/{file}"),
        );
    }
}

#[test]
fn man_pages_are_current() {
    let fresh = std::env::temp_dir().join(format!("tagcache-man-{}", std::process::id()));
    generated(&["man", "--out-dir", fresh.to_str().unwrap()]);
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let how = "tagcache man --out-dir dist/man";
    assert_eq!(
        names(&dist("man")),
        names(&fresh),
        "regenerate with `{how}`"
    );
    assert!(names(&fresh).contains(&"tagcache.1".to_string()));
    for name in names(&fresh) {
        let page = std::fs::read_to_string(fresh.join(&name)).unwrap();
        assert_same(&dist("man").join(&name), &page, how);
    }
    // `tagcache man` alone prints the top page.
    assert_eq!(
        generated(&["man"]),
        std::fs::read_to_string(fresh.join("tagcache.1")).unwrap()
    );
    std::fs::remove_dir_all(&fresh).ok();
}

/// Every example config names the schema on its first line, for editors
/// (yaml-language-server), and the schema it names is the checked-in one.
#[test]
fn example_configs_name_the_schema() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut seen = 0;
    for entry in std::fs::read_dir(&conf).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(
                text.lines().next(),
                Some("# yaml-language-server: $schema=../dist/tagcache.schema.json"),
                "{}",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen > 0);
}
