//! `[client_certs]`: a TLS client certificate per device (issue 18).

use std::time::Duration;

use serde::Deserialize;
use vestibule_core::client_cert::{CertFormat, ForwardedCertSource};

use super::HumanDuration;
use super::diagnostic::Collector;
use crate::certs::LeafKey;
use crate::certs::pkcs12::Pkcs12Form;

/// Default `client_certs.validity`.
pub const DEFAULT_CERT_VALIDITY: &str = "365d";
/// The longest `client_certs.validity` accepted (Apple platforms refuse
/// longer TLS certificates; for client certificates it is a sane bound).
const MAX_CERT_VALIDITY: Duration = Duration::from_secs(825 * 86_400);

/// `[client_certs]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertsConfig {
    /// Whether owners may make certificate devices (needs `[accounts]`).
    /// Default `false`.
    #[serde(default)]
    pub enabled: bool,
    /// Host names on vestibule's own TLS listener (`[server.tls]`) where a
    /// client certificate is requested; never list the SSO or pages host
    /// (browsers would prompt). Default none.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// How long an issued certificate is valid. Default `"365d"`, at most
    /// `"825d"`.
    #[serde(default = "default_validity")]
    pub validity: HumanDuration,
    /// The key type offered first on the devices page: `"rsa-2048"`
    /// (default; imports everywhere) or `"p256"`.
    #[serde(default)]
    pub key: LeafKey,
    /// The PKCS#12 form offered first: `"compatible"` (default; 3DES and
    /// an HMAC-SHA1 MAC, which every platform opens) or `"aes"`.
    #[serde(default)]
    pub pkcs12: Pkcs12Form,
    /// The public URL of the CRL (`/.vestibule/client-ca.crl` on the pages
    /// host), written into issued certificates for fronts that check
    /// revocation themselves. Default none (no CRL distribution point).
    pub crl_url: Option<String>,
    /// The header a TLS-terminating front forwards the client certificate
    /// in, read only from `[source]` trusted peers. Default none.
    pub forwarded_header: Option<String>,
    /// Its format: `"nginx-escaped-pem"`, `"base64-der"` (Caddy, HAProxy),
    /// `"traefik-chain"` or `"rfc9440"`. Required with `forwarded_header`.
    pub forwarded_format: Option<String>,
    /// A header carrying the front's verification result (nginx
    /// `$ssl_client_verify`): anything but `SUCCESS` means no certificate.
    /// Default none.
    pub forwarded_verify_header: Option<String>,
}

impl Default for ClientCertsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            hostnames: Vec::new(),
            validity: default_validity(),
            key: LeafKey::default(),
            pkcs12: Pkcs12Form::default(),
            crl_url: None,
            forwarded_header: None,
            forwarded_format: None,
            forwarded_verify_header: None,
        }
    }
}

fn default_validity() -> HumanDuration {
    HumanDuration::parse(DEFAULT_CERT_VALIDITY).unwrap_or_default()
}

/// `[client_certs]`, checked.
#[derive(Debug, Clone, Default)]
pub struct ClientCertSettings {
    /// Certificate hostnames on the own TLS listener, lowercase.
    pub hostnames: Vec<String>,
    /// Validity of issued certificates.
    pub validity: Duration,
    /// Default key type.
    pub key: LeafKey,
    /// Default PKCS#12 form.
    pub pkcs12: Pkcs12Form,
    /// CRL URL written into certificates.
    pub crl_url: Option<String>,
    /// The forwarded-certificate source, from trusted peers.
    pub forwarded: Option<ForwardedCertSource>,
}

