//! Tests of [`validate`] over whole files: every error and warning it
//! reports, each at its key with a fix. The sections' own tests (defaults,
//! environment, closed choices) are in their modules.

use std::time::Duration;

use super::*;

const BASE: &str = r#"
[server]
listen = ["127.0.0.1:8080"]

[source.headers]
dialect = "authelia"
trusted_proxies = ["10.0.0.5"]

[[route]]
upstream = "http://127.0.0.1:3000"
name = "app"
"#;

const SRC: &str = "dialect = \"authelia\"\ntrusted_proxies = [\"10.0.0.5\"]";

fn diags(text: &str) -> Vec<Diagnostic> {
    let file = parse_with_env(text, std::iter::empty()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    validate(&file).1
}

fn has(text: &str, severity: Severity, key: &str) {
    let d = diags(text);
    assert!(
        d.iter()
            .any(|d| d.severity == severity && d.key.starts_with(key) && !d.fix.is_empty()),
        "expected {severity:?} at {key}, got {d:#?}\n{text}"
    );
}

/// Whether `text` is refused at `key`: by a diagnostic after loading, or,
/// for a closed choice, already when loading, with the valid values listed.
fn refused(text: &str, key: &str) {
    match parse_with_env(text, std::iter::empty()) {
        Ok(file) => {
            has(text, Severity::Error, key);
            assert!(
                validate(&file).0.is_none(),
                "settings despite an error at {key}"
            );
        }
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.starts_with(key) && e.contains("expected"),
                "expected a load error at {key} listing the valid values, got {e}\n{text}"
            );
        }
    }
}

#[test]
fn base_is_clean_and_yields_settings() {
    let file = parse_with_env(BASE, std::iter::empty()).unwrap();
    let (s, d) = validate(&file);
    assert!(d.is_empty(), "{d:#?}");
    let s = s.unwrap();
    assert_eq!(s.routes.len(), 1);
    assert_eq!(s.header_read_timeout, Duration::from_secs(10));
    assert_eq!(s.admin_listen, Some("127.0.0.1:9090".parse().unwrap()));
    // Client IP hops default to the trusted proxies.
    assert!(s.client_ip_hops.contains("10.0.0.5".parse().unwrap()));
}

