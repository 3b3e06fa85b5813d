//! `vestibule check` and `serve` as a user runs them.

use std::process::Command;

fn run(args: &[&str], config: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vestibule"));
    cmd.args(args).arg("--config").arg(&path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

const CLEAN: &str = r#"
[server]
listen = ["127.0.0.1:0"]
admin_listen = ""
[source.headers]
dialect = "authelia"
trusted_proxies = ["10.0.0.5"]
[[route]]
upstream = "http://127.0.0.1:3000"
"#;

#[test]
fn clean_config_exits_0() {
    let (code, out) = run(&["check"], CLEAN, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 error(s), 0 warning(s)"), "{out}");
    let (code, _) = run(&["check", "--strict"], CLEAN, &[]);
    assert_eq!(code, 0);
}

#[test]
fn warnings_exit_1_only_with_strict() {
    let cfg = CLEAN.replace("10.0.0.5", "172.17.0.0/16");
    let (code, out) = run(&["check"], &cfg, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: source.headers.trusted_proxies[0]"),
        "{out}"
    );
    assert!(out.contains("fix:"), "{out}");
    let (code, _) = run(&["check", "--strict"], &cfg, &[]);
    assert_eq!(code, 1);
}

#[test]
fn errors_exit_2_with_key_and_fix() {
    let cfg = CLEAN.replace("[\"10.0.0.5\"]", "[\"0.0.0.0/0\"]");
    let (code, out) = run(&["check"], &cfg, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("error: source.headers.trusted_proxies"),
        "{out}"
    );
    assert!(out.contains("dangerously_trust_any_peer"), "{out}");
}

#[test]
fn unknown_keys_and_bad_toml_exit_2() {
    let (code, out) = run(&["check"], &(CLEAN.to_owned() + "\ntrusted = 1\n"), &[]);
    assert_eq!(code, 2);
    assert!(out.contains("unknown field"), "{out}");
    let (code, _) = run(&["check"], "[server", &[]);
    assert_eq!(code, 2);
}

#[test]
fn serve_refuses_to_start_with_errors() {
    let cfg = CLEAN.replace("trusted_proxies = [\"10.0.0.5\"]", "");
    let (code, out) = run(&["serve"], &cfg, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("will not start"), "{out}");
    assert!(!out.contains("listening"), "{out}");
}

#[test]
fn environment_overrides_the_file() {
    let cfg = CLEAN.replace("trusted_proxies = [\"10.0.0.5\"]", "");
    let (code, out) = run(
        &["check"],
        &cfg,
        &[(
            "VESTIBULE_SOURCE__HEADERS__TRUSTED_PROXIES",
            "[\"10.0.0.7\"]",
        )],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(
        &["check"],
        CLEAN,
        &[("VESTIBULE_ROUTE__0__AUTH", "sometimes")],
    );
    assert_eq!(code, 2);
    assert!(out.contains("route[0].auth"), "{out}");
}

#[test]
fn demo_refuses_non_loopback() {
    let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["demo", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}