impl ClientCertsConfig {
    /// Checks `[client_certs]`; `None` when disabled.
    pub(super) fn validate(
        &self,
        c: &mut Collector,
        accounts: bool,
        tls: bool,
        trusted_peers: bool,
        browser_hosts: &[(String, String)],
    ) -> Option<ClientCertSettings> {
        if !self.enabled {
            if !self.hostnames.is_empty() || self.forwarded_header.is_some() {
                c.error(
                    "client_certs.enabled",
                    "client-certificate hostnames or a forwarded header are set, but certificates are not enabled",
                    "set client_certs.enabled = true",
                );
            }
            return None;
        }
        if !accounts {
            c.error(
                "client_certs.enabled",
                "certificate devices belong to accounts, and [accounts] is not configured",
                "configure [accounts], or turn client_certs off",
            );
        }
        let validity = self.validity.0;
        if validity < Duration::from_secs(86_400) || validity > MAX_CERT_VALIDITY {
            c.error(
                "client_certs.validity",
                "a certificate must be valid for at least a day and at most 825 days",
                "keep the default, \"365d\"",
            );
        }
        if !self.hostnames.is_empty() && !tls {
            c.error(
                "client_certs.hostnames",
                "vestibule asks for client certificates only on its own TLS listener, and [server.tls] is not configured",
                "configure [server.tls], or let the front terminate TLS and forward the certificate (forwarded_header)",
            );
        }
        let hostnames: Vec<String> = self
            .hostnames
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        for (i, h) in hostnames.iter().enumerate() {
            if h.is_empty() || h.contains([':', '/', ' ', '*']) {
                c.error(
                    format!("client_certs.hostnames[{i}]"),
                    format!("`{h}` is not a host name"),
                    "give a plain DNS name, e.g. \"ha-mtls.example.org\"",
                );
            }
        }
        // Never on the SSO or pages host (issue 18): a browser that holds
        // a certificate vestibule's CA issued would be prompted for it on
        // every sign-in, and a CertificateRequest cannot be taken back
        // per path (rustls has neither renegotiation nor post-handshake
        // auth, RFC 8446 §4.6.2).
        for (i, h) in hostnames.iter().enumerate() {
            if let Some((field, _)) = browser_hosts.iter().find(|(_, b)| b == h) {
                c.error(
                    format!("client_certs.hostnames[{i}]"),
                    format!(
                        "`{h}` is the host of `{field}`, where browsers sign in or open vestibule's pages: \
                         they would be asked for a client certificate there"
                    ),
                    "give certificate devices a host name of their own, e.g. \"ha-mtls.example.org\"",
                );
            }
        }
        if let Some(url) = &self.crl_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            c.error(
                "client_certs.crl_url",
                "the CRL URL must be an absolute http(s) URL",
                "e.g. \"https://sso.example.org/.vestibule/client-ca.crl\"",
            );
        }
        let forwarded = match (&self.forwarded_header, &self.forwarded_format) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                c.error(
                    "client_certs.forwarded_header",
                    "forwarded_header and forwarded_format go together",
                    "set both, e.g. forwarded_header = \"X-Client-Cert\", forwarded_format = \"base64-der\"",
                );
                None
            }
            (Some(header), Some(format)) => match CertFormat::from_config_name(format) {
                None => {
                    c.error(
                        "client_certs.forwarded_format",
                        format!("unknown format `{format}`"),
                        "one of nginx-escaped-pem, base64-der, traefik-chain, rfc9440",
                    );
                    None
                }
                Some(format) => Some(ForwardedCertSource {
                    header: header.clone(),
                    format,
                    verify_header: self.forwarded_verify_header.clone(),
                }),
            },
        };
        if forwarded.is_some() && !trusted_peers {
            c.error(
                "client_certs.forwarded_header",
                "a forwarded client certificate is believed only from trusted peers, and [source] trusts none",
                "set [source] trusted to the front's address",
            );
        }
        Some(ClientCertSettings {
            hostnames,
            validity,
            key: self.key,
            pkcs12: self.pkcs12,
            crl_url: self.crl_url.clone(),
            forwarded,
        })
    }
}

/// The hosts browsers sign in on or open vestibule's pages on, each with
/// the setting that names it: the SSO front's login and logout pages,
/// vestibule's own OIDC callback and provider, and the CRL's address (on
/// the pages host). Lowercase, without a trailing dot; unparsable URLs are
/// left to their own checks.
pub(super) fn browser_hosts(file: &super::FileConfig) -> Vec<(String, String)> {
    let mut urls: Vec<(String, &str)> = Vec::new();
    fn add<'a>(urls: &mut Vec<(String, &'a str)>, field: String, url: Option<&'a String>) {
        if let Some(u) = url {
            urls.push((field, u.as_str()));
        }
    }
    add(
        &mut urls,
        "auth.login_url".into(),
        file.auth.login_url.as_ref(),
    );
    add(
        &mut urls,
        "auth.logout_url".into(),
        file.auth.logout_url.as_ref(),
    );
    for (i, r) in file.routes.iter().enumerate() {
        add(
            &mut urls,
            format!("route[{i}].login_url"),
            r.login_url.as_ref(),
        );
    }
    if let Some(o) = file.source.oidc.as_ref().filter(|o| o.enabled) {
        add(
            &mut urls,
            "source.oidc.redirect_url".into(),
            Some(&o.redirect_url),
        );
    }
    if let Some(p) = &file.oidc_provider {
        add(&mut urls, "oidc_provider.issuer".into(), Some(&p.issuer));
    }
    add(
        &mut urls,
        "client_certs.crl_url".into(),
        file.client_certs.crl_url.as_ref(),
    );
    urls.into_iter()
        .filter_map(|(field, url)| {
            // `{url}` placeholders in login URLs are in the query, after
            // the authority; make them parse.
            let uri: http::Uri = url.replace(['{', '}'], "").parse().ok()?;
            let host = uri.host()?.trim_end_matches('.').to_ascii_lowercase();
            Some((field, host))
        })
        .collect()
}
