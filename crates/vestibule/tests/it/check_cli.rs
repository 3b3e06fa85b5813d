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

#[test]
fn demo_print_config_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["demo", "--print-config", "--listen", "127.0.0.1:9100"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for placeholder in ["{whoami}", "{front}", "{data}"] {
        assert!(!text.contains(placeholder), "{placeholder} left:\n{text}");
    }
    assert!(text.contains("http://127.0.0.1:9100/.demo/login"), "{text}");
    let (code, report) = run(&["check"], &text, &[]);
    assert_eq!(code, 0, "{report}\n{text}");
}

/// Kills the child when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_demo_prints_a_working_admin_command_for_its_database() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Child(
        Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .args(["demo", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = demo.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("Press Ctrl-C to stop");
            if tx.send(line).is_err() || done {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("the demo did not start ({e}):\n{}", banner.join("\n")));
        let done = line.contains("Press Ctrl-C to stop");
        banner.push(line);
        if done {
            break;
        }
    }
    // The banner's command, as printed: `vestibule users --config <path> enable alice`.
    let line = banner
        .iter()
        .find(|l| l.trim_end().ends_with(" enable alice"))
        .unwrap_or_else(|| panic!("no admin command:\n{}", banner.join("\n")));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&words[..3], ["vestibule", "users", "--config"], "{line}");
    let config = words[3];
    assert!(std::path::Path::new(config).is_file(), "{config}");
    let users = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .args(["users", "--config", config])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // Lock alice (the demo's admin) out, then let her back in, from the terminal.
    let (code, out) = users(&["disable", "alice"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = users(&["show", "alice", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\"disabled\""), "{out}");
    let (code, out) = users(&["enable", "alice"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = users(&["show", "alice", "--json"]);
    assert!(out.contains("\"active\""), "{out}");
    assert_eq!(code, Some(0));
    // The same file passes `check`.
    let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["check", "--config", config])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 18: a client certificate is never asked for on the host where
/// browsers sign in or open vestibule's pages; `check` names the clash.
#[test]
fn a_certificate_hostname_on_the_sso_or_pages_host_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // Any existing file passes `check` (it is read only when serving).
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let base = format!(
        "{CLEAN}\n[server.tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"{file}\"\nkey = \"{file}\"\n\
         [database]\ndata_dir = \"{}\"\n[accounts]\n\
         [auth]\nlogin_url = \"https://SSO.example.org/login?rd={{url}}\"\n\
         [client_certs]\nenabled = true\n\
         crl_url = \"https://pages.example.org/.vestibule/client-ca.crl\"\n",
        dir.path().display()
    );
    // A host of its own: clean.
    let ok = format!("{base}hostnames = [\"ha-mtls.example.org\"]\n");
    let (code, out) = run(&["check"], &ok, &[]);
    assert_eq!(code, 0, "{out}");
    // The SSO front's login host (any case, a trailing dot): refused.
    let sso = format!("{base}hostnames = [\"ha-mtls.example.org\", \"sso.example.org.\"]\n");
    let (code, out) = run(&["check"], &sso, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("error: client_certs.hostnames[1]"), "{out}");
    assert!(out.contains("auth.login_url"), "{out}");
    // The pages host, where the CRL is published: refused.
    let pages = format!("{base}hostnames = [\"pages.example.org\"]\n");
    let (code, out) = run(&["check"], &pages, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("error: client_certs.hostnames[0]"), "{out}");
    assert!(out.contains("client_certs.crl_url"), "{out}");
    // `serve` refuses it too.
    let (code, out) = run(&["serve"], &pages, &[]);
    assert_eq!(code, 2, "{out}");
}