#[test]
fn every_error() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "listen = [\"127.0.0.1:8080\"]",
            "listen = [\"localhost\"]",
            "server.listen[0]",
        ),
        (
            "listen = [\"127.0.0.1:8080\"]",
            "listen = []",
            "server.listen",
        ),
        (
            "[server]",
            "[server]\nadmin_listen = \"nope\"",
            "server.admin_listen",
        ),
        (
            "[server]",
            "[server]\nunix = [{ path = \"\" }]",
            "server.unix[0].path",
        ),
        (
            "[server]",
            "[server.tls]\nlisten = []\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n[server]",
            "server.tls.cert",
        ),
        (
            "[server]",
            "[server.tls]\nlisten = []\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n[server]",
            "server.tls.key",
        ),
        (
            "[server]",
            "[server.tls]\nlisten = []\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n[server]",
            "server.tls.listen",
        ),
        (
            "[server]",
            "[log]\nformat = \"xml\"\n[server]",
            "log.format",
        ),
        (
            "dialect = \"authelia\"",
            "dialect = \"keycloak\"",
            "source.headers.dialect",
        ),
        (
            "dialect = \"authelia\"",
            "dialect = \"custom\"",
            "source.headers.custom",
        ),
        (
            SRC,
            "dialect = \"custom\"\ntrusted_proxies = [\"10.0.0.5\"]\n[source.headers.custom]\nsubject = \"bad header\"",
            "source.headers.custom",
        ),
        (
            SRC,
            "dialect = \"custom\"\ntrusted_proxies = [\"10.0.0.5\"]\n[source.headers.custom]\nsubject = \"X-Id\"\ngroups_separator = \"::\"",
            "source.headers.custom",
        ),
        (
            "[\"10.0.0.5\"]",
            "[\"10.0.0.5/33\"]",
            "source.headers.trusted_proxies[0]",
        ),
        (
            "[\"10.0.0.5\"]",
            "[\"10.0.0.5/8\"]",
            "source.headers.trusted_proxies[0]",
        ),
        (
            "trusted_proxies = [\"10.0.0.5\"]",
            "",
            "source.headers.trusted_proxies",
        ),
        (
            "[\"10.0.0.5\"]",
            "[\"0.0.0.0/0\"]",
            "source.headers.trusted_proxies",
        ),
        (
            "[\"10.0.0.5\"]",
            "[\"::/0\"]",
            "source.headers.trusted_proxies",
        ),
        (
            "trusted_proxies = [\"10.0.0.5\"]",
            "trusted_proxies = [\"10.0.0.5\"]\nmax_value_bytes = 0",
            "source.headers.max_value_bytes",
        ),
        (
            "trusted_proxies = [\"10.0.0.5\"]",
            "trusted_proxies = [\"10.0.0.5\"]\nmax_groups_bytes = 100000",
            "source.headers.max_groups_bytes",
        ),
        (
            "[server]",
            "[client_ip]\ntrusted_hops = [\"x\"]\n[server]",
            "client_ip.trusted_hops[0]",
        ),
        (
            "[server]",
            "[client_ip]\nheader = \"x-real-ip\"\n[server]",
            "client_ip.header",
        ),
        (
            "[server]",
            "[auth]\nlogin_url = \"/login\"\n[server]",
            "auth.login_url",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nlogin_url = \"ftp://x/\"",
            "route[0].login_url",
        ),
        (
            "http://127.0.0.1:3000",
            "https://127.0.0.1:3000",
            "route[0].upstream",
        ),
        (
            "http://127.0.0.1:3000",
            "127.0.0.1:3000",
            "route[0].upstream",
        ),
        (
            "http://127.0.0.1:3000",
            "http://127.0.0.1:3000/?q=1",
            "route[0].upstream",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nauth = \"maybe\"",
            "route[0].auth",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nprofile = \"nginx\"",
            "route[0].profile",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nprofile = \"custom\"",
            "route[0].custom_profile",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nprofile = \"custom\"\n[route.custom_profile]\nheaders = {}",
            "route[0].custom_profile",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nprofile = \"custom\"\n[route.custom_profile]\nheaders = { \"bad name\" = \"username\" }",
            "route[0].custom_profile",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nprofile = \"custom\"\n[route.custom_profile]\nheaders = { \"X-A\" = \"password\" }",
            "route[0].custom_profile.headers.X-A",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nprofile = \"custom\"\n[route.custom_profile]\nheaders = { \"X-A\" = \"email\" }\nencoding = \"latin1\"",
            "route[0].custom_profile.encoding",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nhost = \"bad host\"",
            "route[0].host",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\ncredentials = [\"bearer\"]",
            "route[0].credentials",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\ncredentials = [\"cookie\"]",
            "route[0].credentials",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\ncredentials = [\"header\"]\ncredential_header = \"Authorization\"",
            "route[0].credential_header",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\ncredentials = [\"header\"]\ncredential_header = \"X-authentik-uid\"",
            "route[0].credential_header",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\ncredentials = [\"query\"]\ncredential_query = \"a b\"",
            "route[0].credential_query",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nmax_sso_age = \"0s\"",
            "route[0].max_sso_age",
        ),
        (
            "[server]",
            "[devices]\npairing_ttl = \"2h\"\n[server]",
            "devices.pairing_ttl",
        ),
        (
            "[server]",
            "[devices]\nfailures_per_minute = 0\n[server]",
            "devices.failures_per_minute",
        ),
        (
            "[server]",
            "[devices]\nmax_sso_age = \"0s\"\n[server]",
            "devices.max_sso_age",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\npath_prefix = \"api\"",
            "route[0].path_prefix",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\npath_prefix = \"/.vestibule/app\"",
            "route[0].path_prefix",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\npath_prefix = \"/.vestibule\"",
            "route[0].path_prefix",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\n[[route]]\nname = \"app\"\npath_prefix = \"/x\"\nupstream = \"http://127.0.0.1:1\"",
            "route[1].name",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\n[[route]]\nname = \"b\"\nupstream = \"http://127.0.0.1:1\"",
            "route",
        ),
    ];
    for (from, to, key) in cases {
        assert!(BASE.contains(from), "{from}");
        refused(&BASE.replacen(from, to, 1), key);
    }
}

#[test]
fn every_warning() {
    use Severity::Warning;
    let cases: &[(&str, &str, &str)] = &[
        (
            "[server]",
            "[server]\nadmin_listen = \"0.0.0.0:9090\"",
            "server.admin_listen",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\ncredentials = [\"query\"]\n[accounts]",
            "route[0].credentials",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nauth = \"public\"\ncredentials = [\"bearer\"]\n[accounts]",
            "route[0].credentials",
        ),
        (
            "[server]",
            "[client_ip]\ntrusted_hops = [\"0.0.0.0/0\"]\n[server]",
            "client_ip.trusted_hops",
        ),
        (
            SRC,
            "dialect = \"authelia\"\ntrusted_proxies = [\"10.0.0.5\"]\n[source.headers.custom]\nsubject = \"X\"",
            "source.headers.custom",
        ),
        (
            "[\"10.0.0.5\"]",
            "[\"0.0.0.0/0\"]\ndangerously_trust_any_peer = true",
            "source.headers.dangerously_trust_any_peer",
        ),
        (
            "[\"10.0.0.5\"]",
            "[\"172.17.0.0/16\"]",
            "source.headers.trusted_proxies[0]",
        ),
        (
            "[\"10.0.0.5\"]",
            "[\"192.168.0.0/20\"]",
            "source.headers.trusted_proxies[0]",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\nauth = \"public\"\nallow_groups = [\"a\"]",
            "route[0].allow_users",
        ),
        (
            "name = \"app\"",
            "name = \"app\"\ngrafana_email = true",
            "route[0].grafana_email",
        ),
    ];
    for (from, to, key) in cases {
        assert!(BASE.contains(from), "{from}");
        let text = BASE.replacen(from, to, 1);
        has(&text, Warning, key);
        let file = parse_with_env(&text, std::iter::empty()).unwrap();
        let (settings, d) = validate(&file);
        assert!(
            settings.is_some(),
            "a warning alone must not stop the server: {d:#?}"
        );
    }
    // No routes, and routes with no identity source.
    let no_routes = BASE.split("[[route]]").next().unwrap();
    has(no_routes, Warning, "route");
    let no_source = BASE.replace(
        "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"10.0.0.5\"]",
        "",
    );
    has(&no_source, Warning, "route[0].auth");
}

#[test]
fn dangerous_override_is_accepted_only_when_named() {
    let text = BASE.replace(
        "[\"10.0.0.5\"]",
        "[\"0.0.0.0/0\"]\ndangerously_trust_any_peer = true",
    );
    let file = parse_with_env(&text, std::iter::empty()).unwrap();
    let (s, d) = validate(&file);
    assert!(s.is_some());
    assert!(d.iter().all(|d| d.severity == Severity::Warning));
    assert!(d[0].message.contains("ANY"));
}

#[test]
fn server_limits_are_bounded() {
    for (line, key) in [
        ("max_connections = 0", "server.max_connections"),
        ("workers = 0", "server.workers"),
        ("workers = 1025", "server.workers"),
        ("max_request_headers = 2", "server.max_request_headers"),
        ("max_header_bytes = 100", "server.max_header_bytes"),
    ] {
        let text = format!(
            "[server]\n{line}\n[[route]]\nupstream = \"http://127.0.0.1:1\"\nauth = \"public\"\n"
        );
        let (s, d) = validate(&parse_with_env(&text, std::iter::empty()).unwrap());
        assert!(s.is_none());
        assert!(
            d.iter()
                .any(|d| d.key == key && d.severity == Severity::Error),
            "{d:#?}"
        );
    }
}

#[test]
fn prefixes_differing_only_in_case_with_incomparable_policies_warn() {
    let two = |a: &str, b: &str| {
        format!(
            "{BASE}\n[[route]]\nname = \"a\"\npath_prefix = \"/team\"\nupstream = \"http://127.0.0.1:3000\"\n{a}\n\n[[route]]\nname = \"b\"\npath_prefix = \"/TEAM\"\nupstream = \"http://127.0.0.1:3000\"\n{b}\n"
        )
    };
    has(
        &two("allow_groups = [\"a\"]", "allow_groups = [\"b\"]"),
        Severity::Warning,
        "route[2].path_prefix",
    );
    // Comparable policies: the stricter one applies, nothing to say.
    let d = diags(&two("allow_groups = [\"a\"]", ""));
    assert!(d.is_empty(), "{d:#?}");
}

/// `[client_certs]` (issue 18): what each mode needs.
#[test]
fn client_certificates_need_accounts_tls_and_trusted_peers() {
    const ACCOUNTS: &str = "\n[database]\ndata_dir = \"/var/lib/vestibule\"\n[accounts]\n";
    // Any existing file passes the check (it is read only when serving).
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let tls = format!(
        "[server.tls]\nlisten = [\"127.0.0.1:8443\"]\ncert = \"{file}\"\nkey = \"{file}\"\n"
    );
    let base = BASE.replacen("[source.headers]", &format!("{tls}\n[source.headers]"), 1);
    let on = |extra: &str| format!("{base}{ACCOUNTS}\n[client_certs]\nenabled = true\n{extra}");
    // Enabled with accounts: clean, and the settings carry the defaults.
    let file = parse_with_env(&on(""), std::iter::empty()).unwrap();
    let (settings, d) = validate(&file);
    assert!(d.iter().all(|d| d.severity != Severity::Error), "{d:#?}");
    let cc = settings.unwrap().client_certs.unwrap();
    assert_eq!(cc.validity, Duration::from_secs(365 * 86_400));
    assert_eq!(cc.key, crate::certs::LeafKey::Rsa2048);
    assert_eq!(cc.pkcs12, crate::certs::pkcs12::Pkcs12Form::Compatible);
    assert!(cc.hostnames.is_empty() && cc.forwarded.is_none());
    // Without accounts.
    refused(
        &format!("{base}\n[client_certs]\nenabled = true\n"),
        "client_certs.enabled",
    );
    // Set up but not enabled.
    refused(
        &format!("{base}{ACCOUNTS}\n[client_certs]\nhostnames = [\"a.test\"]\n"),
        "client_certs.enabled",
    );
    // Hostnames need vestibule's own TLS listener.
    refused(
        &format!("{BASE}{ACCOUNTS}\n[client_certs]\nenabled = true\nhostnames = [\"a.test\"]\n"),
        "client_certs.hostnames",
    );
    refused(&on("hostnames = [\"*.test\"]"), "client_certs.hostnames");
    // A forwarded header needs its format, a known one, and trusted peers.
    refused(
        &on("forwarded_header = \"X-Client-Cert\""),
        "client_certs.forwarded_header",
    );
    refused(
        &on("forwarded_header = \"X-Client-Cert\"\nforwarded_format = \"pem\""),
        "client_certs.forwarded_format",
    );
    let no_source = on("forwarded_header = \"X-Client-Cert\"\nforwarded_format = \"base64-der\"")
        .replace(&format!("[source.headers]\n{SRC}\n"), "");
    refused(&no_source, "client_certs.forwarded_header");
    refused(&on("validity = \"1000d\""), "client_certs.validity");
    refused(&on("crl_url = \"/crl\""), "client_certs.crl_url");
    refused(&on("key = \"rsa-1024\""), "client_certs.key");
    // The configured header is stripped like an identity header.
    let file = parse_with_env(
        &on("forwarded_header = \"X-My-Cert\"\nforwarded_format = \"rfc9440\""),
        std::iter::empty(),
    )
    .unwrap();
    let s = validate(&file).0.unwrap();
    assert!(s.identity_headers.contains("x_my_cert"));
}

/// `[oidc_provider]` (issue 14): defaults, and each refusal.
#[test]
fn oidc_provider_defaults_and_refusals() {
    const ACCOUNTS: &str = "\n[database]\ndata_dir = \"/var/lib/vestibule\"\n[accounts]\n";
    const SECRET: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let with = |provider: &str, client: &str| {
        format!(
            "{BASE}{ACCOUNTS}\n[oidc_provider]\nissuer = \"https://sso.example.com\"\n{provider}\n\
             [[oidc_provider.client]]\nclient_id = \"grafana\"\nkind = \"confidential\"\n\
             secret_sha256 = \"{SECRET}\"\n\
             redirect_uris = [\"https://grafana.example.com/login/generic_oauth\"]\n{client}\n"
        )
    };
    let file = parse_with_env(&with("", ""), std::iter::empty()).unwrap();
    let (settings, d) = validate(&file);
    assert!(d.iter().all(|d| d.severity != Severity::Error), "{d:#?}");
    let p = settings.unwrap().oidc_provider.unwrap();
    assert_eq!(p.issuer, "https://sso.example.com");
    assert_eq!(p.code_lifetime, Duration::from_secs(60));
    assert_eq!(p.refresh_grace, Duration::from_secs(10));
    assert_eq!(p.device_code_lifetime, Duration::from_secs(600));
    assert_eq!(p.device_poll_interval, Duration::from_secs(5));
    let client = &p.clients[0];
    assert_eq!(client.name, "grafana");
    assert_eq!(client.secret_hash.unwrap()[0], 0x9f);
    assert_eq!(client.id_token_alg, SigningAlgorithm::Rs256);
    assert_eq!(client.access_token_format, AccessTokenFormat::Opaque);
    assert_eq!(client.consent, ConsentMode::Explicit);
    assert!(client.require_pkce);
    assert_eq!(
        client.grants,
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    assert_eq!(client.access_token_lifetime, Duration::from_secs(600));
    assert_eq!(client.refresh_token_idle, Duration::from_secs(14 * 86_400));
    assert_eq!(
        client.refresh_token_absolute,
        Duration::from_secs(90 * 86_400)
    );
    assert_eq!(client.scopes, DEFAULT_CLIENT_SCOPES);

    // The provider needs the store.
    refused(&with("", "").replace(ACCOUNTS, "\n"), "oidc_provider");
    refused(
        &with("", "").replace("https://sso.example.com", "http://sso.example.com"),
        "oidc_provider.issuer",
    );
    refused(
        &with("", "").replace("https://sso.example.com", "https://sso.example.com/?x"),
        "oidc_provider.issuer",
    );
    refused(
        &with("code_lifetime = \"11m\"", ""),
        "oidc_provider.code_lifetime",
    );
    refused(
        &with("refresh_grace = \"2m\"", ""),
        "oidc_provider.refresh_grace",
    );
    for bad in ["0s", "31m"] {
        refused(
            &with(&format!("device_code_lifetime = \"{bad}\""), ""),
            "oidc_provider.device_code_lifetime",
        );
    }
    for bad in ["0s", "500ms", "1500ms", "61s"] {
        refused(
            &with(&format!("device_poll_interval = \"{bad}\""), ""),
            "oidc_provider.device_poll_interval",
        );
    }
    refused(
        &with("refresh_token_absolute = \"1d\"", ""),
        "oidc_provider.refresh_token_absolute",
    );
    let client = "oidc_provider.client[0]";
    refused(
        &with("", "").replace("\"grafana\"", "\"graf ana\""),
        &format!("{client}.client_id"),
    );
    refused(
        &with("", "").replace(&format!("secret_sha256 = \"{SECRET}\"\n"), ""),
        &format!("{client}.secret_sha256"),
    );
    refused(
        &with("", "").replace(SECRET, "abc"),
        &format!("{client}.secret_sha256"),
    );
    refused(
        &with("", "").replace("\"confidential\"", "\"public\""),
        &format!("{client}.secret_sha256"),
    );
    refused(
        &with("", "").replace("https://grafana.example.com", "http://grafana.example.com"),
        &format!("{client}.redirect_uris[0]"),
    );
    refused(
        &with("", "").replace("generic_oauth\"", "generic_oauth#x\""),
        &format!("{client}.redirect_uris[0]"),
    );
    refused(
        &with("", "require_pkce = false")
            .replace(&format!("secret_sha256 = \"{SECRET}\"\n"), "")
            .replace("\"confidential\"", "\"public\""),
        &format!("{client}.require_pkce"),
    );
    refused(
        &with("", "grants = [\"client_credentials\"]")
            .replace(&format!("secret_sha256 = \"{SECRET}\"\n"), "")
            .replace("\"confidential\"", "\"public\""),
        &format!("{client}.grants"),
    );
    refused(
        &with("", "scopes = [\"openid\", \"a\\\"b\"]"),
        &format!("{client}.scopes[1]"),
    );
    refused(
        &with("", "id_token_alg = \"HS256\""),
        &format!("{client}.id_token_alg"),
    );
    refused(
        &with("", "consent = \"never\""),
        &format!("{client}.consent"),
    );
    refused(
        &with(
            "",
            "backchannel_logout_uri = \"http://app.example.com/bcl\"",
        ),
        &format!("{client}.backchannel_logout_uri"),
    );
    // The same id twice.
    let twice = format!(
        "{}\n[[oidc_provider.client]]\nclient_id = \"grafana\"\nkind = \"public\"\n\
         redirect_uris = [\"app.immich:///oauth-callback\"]\n",
        with("", "")
    );
    refused(&twice, "oidc_provider.client[1].client_id");
    // A public native client with a loopback and a private-use redirect.
    let native = format!(
        "{}\n[[oidc_provider.client]]\nclient_id = \"cli\"\nkind = \"public\"\n\
         redirect_uris = [\"http://127.0.0.1/cb\", \"app.immich:///oauth-callback\"]\n",
        with("", "")
    );
    let d = diags(&native);
    assert!(d.iter().all(|d| d.severity != Severity::Error), "{d:#?}");
}
