//! Micro-benchmarks of the per-request trust decisions (see BENCHMARKS.md).
//!
//! Run with `cargo bench -p vestibule-core`. They measure; they assert no speed.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use vestibule_core::dialect::{Dialect, Preset, ValueLimits};
use vestibule_core::forwarded::{parse_forwarded, parse_x_forwarded_for, resolve_client_ip};
use vestibule_core::headers::IdentityHeaders;
use vestibule_core::net::{Peer, TrustedNetworks};
use vestibule_core::profile::{HeaderProfile, ProfileKind};
use vestibule_core::route::RouteTable;

/// A browser request as an Authelia-fronted proxy forwards it.
fn browser_request() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "photos.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        (
            "cookie",
            "authelia_session=abcdefghijklmnopqrstuvwxyz0123456789",
        ),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        ("x-forwarded-for", "203.0.113.7, 10.0.0.5"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "photos.example.com"),
        ("remote-user", "alice"),
        ("remote-groups", "admins,users,media"),
        ("remote-email", "alice@example.com"),
        ("remote-name", "Alice Liddell"),
    ] {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn trust_and_identity(c: &mut Criterion) {
    let trusted = TrustedNetworks::parse(&["10.0.0.5", "fd00::5"]).unwrap();
    let peer = Peer::tcp("::ffff:10.0.0.5".parse::<IpAddr>().unwrap());
    let dialect = Dialect::preset(Preset::Authelia);
    let limits = ValueLimits::default();
    let ids = IdentityHeaders::builtin().with_names(dialect.header_names());
    let profile = HeaderProfile::new(&ProfileKind::Remote).unwrap();
    let headers = browser_request();

    c.bench_function(
        "trust check + dialect mapping + profile (authelia → remote)",
        |b| {
            b.iter(|| {
                let trusted = black_box(peer).is_trusted(&trusted);
                assert!(trusted);
                let id = dialect.extract(black_box(&headers), &limits).unwrap();
                let mut out = black_box(&headers).clone();
                ids.strip(&mut out);
                let rendered = profile.render(id.as_ref());
                black_box((out, rendered))
            })
        },
    );

    c.bench_function("header hygiene: identity-header check of 15 headers", |b| {
        b.iter(|| {
            black_box(&headers)
                .keys()
                .filter(|n| ids.contains(n.as_str()))
                .count()
        })
    });
}

fn forwarded(c: &mut Criterion) {
    let trusted = TrustedNetworks::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap();
    let peer = Peer::tcp("127.0.0.1".parse().unwrap());
    let xff: &[&[u8]] = &[b"203.0.113.7, 198.51.100.2", b"10.0.0.5, 10.1.2.3"];
    let fwd: &[&[u8]] =
        &[b"for=203.0.113.7;proto=https, for=\"[2001:db8::1]:4711\", for=10.0.0.5;by=10.0.0.1"];
    c.bench_function("X-Forwarded-For parse + resolve (4 hops)", |b| {
        b.iter(|| {
            let hops = parse_x_forwarded_for(black_box(xff).iter().copied());
            resolve_client_ip(peer, &trusted, &hops)
        })
    });
    c.bench_function("Forwarded (RFC 7239) parse + resolve (3 elements)", |b| {
        b.iter(|| {
            let hops = parse_forwarded(black_box(fwd).iter().copied());
            resolve_client_ip(peer, &trusted, &hops)
        })
    });
}

fn routes(c: &mut Criterion) {
    let table = RouteTable::new([
        (Some("grafana.example.com"), "/"),
        (Some("photos.example.com"), "/"),
        (Some("photos.example.com"), "/api"),
        (Some("photos.example.com"), "/share"),
        (Some("*.example.com"), "/"),
        (None, "/public"),
        (None, "/admin"),
        (None, "/"),
    ])
    .unwrap();
    c.bench_function("route match (8 routes, every path reading)", |b| {
        b.iter(|| {
            table.find(
                black_box(Some("photos.example.com")),
                black_box("/api/assets/42/thumbnail"),
            )
        })
    });
}

/// A `[source.jwt]` request: verify the assertion and map its claims, per
/// algorithm (the signature check dominates).
fn assertions(c: &mut Criterion) {
    use vestibule_core::jwt::testing::TestSigner;
    use vestibule_core::jwt::{
        Algorithm, ClaimMapping, Expectations, Jwks, identity_from_claims, verify,
    };
    let signers = [
        TestSigner::es256("es"),
        TestSigner::rs256("rs"),
        TestSigner::ed25519("ed"),
    ];
    let jwks =
        Jwks::parse(TestSigner::jwks_json(&signers.iter().collect::<Vec<_>>()).as_bytes()).unwrap();
    let audiences = vec!["vestibule".to_owned()];
    let now = 1_800_000_000;
    let claims = serde_json::json!({
        "iss": "https://sso.example.com/", "aud": "vestibule", "sub": "7f3a2c",
        "exp": now + 300, "iat": now, "preferred_username": "alice",
        "email": "alice@example.com", "name": "Alice Liddell",
        "groups": ["family", "admins", "photos"],
    });
    let mapping = ClaimMapping::authentik();
    let expect = Expectations {
        issuer: "https://sso.example.com/",
        audiences: &audiences,
        algorithms: &Algorithm::ALL,
        now,
        leeway: 60,
        max_token_bytes: 16 * 1024,
    };
    for signer in &signers {
        let token = signer.sign(&claims);
        c.bench_function(
            &format!(
                "assertion verify + claims ({})",
                signer.algorithm().as_str()
            ),
            |b| {
                b.iter(|| {
                    let claims = verify(black_box(&token), &jwks, &expect).unwrap();
                    identity_from_claims(&claims, &mapping, "https://sso.example.com/", 1024, 8192)
                        .unwrap()
                })
            },
        );
    }
}

/// The request-stream tracker (`framing::stream`), run on every byte a
/// server connection reads: a typical browser GET head (about 400 bytes),
/// fed whole as one read, and ten such heads with a 4 KiB
/// `Content-Length` body each, fed in 1 KiB reads.
fn request_stream(c: &mut Criterion) {
    use vestibule_core::framing::stream::Tracker;
    let head = b"GET /photos/2024/holiday/index.html?view=grid&page=2 HTTP/1.1\r\n\
        Host: photos.example.com\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
        Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
        Accept-Language: en-GB,en;q=0.5\r\n\
        Accept-Encoding: gzip, deflate, br, zstd\r\n\
        Cookie: vestibule_session=0123456789abcdef0123456789abcdef0123456789ab\r\n\
        Connection: keep-alive\r\n\
        Upgrade-Insecure-Requests: 1\r\n\r\n";
    c.bench_function(
        &format!("request stream: one {}-byte GET head", head.len()),
        |b| {
            b.iter(|| {
                let mut t = Tracker::new(64 * 1024);
                black_box(t.feed(black_box(head)))
            })
        },
    );
    let mut post = head.to_vec();
    post.truncate(post.len() - 2);
    post.extend_from_slice(b"Content-Length: 4096\r\n\r\n");
    post.resize(post.len() + 4096, b'x');
    let stream: Vec<u8> = post.repeat(10);
    c.bench_function(
        &format!(
            "request stream: ten POSTs with 4 KiB bodies ({} bytes) in 1 KiB reads",
            stream.len()
        ),
        |b| {
            b.iter(|| {
                let mut t = Tracker::new(64 * 1024);
                for read in stream.chunks(1024) {
                    black_box(t.feed(black_box(read)));
                }
                t.heads()
            })
        },
    );
}

criterion_group!(
    benches,
    trust_and_identity,
    forwarded,
    routes,
    assertions,
    request_stream
);
criterion_main!(benches);
