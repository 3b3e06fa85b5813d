//! Accounts written to a real LDAP directory: Debian's `slapd`, started on
//! loopback with a private configuration (mdb in a temporary directory,
//! core/cosine/inetorgperson/nis plus geOrchestra's schema), and the real
//! gateway taking geOrchestra `preauth-*` logins. The directory is read back
//! with `ldapsearch`.

use std::collections::BTreeMap;
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vestibule_store::{AccountStatus, IdentityKey, Store, StoreConfig};

use crate::support::*;

const GEO_BASE: &str = "dc=georchestra,dc=org";
const GEN_BASE: &str = "dc=example,dc=org";
const PASSWORD: &str = "slapd-test-password";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap")
}

/// A private `slapd` on a loopback port, stopped on drop.
pub struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    /// The `ldaps://` port, when started with TLS.
    tls_port: Option<u16>,
    pub base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA made for one test: its PEM, and the issuer to sign with.
fn test_ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_owned());
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().unwrap()).unwrap()
}

impl Slapd {
    /// Starts slapd with `tree` (LDIF) loaded under `base`, with
    /// geOrchestra's schema.
    pub fn start(base: &str, tree: &str) -> Self {
        Self::start_with(base, tree, true)
    }

    /// Starts slapd, with or without geOrchestra's schema.
    pub fn start_with(base: &str, tree: &str, georchestra_schema: bool) -> Self {
        Self::start_full(base, tree, georchestra_schema, false)
    }

    /// Starts slapd with TLS: a CA and a server certificate for 127.0.0.1
    /// made here, `ldaps://` on a second port, StartTLS on the `ldap://`
    /// one, and `security tls=1`: nothing but the TLS handshake is allowed
    /// in clear, so a client that skipped TLS is refused, not served.
    pub fn start_tls(base: &str, tree: &str) -> Self {
        Self::start_full(base, tree, true, true)
    }

    fn start_full(base: &str, tree: &str, georchestra_schema: bool, tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let tls_conf = if tls {
            let ca = test_ca("slapd test CA");
            let mut p =
                rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                    .unwrap();
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "slapd test");
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &ca).unwrap();
            std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
            std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
            std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
            format!(
                "TLSCACertificateFile {d}/ca.pem\n\
                 TLSCertificateFile {d}/server.pem\n\
                 TLSCertificateKeyFile {d}/server.key\n\
                 security tls=1\n",
                d = dir.path().display()
            )
        } else {
            String::new()
        };
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             {schema}\n\
             {tls_conf}\
             pidfile {d}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             database mdb\n\
             suffix \"{base}\"\n\
             rootdn \"cn=admin,{base}\"\n\
             rootpw {PASSWORD}\n\
             directory {d}/db\n\
             maxsize 10485760\n",
            schema = if georchestra_schema {
                format!(
                    "include {}",
                    fixtures().join("georchestra.schema").display()
                )
            } else {
                String::new()
            },
            d = dir.path().display(),
        );
        std::fs::write(dir.path().join("slapd.conf"), conf).unwrap();
        std::fs::write(dir.path().join("tree.ldif"), tree).unwrap();
        let out = Command::new("/usr/sbin/slapadd")
            .arg("-f")
            .arg(dir.path().join("slapd.conf"))
            .arg("-l")
            .arg(dir.path().join("tree.ldif"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = Self {
            child: None,
            dir,
            port: free_port(),
            tls_port: tls.then(free_port),
            base: base.to_owned(),
        };
        s.start_again();
        s
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The `ldaps://` URL (started with TLS only).
    pub fn ldaps_url(&self) -> String {
        format!(
            "ldaps://127.0.0.1:{}",
            self.tls_port.expect("slapd with TLS")
        )
    }

    /// The PEM file of the CA that signed slapd's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `ldapsearch` / `ldapmodify` as the admin, over TLS when slapd has it.
    fn admin_tool(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        match self.tls_port {
            Some(_) => c
                .args(["-x", "-H", &self.ldaps_url()])
                .env("LDAPTLS_CACERT", self.ca_file()),
            None => c.args(["-x", "-H", &self.url()]),
        };
        c.args(["-D", &format!("cn=admin,{}", self.base), "-w", PASSWORD]);
        c
    }

    /// (Re)starts slapd on the same port and database.
    pub fn start_again(&mut self) {
        let mut urls = self.url() + "/";
        if self.tls_port.is_some() {
            urls = format!("{urls} {}/", self.ldaps_url());
        }
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(urls)
            // Foreground, no debug output.
            .arg("-d")
            .arg("0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        for port in std::iter::once(self.port).chain(self.tls_port) {
            while StdTcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "slapd did not start"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Stops slapd (SIGKILL: a directory that vanishes).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `ldapsearch` as the admin: entries (DN → attribute → values),
    /// attribute names lowercased.
    pub fn search(
        &self,
        base: &str,
        filter: &str,
    ) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
        let out = self
            .admin_tool("ldapsearch")
            .args(["-LLL", "-o", "ldif-wrap=no"])
            .args(["-b", base, filter])
            .output()
            .unwrap();
        // 32: no such object (the base does not exist), an empty answer.
        // Anything else (TLS, bind) must not pass for "nothing found".
        assert!(
            matches!(out.status.code(), Some(0 | 32)),
            "ldapsearch: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut entries = BTreeMap::new();
        for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let mut dn = String::new();
            let mut attrs: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for line in block.lines() {
                let Some((k, v)) = line.split_once(":: ").or_else(|| line.split_once(": ")) else {
                    continue;
                };
                if k == "dn" {
                    dn = v.to_owned();
                } else {
                    attrs
                        .entry(k.to_ascii_lowercase())
                        .or_default()
                        .push(v.to_owned());
                }
            }
            // Attribute values are sets (RFC 4512 §2.3): compare them sorted.
            for v in attrs.values_mut() {
                v.sort();
            }
            entries.insert(dn, attrs);
        }
        entries
    }

    /// `ldapmodify` as the admin.
    pub fn modify(&self, ldif: &str) {
        use std::io::Write;
        let mut child = self
            .admin_tool("ldapmodify")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ldapmodify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The DNs under `base` matching `filter`.
    pub fn dns(&self, base: &str, filter: &str) -> Vec<String> {
        self.search(base, filter).into_keys().collect()
    }

    /// The members of `group_dn`.
    pub fn members(&self, group_dn: &str) -> Vec<String> {
        let mut m = self
            .search(group_dn, "(objectClass=*)")
            .into_values()
            .next()
            .and_then(|mut a| a.remove("member"))
            .unwrap_or_default();
        m.sort();
        m
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Setup {
    gw: Gateway,
    ldap: Slapd,
    store: Arc<dyn Store>,
    dir_path: PathBuf,
    config: String,
}

fn geo_tree() -> String {
    std::fs::read_to_string(fixtures().join("georchestra-tree.ldif")).unwrap()
}

fn generic_tree() -> String {
    format!(
        "dn: {GEN_BASE}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: ou=people,{GEN_BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=pending,{GEN_BASE}\nobjectClass: organizationalUnit\nou: pending\n\n\
         dn: ou=groups,{GEN_BASE}\nobjectClass: organizationalUnit\nou: groups\n"
    )
}

/// The gateway in front of a whoami app, with `[accounts.ldap]` on `ldap`
/// (plain `ldap://` on loopback, the password from a file, 2 s timeout).
async fn start_gateway(
    ldap: &Slapd,
    dir: tempfile::TempDir,
    provisioning: &str,
    ldap_extra: &str,
    env: &[(&str, &str)],
) -> (Gateway, String) {
    let conn = format!(
        "url = \"{}\"\n{}timeout = \"2s\"\n",
        ldap.url(),
        password_file_line(dir.path())
    );
    start_gateway_with(&ldap.base, dir, provisioning, &conn, ldap_extra, env).await
}

/// `bind_password_file = ...`, the file written under `dir`.
fn password_file_line(dir: &Path) -> String {
    let pw = dir.join("ldap-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    format!("bind_password_file = \"{}\"\n", pw.display())
}

/// The gateway with `conn` (the URL, TLS, password and timeout lines of
/// `[accounts.ldap]`) and `ldap_extra` after them.
async fn start_gateway_with(
    base: &str,
    dir: tempfile::TempDir,
    provisioning: &str,
    conn: &str,
    ldap_extra: &str,
    env: &[(&str, &str)],
) -> (Gateway, String) {
    let up = start_whoami().await;
    let data = dir.path().join("data");
    let src = format!(
        "[source.headers]\ndialect = \"georchestra\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"{provisioning}\"\n\n\
         [database]\ndata_dir = \"{data}\"\n\n[accounts]\ncache_ttl = \"60s\"\nadmin_groups = [\"ROLE_ADMINISTRATOR\"]\n\n\
         [accounts.ldap]\n{conn}bind_dn = \"cn=admin,{base}\"\nbase_dn = \"{base}\"\n{ldap_extra}\n",
        data = data.display(),
    );
    let routes = route("app", "/", up, "profile = \"georchestra\"");
    let config = config(&src, &routes);
    let gw = Gateway::start_in(dir, &config, env).await;
    (gw, config)
}

async fn setup(base: &str, tree: &str, provisioning: &str, ldap_extra: &str) -> Setup {
    setup_with_env(base, tree, provisioning, ldap_extra, &[]).await
}

async fn setup_with_env(
    base: &str,
    tree: &str,
    provisioning: &str,
    ldap_extra: &str,
    env: &[(&str, &str)],
) -> Setup {
    let ldap = Slapd::start(base, tree);
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_owned();
    let (gw, config) = start_gateway(&ldap, dir, provisioning, ldap_extra, env).await;
    let store = vestibule_store::open(&StoreConfig::new(format!(
        "sqlite://{}",
        dir_path.join("data/vestibule.db").display()
    )))
    .await
    .unwrap();
    Setup {
        gw,
        ldap,
        store,
        dir_path,
        config,
    }
}

/// A geOrchestra pre-authenticated login, as the front sends it.
struct Login<'a> {
    username: &'a str,
    email: &'a str,
    first: &'a str,
    last: &'a str,
    org: Option<&'a str>,
    roles: Option<&'a str>,
    subject: &'a str,
}

impl<'a> Login<'a> {
    fn alice() -> Self {
        Self {
            username: "Alice",
            email: "alice@example.org",
            first: "Alice",
            last: "Liddell",
            org: Some("PSC"),
            roles: None,
            subject: "sub-alice",
        }
    }

    async fn send(&self, gw: &Gateway) -> Raw {
        Raw::get(gw.addr, TRUSTED, "/", &self.headers()).await
    }

    /// Sends the login to a gateway that is to die on it (a failpoint):
    /// no answer comes back.
    async fn send_to_dying(&self, gw: &mut Gateway, failpoint: &str) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let r = tokio::time::timeout(Duration::from_secs(10), async {
            let mut conn = Raw::connect(gw.addr, TRUSTED).await;
            conn.write_all(&request("GET", "/", &self.headers()))
                .await
                .unwrap();
            let mut buf = Vec::new();
            let _ = conn.read_to_end(&mut buf).await;
            buf
        })
        .await
        .unwrap();
        assert!(r.is_empty(), "no answer from a dead process");
        let status = gw.child.wait().await.unwrap();
        assert!(!status.success());
        assert!(
            gw.stderr().contains(&format!("failpoint {failpoint}")),
            "{}",
            gw.stderr()
        );
    }

    fn headers(&self) -> Vec<(&'a str, &'a str)> {
        let mut h = vec![
            ("sec-georchestra-preauthenticated", "true"),
            ("preauth-username", self.username),
            ("preauth-email", self.email),
            ("preauth-firstname", self.first),
            ("preauth-lastname", self.last),
            ("preauth-provider", "myidp"),
            ("preauth-provider-id", self.subject),
        ];
        if let Some(o) = self.org {
            h.push(("preauth-org", o));
        }
        if let Some(r) = self.roles {
            h.push(("preauth-roles", r));
        }
        h
    }
}

/// The account of `Login::alice()`'s subject.
async fn alice_account(store: &dyn Store) -> vestibule_store::Account {
    store
        .account_by_identity(&IdentityKey::new("georchestra", "sub-alice"))
        .await
        .unwrap()
        .expect("alice's account")
}

const GEO_ROLES: &str = "[accounts.ldap.roles]\nSUPERUSER = [\"ROLE_SUPERUSER\"]\n";

fn geo_extra(more: &str) -> String {
    format!("layout = \"georchestra\"\n{more}\n{GEO_ROLES}")
}

fn user_dn(uid: &str) -> String {
    format!("uid={uid},ou=users,{GEO_BASE}")
}

#[tokio::test]
async fn georchestra_first_login_writes_user_org_and_roles() {
    let s = setup(GEO_BASE, &geo_tree(), "auto", &geo_extra("")).await;
    let login = Login {
        roles: Some("ROLE_SUPERUSER;ROLE_ADMINISTRATOR"),
        ..Login::alice()
    };
    let r = login.send(&s.gw).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.gw.stderr());

    // The user, exactly.
    let users = s
        .ldap
        .search(&format!("ou=users,{GEO_BASE}"), "(uid=alice)");
    let dn = user_dn("alice");
    assert_eq!(users.keys().collect::<Vec<_>>(), [&dn]);
    let a = &users[&dn];
    assert_eq!(
        a["objectclass"],
        [
            "georchestraUser",
            "inetOrgPerson",
            "organizationalPerson",
            "person",
            "shadowAccount",
            "top"
        ]
    );
    assert_eq!(a["uid"], ["alice"]);
    assert_eq!(a["cn"], ["Alice Liddell"]);
    assert_eq!(a["sn"], ["Liddell"]);
    assert_eq!(a["givenname"], ["Alice"]);
    assert_eq!(a["mail"], ["alice@example.org"]);
    assert_eq!(a["oauth2provider"], ["myidp"]);
    assert_eq!(a["oauth2uid"], ["sub-alice"]);
    let uuid = &a["georchestraobjectidentifier"][0];
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert_eq!(&uuid[14..15], "4", "a version 4 UUID: {uuid}");
    let mut names: Vec<&String> = a.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cn",
            "georchestraobjectidentifier",
            "givenname",
            "mail",
            "oauth2provider",
            "oauth2uid",
            "objectclass",
            "sn",
            "uid"
        ]
    );

    // The organisation: two entries linked by seeAlso, one member.
    let orgs = s
        .ldap
        .search(&format!("ou=orgs,{GEO_BASE}"), "(|(cn=PSC)(o=PSC))");
    let group = &orgs[&format!("cn=PSC,ou=orgs,{GEO_BASE}")];
    assert_eq!(group["objectclass"], ["groupOfMembers", "top"]);
    assert_eq!(group["member"], std::slice::from_ref(&dn));
    assert_eq!(group["seealso"], [format!("o=PSC,ou=orgs,{GEO_BASE}")]);
    let ext = &orgs[&format!("o=PSC,ou=orgs,{GEO_BASE}")];
    assert_eq!(
        ext["objectclass"],
        ["georchestraOrg", "organization", "top"]
    );
    assert_eq!(ext["businesscategory"], ["Other"]);

    // Roles: USER always, SUPERUSER mapped, ADMINISTRATOR (unmapped) not.
    assert_eq!(
        s.ldap.members(&format!("cn=USER,ou=roles,{GEO_BASE}")),
        std::slice::from_ref(&dn)
    );
    assert_eq!(
        s.ldap.members(&format!("cn=SUPERUSER,ou=roles,{GEO_BASE}")),
        std::slice::from_ref(&dn)
    );
    assert!(
        s.ldap
            .members(&format!("cn=ADMINISTRATOR,ou=roles,{GEO_BASE}"))
            .is_empty()
    );
    assert!(
        s.gw.stderr().contains("ROLE_ADMINISTRATOR"),
        "the dropped role is logged: {}",
        s.gw.stderr()
    );

    // The store records the entry as written.
    let account = alice_account(&*s.store).await;
    let link = s.store.directory_entry(account.id).await.unwrap().unwrap();
    assert_eq!((link.dn.as_str(), link.written), (dn.as_str(), true));
    assert_eq!(&link.object_id, uuid);

    // geOrchestra's sec-roles carry the roles read back from the
    // directory, not what the front sent.
    assert_eq!(
        r.seen_headers()["sec-roles"],
        ["ROLE_SUPERUSER;ROLE_USER"],
        "{}",
        r.text()
    );

    // A second login changes nothing in the directory.
    let before = s.ldap.search(GEO_BASE, "(objectClass=*)");
    assert_eq!(login.send(&s.gw).await.status, 200);
    assert_eq!(s.ldap.search(GEO_BASE, "(objectClass=*)"), before);

    // An admin grants ADMINISTRATOR in the directory (as geOrchestra's
    // console does): the next read-back (here: a fresh gateway, so a cold
    // cache) forwards it.
    s.ldap.modify(&format!(
        "dn: cn=ADMINISTRATOR,ou=roles,{GEO_BASE}\nchangetype: modify\nadd: member\nmember: {dn}\n"
    ));
    let gw2 = Gateway::start_in(tempfile::tempdir().unwrap(), &s.config, &[]).await;
    let r = login.send(&gw2).await;
    assert_eq!(r.status, 200, "{}", gw2.stderr());
    assert_eq!(
        r.seen_headers()["sec-roles"],
        ["ROLE_ADMINISTRATOR;ROLE_SUPERUSER;ROLE_USER"]
    );
    assert_eq!(
        s.ldap.search(GEO_BASE, "(objectClass=*)").len(),
        before.len()
    );
}

/// A browser's parallel first requests: every one passes, one entry.
#[tokio::test]
async fn georchestra_parallel_first_logins_write_one_entry() {
    let s = setup(GEO_BASE, &geo_tree(), "auto", &geo_extra("")).await;
    let gw = &s.gw;
    let statuses = futures_util::future::join_all(
        (0..8).map(|_| async move { Login::alice().send(gw).await.status }),
    )
    .await;
    assert!(
        statuses.iter().all(|&c| c == 200),
        "{statuses:?}\n{}",
        s.gw.stderr()
    );
    assert_eq!(s.ldap.dns(GEO_BASE, "(uid=alice)"), [user_dn("alice")]);
    assert_eq!(
        s.ldap.members(&format!("cn=PSC,ou=orgs,{GEO_BASE}")),
        [user_dn("alice")]
    );
}

#[tokio::test]
async fn georchestra_sync_modifies_in_place_and_deletes_nothing() {
    let s = setup(GEO_BASE, &geo_tree(), "auto", &geo_extra("")).await;
    assert_eq!(Login::alice().send(&s.gw).await.status, 200);
    let dn = user_dn("alice");
    let first = s.ldap.search(&dn, "(objectClass=*)")[&dn].clone();
    let changed = Login {
        email: "alice@wonderland.example",
        last: "Pleasance",
        org: Some("C2C"),
        roles: Some("ROLE_SUPERUSER"),
        ..Login::alice()
    };
    let r = changed.send(&s.gw).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.gw.stderr());
    let after = s.ldap.search(&dn, "(objectClass=*)")[&dn].clone();
    assert_eq!(after["mail"], ["alice@wonderland.example"]);
    assert_eq!(after["sn"], ["Pleasance"]);
    assert_eq!(after["cn"], ["Alice Pleasance"]);
    assert_eq!(
        after["georchestraobjectidentifier"],
        first["georchestraobjectidentifier"]
    );
    // Newly mapped role added; the old organisation keeps its entries, the
    // user moves to the new one (one organisation per user).
    assert_eq!(
        s.ldap.members(&format!("cn=SUPERUSER,ou=roles,{GEO_BASE}")),
        std::slice::from_ref(&dn)
    );
    assert!(
        s.ldap
            .members(&format!("cn=PSC,ou=orgs,{GEO_BASE}"))
            .is_empty()
    );
    assert_eq!(
        s.ldap.members(&format!("cn=C2C,ou=orgs,{GEO_BASE}")),
        std::slice::from_ref(&dn)
    );
    assert_eq!(
        s.ldap
            .dns(&format!("ou=orgs,{GEO_BASE}"), "(objectClass=*)")
            .len(),
        5
    );
    // Roles are never removed by a sync.
    let fewer = Login {
        roles: None,
        ..changed
    };
    assert_eq!(fewer.send(&s.gw).await.status, 200);
    assert_eq!(
        s.ldap.members(&format!("cn=SUPERUSER,ou=roles,{GEO_BASE}")),
        [dn]
    );
}

#[tokio::test]
async fn georchestra_moderation_waits_in_pendingusers_until_approved() {
    let s = setup(GEO_BASE, &geo_tree(), "approval", &geo_extra("")).await;
    let r = Login::alice().send(&s.gw).await;
    assert_eq!(r.status, 403);
    assert!(
        r.text().contains("waiting for an administrator"),
        "{}",
        r.text()
    );
    let pending = format!("uid=alice,ou=pendingusers,{GEO_BASE}");
    assert_eq!(
        s.ldap.dns(GEO_BASE, "(uid=alice)"),
        std::slice::from_ref(&pending)
    );
    // The organisation lists the pending DN (as geOrchestra's console does).
    assert_eq!(
        s.ldap.members(&format!("cn=PSC,ou=orgs,{GEO_BASE}")),
        [pending]
    );

    // Approved with the CLI: the entry moves to ou=users at once, with its
    // memberships rewritten; the next login passes.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["users", "approve", "Alice", "--config"])
        .env("USER", "tester")
        .env_remove("SUDO_USER")
        .env_remove("VESTIBULE_CONFIG")
        .arg(s.dir_path.join("vestibule.toml"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dn = user_dn("alice");
    assert_eq!(
        s.ldap.dns(GEO_BASE, "(uid=alice)"),
        std::slice::from_ref(&dn)
    );
    assert_eq!(
        s.ldap.members(&format!("cn=PSC,ou=orgs,{GEO_BASE}")),
        std::slice::from_ref(&dn)
    );
    assert_eq!(
        s.ldap.members(&format!("cn=USER,ou=roles,{GEO_BASE}")),
        std::slice::from_ref(&dn)
    );
    let link = s
        .store
        .directory_entry(alice_account(&*s.store).await.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((link.dn.as_str(), link.written), (dn.as_str(), true));
    until_status(200, async || Login::alice().send(&s.gw).await.status).await;
    assert_eq!(s.ldap.dns(GEO_BASE, "(uid=alice)"), [dn]);
}

/// The two layouts, for the cases both must pass alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Georchestra,
    Generic,
}

/// One `#[tokio::test]` per layout, each running `body` (with `args`
/// after the layout).
macro_rules! per_layout {
    ($body:ident $(($($arg:expr),*))?: $geo:ident, $generic:ident) => {
        #[tokio::test]
        async fn $geo() {
            $body(Kind::Georchestra $($(, $arg)*)?).await;
        }

        #[tokio::test]
        async fn $generic() {
            $body(Kind::Generic $($(, $arg)*)?).await;
        }
    };
}

/// The role map of the parametrised cases: only SUPERUSER is mapped.
const ROLES: &str = "SUPERUSER = [\"ROLE_SUPERUSER\"]\n";

impl Kind {
    fn base(self) -> &'static str {
        match self {
            Kind::Georchestra => GEO_BASE,
            Kind::Generic => GEN_BASE,
        }
    }

    fn tree(self) -> String {
        match self {
            Kind::Georchestra => geo_tree(),
            Kind::Generic => generic_tree(),
        }
    }

    /// The tree with an `ou=disabledusers` for `disabled = "move"`.
    fn tree_with_disabled(self) -> String {
        format!(
            "{}\n\ndn: {}\nobjectClass: organizationalUnit\nou: disabledusers\n",
            self.tree().trim_end(),
            self.disabled()
        )
    }

    /// `[accounts.ldap]` lines: the layout, `more`, and the role map `roles`.
    fn extra(self, more: &str, roles: &str) -> String {
        let layout = match self {
            Kind::Georchestra => "georchestra",
            Kind::Generic => "inetorgperson",
        };
        format!("layout = \"{layout}\"\n{more}\n[accounts.ldap.roles]\n{roles}\n")
    }

    async fn setup(self, provisioning: &str, more: &str) -> Setup {
        self.setup_roles(provisioning, more, ROLES).await
    }

    /// With the role map `roles` instead of [`ROLES`].
    async fn setup_roles(self, provisioning: &str, more: &str, roles: &str) -> Setup {
        setup(
            self.base(),
            &self.tree(),
            provisioning,
            &self.extra(more, roles),
        )
        .await
    }

    /// `disabled = "move"`, with the tree's `ou=disabledusers`.
    async fn setup_moving_disabled(self) -> Setup {
        setup(
            self.base(),
            &self.tree_with_disabled(),
            "auto",
            &self.extra("disabled = \"move\"", ROLES),
        )
        .await
    }

    fn users(self) -> String {
        match self {
            Kind::Georchestra => format!("ou=users,{GEO_BASE}"),
            Kind::Generic => format!("ou=people,{GEN_BASE}"),
        }
    }

    fn pending(self) -> String {
        match self {
            Kind::Georchestra => format!("ou=pendingusers,{GEO_BASE}"),
            Kind::Generic => format!("ou=pending,{GEN_BASE}"),
        }
    }

    fn disabled(self) -> String {
        format!("ou=disabledusers,{}", self.base())
    }

    fn user_dn(self, uid: &str) -> String {
        format!("uid={uid},{}", self.users())
    }

    fn role_dn(self, role: &str) -> String {
        match self {
            Kind::Georchestra => format!("cn={role},ou=roles,{GEO_BASE}"),
            Kind::Generic => format!("cn={role},ou=groups,{GEN_BASE}"),
        }
    }

    /// The groups that list alice after a login of [`alice_superuser`]:
    /// the mapped role, and in geOrchestra also USER and her organisation.
    fn groups_of_alice(self) -> Vec<String> {
        let mut g = vec![self.role_dn("SUPERUSER")];
        if self == Kind::Georchestra {
            g.push(self.role_dn("USER"));
            g.push(format!("cn=PSC,ou=orgs,{GEO_BASE}"));
        }
        g
    }
}

/// Alice, sending a mapped role (SUPERUSER) and an unmapped one.
fn alice_superuser() -> Login<'static> {
    Login {
        roles: Some("ROLE_SUPERUSER;ROLE_ADMINISTRATOR"),
        ..Login::alice()
    }
}

/// The store and the directory agree on alice: one entry, at `dn`; every
/// group of hers lists `dn` and no group names her RDN in another of the
/// containers; the store records `dn` as written.
async fn assert_agree(kind: Kind, ldap: &Slapd, store: &dyn Store, dn: &str) {
    assert_eq!(ldap.dns(kind.base(), "(uid=alice)"), [dn]);
    for g in kind.groups_of_alice() {
        let members = ldap.members(&g);
        assert!(members.iter().any(|m| m == dn), "{g}: {members:?}");
    }
    for container in [kind.users(), kind.pending(), kind.disabled()] {
        let elsewhere = format!("uid=alice,{container}");
        if elsewhere != dn {
            assert!(
                ldap.dns(kind.base(), &format!("(member={elsewhere})"))
                    .is_empty(),
                "a group still names {elsewhere}"
            );
        }
    }
    let account = alice_account(store).await;
    let link = store.directory_entry(account.id).await.unwrap().unwrap();
    assert_eq!((link.dn.as_str(), link.written), (dn, true));
}

/// Opens the store of a gateway whose directory was `dir`.
async fn open_store(dir: &Path) -> Arc<dyn Store> {
    vestibule_store::open(&StoreConfig::new(format!(
        "sqlite://{}",
        dir.join("data/vestibule.db").display()
    )))
    .await
    .unwrap()
}

async fn conflict_waits_for_an_admin_and_overwrites_nothing(kind: Kind) {
    let s = kind.setup("auto", "").await;
    assert_eq!(Login::alice().send(&s.gw).await.status, 200);
    let before = s.ldap.search(kind.base(), "(objectClass=*)");
    // Another person (other subject, other uid) with alice's mail.
    let mallory = Login {
        username: "mallory",
        subject: "sub-mallory",
        roles: Some("ROLE_SUPERUSER"),
        ..Login::alice()
    };
    let r = mallory.send(&s.gw).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("already used"), "{}", r.text());
    // Same uid, other subject: a conflict too.
    let twin = Login {
        email: "twin@example.org",
        subject: "sub-twin",
        ..Login::alice()
    };
    assert_eq!(twin.send(&s.gw).await.status, 403);
    assert_eq!(s.ldap.search(kind.base(), "(objectClass=*)"), before);
    // The audit log names the other entry.
    let log = s
        .store
        .audit(&vestibule_store::AuditFilter {
            since: None,
            action: Some("directory".into()),
            subject: None,
            limit: 5,
        })
        .await
        .unwrap();
    assert!(
        log.iter()
            .any(|e| e.outcome == "conflict" && e.detail.contains(&kind.user_dn("alice"))),
        "{log:?}"
    );
}

per_layout!(conflict_waits_for_an_admin_and_overwrites_nothing: georchestra_conflict_on_mail_waits_for_an_admin_and_overwrites_nothing, generic_conflict_on_mail_waits_for_an_admin_and_overwrites_nothing);

async fn directory_down_is_503_then_recovers(kind: Kind) {
    let mut s = kind.setup("auto", "").await;
    s.ldap.stop();
    let r = alice_superuser().send(&s.gw).await;
    assert_eq!(r.status, 503, "{}", r.text());
    s.ldap.start_again();
    let r = alice_superuser().send(&s.gw).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.gw.stderr());
    assert_agree(kind, &s.ldap, &*s.store, &kind.user_dn("alice")).await;

    // The directory goes away while the pool holds a bound connection: the
    // next new user gets 503, and once it is back, the first login after
    // that passes (the dead connection is not reused).
    s.ldap.stop();
    let bob = Login {
        username: "bob",
        email: "bob@example.org",
        subject: "sub-bob",
        ..Login::alice()
    };
    assert_eq!(bob.send(&s.gw).await.status, 503);
    s.ldap.start_again();
    let r = bob.send(&s.gw).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.gw.stderr());
    assert_eq!(s.ldap.dns(kind.base(), "(uid=bob)"), [kind.user_dn("bob")]);

    // A restart between two logins, with no failed request in between:
    // the pooled connections died with it, and the first login after the
    // restart passes.
    s.ldap.stop();
    s.ldap.start_again();
    let carol = Login {
        username: "carol",
        email: "carol@example.org",
        subject: "sub-carol",
        ..Login::alice()
    };
    let r = carol.send(&s.gw).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.gw.stderr());
    assert_eq!(
        s.ldap.dns(kind.base(), "(uid=carol)"),
        [kind.user_dn("carol")]
    );
}

per_layout!(directory_down_is_503_then_recovers: georchestra_directory_down_is_503_then_recovers, generic_directory_down_is_503_then_recovers);

async fn a_failed_write_leaves_no_half_entry(kind: Kind) {
    // EDITOR's group does not exist and cannot be created (an object
    // class the schema does not know), after the organisation and the
    // user were written: both go again.
    let s = kind
        .setup_roles(
            "auto",
            "role_object_classes = [\"top\", \"noSuchClass\"]",
            "EDITOR = [\"ROLE_EDITOR\"]\n",
        )
        .await;
    let before = s.ldap.search(kind.base(), "(objectClass=*)");
    let login = Login {
        roles: Some("ROLE_EDITOR"),
        org: Some("NEWORG"),
        ..Login::alice()
    };
    let r = login.send(&s.gw).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(s.ldap.search(kind.base(), "(objectClass=*)"), before);
    assert!(s.ldap.dns(kind.base(), "(uid=alice)").is_empty());
    let link = s
        .store
        .directory_entry(alice_account(&*s.store).await.id)
        .await
        .unwrap();
    assert!(link.as_ref().is_none_or(|l| !l.written), "{link:?}");
}

per_layout!(a_failed_write_leaves_no_half_entry: georchestra_a_failed_write_leaves_no_half_entry, generic_a_failed_write_leaves_no_half_entry);

/// Kills vestibule at `failpoint` during alice's first login, then checks
/// the restarted gateway reconciles: one entry, every membership, the
/// store saying written.
async fn kill_mid_create_is_reconciled(kind: Kind, failpoint: &str) {
    let ldap = Slapd::start(kind.base(), &kind.tree());
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_owned();
    let (mut gw, config) = start_gateway(
        &ldap,
        dir,
        "auto",
        &kind.extra("", ROLES),
        &[("FAILPOINTS", failpoint)],
    )
    .await;
    alice_superuser().send_to_dying(&mut gw, failpoint).await;
    let dn = kind.user_dn("alice");
    assert_eq!(
        ldap.dns(kind.base(), "(uid=alice)"),
        std::slice::from_ref(&dn)
    );
    let role = kind.role_dn("SUPERUSER");
    if failpoint == "ldap-after-user-entry" {
        // Cut between the entry and its role memberships.
        assert!(ldap.members(&role).is_empty());
    } else {
        assert_eq!(ldap.members(&role), std::slice::from_ref(&dn));
    }
    let store = open_store(&dir_path).await;
    let account = alice_account(&*store).await;
    let link = store.directory_entry(account.id).await.unwrap().unwrap();
    assert!(!link.written, "the store still says: reconcile me");
    assert_eq!(link.dn, dn);

    // Restarted without the failpoint: the next login adopts the entry
    // (same DN and object identifier), completes what is missing, writes
    // nothing twice, and marks it written.
    let before = ldap.search(kind.base(), "(objectClass=*)");
    let gw2 = Gateway::start_in(tempfile::tempdir().unwrap(), &config, &[]).await;
    let r = alice_superuser().send(&gw2).await;
    assert_eq!(r.status, 200, "{}", gw2.stderr());
    assert_agree(kind, &ldap, &*store, &dn).await;
    let after = ldap.search(kind.base(), "(objectClass=*)");
    assert_eq!(after[&dn], before[&dn], "the entry is adopted as it is");
    if failpoint == "ldap-after-directory-writes" {
        assert_eq!(after, before, "nothing written twice");
    }
}

per_layout!(kill_mid_create_is_reconciled("ldap-after-directory-writes"): georchestra_kill_between_the_directory_and_the_store_is_reconciled, generic_kill_between_the_directory_and_the_store_is_reconciled);

per_layout!(kill_mid_create_is_reconciled("ldap-after-user-entry"): georchestra_kill_between_the_entry_and_its_roles_is_reconciled, generic_kill_between_the_entry_and_its_roles_is_reconciled);

/// Kills vestibule after the `modify` of a sync, before the store has the
/// new attributes: the restarted gateway brings the store level with the
/// directory.
async fn kill_mid_sync_is_reconciled(kind: Kind) {
    let ldap = Slapd::start(kind.base(), &kind.tree());
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_owned();
    let (gw, config) = start_gateway(&ldap, dir, "auto", &kind.extra("", ROLES), &[]).await;
    assert_eq!(alice_superuser().send(&gw).await.status, 200);
    // (Kept running: its directory holds the password file.)
    let _first = gw;
    let fp = "ldap-after-sync-modify";
    let mut gw =
        Gateway::start_in(tempfile::tempdir().unwrap(), &config, &[("FAILPOINTS", fp)]).await;
    let changed = Login {
        email: "alice@wonderland.example",
        last: "Pleasance",
        ..alice_superuser()
    };
    changed.send_to_dying(&mut gw, fp).await;
    let dn = kind.user_dn("alice");
    let entry = ldap.search(&dn, "(objectClass=*)")[&dn].clone();
    assert_eq!(entry["mail"], ["alice@wonderland.example"]);
    let store = open_store(&dir_path).await;
    assert_eq!(
        alice_account(&*store).await.email.as_deref(),
        Some("alice@example.org"),
        "the store has not caught up: the crash window"
    );

    let gw2 = Gateway::start_in(tempfile::tempdir().unwrap(), &config, &[]).await;
    assert_eq!(changed.send(&gw2).await.status, 200, "{}", gw2.stderr());
    assert_agree(kind, &ldap, &*store, &dn).await;
    let entry = ldap.search(&dn, "(objectClass=*)")[&dn].clone();
    assert_eq!(entry["mail"], ["alice@wonderland.example"]);
    assert_eq!(entry["sn"], ["Pleasance"]);
    // The store follows behind the request; it catches up at once.
    let started = Instant::now();
    while alice_account(&*store).await.email.as_deref() != Some("alice@wonderland.example") {
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

per_layout!(kill_mid_sync_is_reconciled: georchestra_kill_mid_sync_is_reconciled, generic_kill_mid_sync_is_reconciled);

/// `vestibule users ACTION Alice` against the gateway's config file, with
/// `env`; (success, stderr).
async fn users_cli(config_dir: &Path, action: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"));
    cmd.args(["users", action, "Alice", "--config"])
        .arg(config_dir.join("vestibule.toml"))
        .env("USER", "tester")
        .env_remove("SUDO_USER")
        .env_remove("VESTIBULE_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `disabled = "move"`: disabling moves the entry under ou=disabledusers
/// (memberships follow, nothing deleted), enabling moves it back.
async fn disabled_account_moves_and_comes_back(kind: Kind) {
    let s = kind.setup_moving_disabled().await;
    assert_eq!(alice_superuser().send(&s.gw).await.status, 200);
    let count = s.ldap.search(kind.base(), "(objectClass=*)").len();
    let (ok, err) = users_cli(&s.dir_path, "disable", &[]).await;
    assert!(ok, "{err}");
    // Moved by the command itself, at once.
    let moved = format!("uid=alice,{}", kind.disabled());
    assert_agree(kind, &s.ldap, &*s.store, &moved).await;
    assert_eq!(s.ldap.search(kind.base(), "(objectClass=*)").len(), count);
    until_status(403, async || alice_superuser().send(&s.gw).await.status).await;
    assert_eq!(s.ldap.dns(kind.base(), "(uid=alice)"), [moved.as_str()]);

    // Enabled again: back under the users, memberships rewritten; the
    // person passes again.
    let (ok, err) = users_cli(&s.dir_path, "enable", &[]).await;
    assert!(ok, "{err}");
    assert_agree(kind, &s.ldap, &*s.store, &kind.user_dn("alice")).await;
    assert_eq!(s.ldap.search(kind.base(), "(objectClass=*)").len(), count);
    until_status(200, async || alice_superuser().send(&s.gw).await.status).await;
}

per_layout!(disabled_account_moves_and_comes_back: georchestra_disabled_account_moves_and_comes_back, generic_disabled_account_moves_and_comes_back);

/// `vestibule users disable` dies between the `modrdn` and the membership
/// rewrites: the store still records the old DN, the groups name it. The
/// gateway's next request of the account finishes the move.
async fn kill_mid_move_is_reconciled(kind: Kind) {
    let s = kind.setup_moving_disabled().await;
    assert_eq!(alice_superuser().send(&s.gw).await.status, 200);
    let fp = "ldap-after-move";
    let (ok, err) = users_cli(&s.dir_path, "disable", &[("FAILPOINTS", fp)]).await;
    assert!(!ok && err.contains(&format!("failpoint {fp}")), "{err}");
    let moved = format!("uid=alice,{}", kind.disabled());
    let old = kind.user_dn("alice");
    assert_eq!(s.ldap.dns(kind.base(), "(uid=alice)"), [moved.as_str()]);
    assert_eq!(
        s.ldap.members(&kind.role_dn("SUPERUSER")),
        std::slice::from_ref(&old),
        "the crash window: groups name the old DN"
    );
    let account = alice_account(&*s.store).await;
    assert_eq!(account.status, AccountStatus::Disabled);
    let link = s.store.directory_entry(account.id).await.unwrap().unwrap();
    assert_eq!(link.dn, old);

    // The disabled person's next request: refused, and the move finished.
    until_status(403, async || alice_superuser().send(&s.gw).await.status).await;
    assert_agree(kind, &s.ldap, &*s.store, &moved).await;

    // A kill mid-way back (enable) is finished by the next login too.
    let (ok, err) = users_cli(&s.dir_path, "enable", &[("FAILPOINTS", fp)]).await;
    assert!(!ok && err.contains(&format!("failpoint {fp}")), "{err}");
    assert_eq!(s.ldap.dns(kind.base(), "(uid=alice)"), [old.as_str()]);
    until_status(200, async || alice_superuser().send(&s.gw).await.status).await;
    assert_agree(kind, &s.ldap, &*s.store, &old).await;
}

per_layout!(kill_mid_move_is_reconciled: georchestra_kill_mid_move_is_reconciled, generic_kill_mid_move_is_reconciled);

#[tokio::test]
async fn generic_layout_writes_inetorgperson_entries_and_groups() {
    let s = setup(
        GEN_BASE,
        &generic_tree(),
        "auto",
        "layout = \"inetorgperson\"\n[accounts.ldap.roles]\napp-users = [\"ROLE_USER\"]\n",
    )
    .await;
    let login = Login {
        roles: Some("ROLE_USER;ROLE_ADMINISTRATOR"),
        ..Login::alice()
    };
    let r = login.send(&s.gw).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.gw.stderr());
    // forward_roles is off by default here: the app gets the front's groups.
    assert_eq!(
        r.seen_headers()["sec-roles"],
        ["ROLE_USER;ROLE_ADMINISTRATOR"]
    );
    let dn = format!("uid=alice,ou=people,{GEN_BASE}");
    let e = s.ldap.search(GEN_BASE, "(uid=alice)");
    assert_eq!(e.keys().collect::<Vec<_>>(), [&dn]);
    let a = &e[&dn];
    assert_eq!(
        a["objectclass"],
        ["inetOrgPerson", "organizationalPerson", "person", "top"]
    );
    assert_eq!(a["cn"], ["Alice Liddell"]);
    assert_eq!(a["displayname"], ["Alice Liddell"]);
    assert_eq!(a["mail"], ["alice@example.org"]);
    assert!(!a.contains_key("oauth2uid"));
    // The mapped group is created with the member; nothing for ADMINISTRATOR.
    assert_eq!(
        s.ldap
            .members(&format!("cn=app-users,ou=groups,{GEN_BASE}")),
        std::slice::from_ref(&dn)
    );
    assert_eq!(
        s.ldap
            .dns(
                &format!("ou=groups,{GEN_BASE}"),
                "(objectClass=groupOfNames)"
            )
            .len(),
        1
    );

    // Sync, conflict.
    let changed = Login {
        email: "alice@wonderland.example",
        ..login
    };
    assert_eq!(changed.send(&s.gw).await.status, 200);
    assert_eq!(
        s.ldap.search(&dn, "(objectClass=*)")[&dn]["mail"],
        ["alice@wonderland.example"]
    );
    let other = Login {
        username: "bob",
        subject: "sub-bob",
        ..changed
    };
    assert_eq!(other.send(&s.gw).await.status, 403);
    assert!(s.ldap.dns(GEN_BASE, "(uid=bob)").is_empty());
}

#[tokio::test]
async fn generic_layout_moderation_and_outage() {
    let mut s = setup(
        GEN_BASE,
        &generic_tree(),
        "approval",
        "layout = \"inetorgperson\"\n",
    )
    .await;
    s.ldap.stop();
    assert_eq!(Login::alice().send(&s.gw).await.status, 503);
    s.ldap.start_again();
    assert_eq!(Login::alice().send(&s.gw).await.status, 403);
    assert_eq!(
        s.ldap.dns(GEN_BASE, "(uid=alice)"),
        [format!("uid=alice,ou=pending,{GEN_BASE}")]
    );
    let account = alice_account(&*s.store).await;
    assert_eq!(account.status, AccountStatus::Pending);
    s.store
        .set_status(account.id, AccountStatus::Active, 1)
        .await
        .unwrap();
    until_status(200, async || Login::alice().send(&s.gw).await.status).await;
    assert_eq!(
        s.ldap.dns(GEN_BASE, "(uid=alice)"),
        [format!("uid=alice,ou=people,{GEN_BASE}")]
    );
    let _ = &s.config;
}

/// `vestibule check --online`: `config` with the LDAP part pointed at
/// `ldap`; (exit code, stderr).
async fn check_online(ldap: &Slapd, layout: &str, password: &str) -> (i32, String) {
    check_online_conf(
        &ldap.base,
        &format!("url = \"{}\"\nlayout = \"{layout}\"\n", ldap.url()),
        password,
        &[],
    )
    .await
}

/// `vestibule check --online` with `conn` (URL, TLS, layout lines) and the
/// bind password from a file; (exit code, stderr).
async fn check_online_conf(
    base: &str,
    conn: &str,
    password: &str,
    env: &[(&str, &str)],
) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, password).unwrap();
    let pw_line = if conn.contains("bind_password_env") {
        String::new()
    } else {
        format!("bind_password_file = \"{}\"\n", pw.display())
    };
    let cfg = dir.path().join("vestibule.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source.headers]\ndialect = \"georchestra\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n\
             [database]\ndata_dir = \"{data}\"\n\n[accounts]\n[accounts.ldap]\n{conn}\
             bind_dn = \"cn=admin,{base}\"\n{pw_line}base_dn = \"{base}\"\n\n\
             [[route]]\nname = \"app\"\npath_prefix = \"/\"\nupstream = \"http://127.0.0.1:9\"\n",
            data = dir.path().join("data").display(),
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"));
    cmd.args(["check", "--online", "--config"])
        .arg(&cfg)
        .env_remove("VESTIBULE_CONFIG")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[tokio::test]
async fn check_online_binds_searches_and_names_a_missing_schema() {
    let geo = Slapd::start(GEO_BASE, &geo_tree());
    let (code, err) = check_online(&geo, "georchestra", PASSWORD).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("bound, base searched"), "{err}");
    let (code, err) = check_online(&geo, "georchestra", "wrong").await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bind as cn=admin"), "{err}");
    // A directory without geOrchestra's schema.
    let plain = Slapd::start_with(GEN_BASE, &generic_tree(), false);
    let (code, err) = check_online(&plain, "georchestra", PASSWORD).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no object class georchestraUser"), "{err}");
    let (code, err) = check_online(&plain, "inetorgperson", PASSWORD).await;
    assert_eq!(code, 0, "{err}");
}

#[tokio::test]
async fn generic_layout_moves_a_disabled_account_when_asked() {
    let tree = format!(
        "{}\ndn: ou=disabledusers,{GEN_BASE}\nobjectClass: organizationalUnit\nou: disabledusers\n",
        generic_tree()
    );
    let s = setup(
        GEN_BASE,
        &tree,
        "auto",
        "layout = \"inetorgperson\"\ndisabled = \"move\"\n[accounts.ldap.roles]\napp-users = [\"ROLE_USER\"]\n",
    )
    .await;
    let login = Login {
        roles: Some("ROLE_USER"),
        ..Login::alice()
    };
    assert_eq!(login.send(&s.gw).await.status, 200);
    let account = alice_account(&*s.store).await;
    s.store
        .set_status(account.id, AccountStatus::Disabled, 1)
        .await
        .unwrap();
    until_status(403, async || login.send(&s.gw).await.status).await;
    let moved = format!("uid=alice,ou=disabledusers,{GEN_BASE}");
    assert_eq!(
        s.ldap.dns(GEN_BASE, "(uid=alice)"),
        std::slice::from_ref(&moved)
    );
    assert_eq!(
        s.ldap
            .members(&format!("cn=app-users,ou=groups,{GEN_BASE}")),
        std::slice::from_ref(&moved)
    );
    let link = s.store.directory_entry(account.id).await.unwrap().unwrap();
    assert_eq!(link.dn, moved);
}

#[tokio::test]
async fn a_disabled_account_is_left_alone_by_default() {
    let s = setup(
        GEN_BASE,
        &generic_tree(),
        "approval",
        "layout = \"inetorgperson\"\n",
    )
    .await;
    assert_eq!(Login::alice().send(&s.gw).await.status, 403);
    let pending = format!("uid=alice,ou=pending,{GEN_BASE}");
    assert_eq!(
        s.ldap.dns(GEN_BASE, "(uid=alice)"),
        std::slice::from_ref(&pending)
    );
    let account = alice_account(&*s.store).await;
    s.store
        .set_status(account.id, AccountStatus::Disabled, 1)
        .await
        .unwrap();
    until_status(403, async || {
        let r = Login::alice().send(&s.gw).await;
        if r.text().contains("disabled") {
            r.status
        } else {
            0
        }
    })
    .await;
    assert_eq!(s.ldap.dns(GEN_BASE, "(uid=alice)"), [pending]);
}

/// Later logins: a changed name, email or group list is modified in place,
/// a newly mapped role added; nothing is deleted.
async fn sync_modifies_in_place(kind: Kind) {
    let s = kind.setup("auto", "").await;
    assert_eq!(Login::alice().send(&s.gw).await.status, 200);
    let dn = kind.user_dn("alice");
    let count = s.ldap.search(kind.base(), "(objectClass=*)").len();
    let changed = Login {
        email: "alice@wonderland.example",
        first: "Alicia",
        last: "Pleasance",
        roles: Some("ROLE_SUPERUSER;ROLE_ADMINISTRATOR"),
        ..Login::alice()
    };
    let r = changed.send(&s.gw).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.gw.stderr());
    let after = s.ldap.search(&dn, "(objectClass=*)")[&dn].clone();
    assert_eq!(after["mail"], ["alice@wonderland.example"]);
    assert_eq!(after["sn"], ["Pleasance"]);
    assert_eq!(after["givenname"], ["Alicia"]);
    assert_eq!(after["cn"], ["Alicia Pleasance"]);
    assert_eq!(s.ldap.dns(kind.base(), "(uid=alice)"), [dn.as_str()]);
    assert_eq!(s.ldap.members(&kind.role_dn("SUPERUSER")), [dn.as_str()]);
    assert!(s.ldap.members(&kind.role_dn("ADMINISTRATOR")).is_empty());
    // One entry more at most: the generic layout's SUPERUSER group, made
    // with its first member. Nothing deleted.
    let now = s.ldap.search(kind.base(), "(objectClass=*)").len();
    assert!(now == count || (kind == Kind::Generic && now == count + 1));
    // A role the front stops sending stays (docs/ldap.md, "Roles the front
    // stops sending").
    assert_eq!(
        Login {
            roles: None,
            ..changed
        }
        .send(&s.gw)
        .await
        .status,
        200
    );
    assert_eq!(s.ldap.members(&kind.role_dn("SUPERUSER")), [dn.as_str()]);
}

per_layout!(sync_modifies_in_place: georchestra_sync_of_names_and_roles, generic_sync_modifies_in_place_and_deletes_nothing);

/// Approving from the admin page moves the pending entry at once, with its
/// memberships, before the person signs in again.
async fn approve_from_the_admin_page_moves_the_entry(kind: Kind) {
    let s = kind
        .setup_roles(
            "approval",
            "",
            &format!("{ROLES}ADMINISTRATOR = [\"ROLE_ADMINISTRATOR\"]\n"),
        )
        .await;
    // An admin, approved out of band (as the first admin must be).
    let root = Login {
        username: "root",
        email: "root@example.org",
        subject: "sub-root",
        roles: Some("ROLE_ADMINISTRATOR"),
        ..Login::alice()
    };
    assert_eq!(root.send(&s.gw).await.status, 403);
    let root_id = s
        .store
        .account_by_identity(&IdentityKey::new("georchestra", "sub-root"))
        .await
        .unwrap()
        .unwrap()
        .id;
    s.store
        .set_status(root_id, AccountStatus::Active, 1)
        .await
        .unwrap();
    until_status(200, async || root.send(&s.gw).await.status).await;

    // Alice waits in the pending container.
    assert_eq!(alice_superuser().send(&s.gw).await.status, 403);
    let pending = format!("uid=alice,{}", kind.pending());
    assert_agree(kind, &s.ldap, &*s.store, &pending).await;

    // The admin approves her from the page.
    let r = Raw::get(s.gw.addr, TRUSTED, "/.vestibule/admin", &root.headers()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert!(html.contains("alice@example.org"), "{html}");
    let cookie = crate::pages::pair(&crate::pages::cookie_of(&r).unwrap());
    let csrf = crate::pages::csrf_in(&html);
    let alice = alice_account(&*s.store).await;
    let body = format!("csrf={csrf}&id={}&action=approve", alice.id);
    let mut req =
        "POST /.vestibule/admin/accounts HTTP/1.1\r\nHost: a\r\nConnection: close\r\n".to_owned();
    for (n, v) in root.headers() {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Cookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let r = Raw::send(s.gw.addr, TRUSTED, req.as_bytes()).await;
    assert_eq!(r.status, 303, "{}", r.text());
    // Moved by the page's request itself: the entry, its memberships, the
    // store's record.
    assert_eq!(
        s.store.account(alice.id).await.unwrap().unwrap().status,
        AccountStatus::Active
    );
    assert_agree(kind, &s.ldap, &*s.store, &kind.user_dn("alice")).await;
    until_status(200, async || alice_superuser().send(&s.gw).await.status).await;
    assert_agree(kind, &s.ldap, &*s.store, &kind.user_dn("alice")).await;
}

per_layout!(approve_from_the_admin_page_moves_the_entry: georchestra_approve_from_the_admin_page_moves_the_entry, generic_approve_from_the_admin_page_moves_the_entry);

/// `ldaps://` and `ldap://` + StartTLS against a slapd that refuses
/// anything without TLS: both work with the CA that signed slapd's
/// certificate; another CA (or the default roots) fails closed, in
/// `check --online` and at login (503, nothing written).
#[tokio::test]
async fn ldaps_and_starttls_work_with_the_ca_and_fail_closed_without_it() {
    let ldap = Slapd::start_tls(GEO_BASE, &geo_tree());
    let ca = ldap.ca_file();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("another-ca.pem");
    std::fs::write(&wrong, test_ca("another CA").pem()).unwrap();
    let ldaps = format!("url = \"{}\"\n", ldap.ldaps_url());
    let starttls = format!("url = \"{}\"\nstarttls = true\n", ldap.url());
    let ca_line = |f: &Path| format!("ca_file = \"{}\"\n", f.display());
    for conn in [&ldaps, &starttls] {
        let layout = "layout = \"georchestra\"\n";
        let (code, err) = check_online_conf(
            GEO_BASE,
            &format!("{conn}{layout}{}", ca_line(&ca)),
            PASSWORD,
            &[],
        )
        .await;
        assert_eq!(code, 0, "{conn}{err}");
        assert!(err.contains("bound, base searched"), "{err}");
        let (code, err) = check_online_conf(
            GEO_BASE,
            &format!("{conn}{layout}{}", ca_line(&wrong)),
            PASSWORD,
            &[],
        )
        .await;
        assert_eq!(code, 2, "{conn}{err}");
        assert!(err.contains("certificate"), "{conn}{err}");
        // The default trust (the Mozilla roots) does not know the test CA.
        let (code, err) =
            check_online_conf(GEO_BASE, &format!("{conn}{layout}"), PASSWORD, &[]).await;
        assert_eq!(code, 2, "{conn}{err}");
    }
    // Without TLS, slapd refuses the bind (confidentiality required): the
    // TLS cases above did run over TLS.
    let (code, err) = check_online_conf(
        GEO_BASE,
        &format!("url = \"{}\"\nlayout = \"georchestra\"\n", ldap.url()),
        PASSWORD,
        &[],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bind as cn=admin"), "{err}");

    // Logins: each connection kind with the right CA writes the entry,
    // with the wrong one is 503 and writes nothing.
    for (i, (conn, ca_file, want)) in [
        (&ldaps, &ca, 200),
        (&starttls, &ca, 200),
        (&ldaps, &wrong, 503),
        (&starttls, &wrong, 503),
    ]
    .into_iter()
    .enumerate()
    {
        let d = tempfile::tempdir().unwrap();
        let conn = format!(
            "{conn}{}{}timeout = \"2s\"\n",
            ca_line(ca_file),
            password_file_line(d.path())
        );
        let (gw, _) = start_gateway_with(
            GEO_BASE,
            d,
            "auto",
            &conn,
            &geo_extra(""),
            &[("RUST_LOG", "info")],
        )
        .await;
        let uid = format!("user{i}");
        let login = Login {
            username: &uid,
            email: &format!("{uid}@example.org"),
            subject: &format!("sub-{uid}"),
            ..Login::alice()
        }
        .send(&gw)
        .await;
        assert_eq!(login.status, want, "{conn}{}", gw.stderr());
        let written = ldap.dns(GEO_BASE, &format!("(uid={uid})"));
        if want == 200 {
            assert_eq!(written, [user_dn(&uid)]);
        } else {
            assert!(written.is_empty());
            assert!(gw.stderr().contains("certificate"), "{}", gw.stderr());
        }
    }
}

/// The bind password from the environment or a file; never in a log, not
/// even at trace level, not even when the bind fails.
#[tokio::test]
async fn bind_password_from_the_environment_or_a_file_is_never_logged() {
    let ldap = Slapd::start(GEN_BASE, &generic_tree());
    let from_env = format!(
        "url = \"{}\"\nbind_password_env = \"LDAP_BIND_PASSWORD\"\ntimeout = \"2s\"\n",
        ldap.url()
    );
    let extra = Kind::Generic.extra("", ROLES);
    let (gw, _) = start_gateway_with(
        GEN_BASE,
        tempfile::tempdir().unwrap(),
        "auto",
        &from_env,
        &extra,
        &[("LDAP_BIND_PASSWORD", PASSWORD), ("RUST_LOG", "trace")],
    )
    .await;
    let r = alice_superuser().send(&gw).await;
    assert_eq!(r.status, 200, "{}", gw.stderr());
    assert_eq!(
        ldap.dns(GEN_BASE, "(uid=alice)"),
        [Kind::Generic.user_dn("alice")]
    );
    assert!(gw.stderr().contains("directory entry created"));
    assert!(!gw.stderr().contains(PASSWORD), "{}", gw.stderr());

    // A wrong password: 503, the bind DN named, the password not.
    let wrong = "wrong-but-secret-4f1c";
    let (gw, _) = start_gateway_with(
        GEN_BASE,
        tempfile::tempdir().unwrap(),
        "auto",
        &from_env,
        &extra,
        &[("LDAP_BIND_PASSWORD", wrong), ("RUST_LOG", "trace")],
    )
    .await;
    let bob = Login {
        username: "bob",
        email: "bob@example.org",
        subject: "sub-bob",
        ..Login::alice()
    };
    assert_eq!(bob.send(&gw).await.status, 503);
    assert!(gw.stderr().contains("bind as cn=admin"), "{}", gw.stderr());
    assert!(!gw.stderr().contains(wrong), "{}", gw.stderr());

    // From a file: the other gateways of this file do that; here `check`.
    let env_conn = format!(
        "url = \"{}\"\nbind_password_env = \"LDAP_BIND_PASSWORD\"\n",
        ldap.url()
    );
    let (code, err) =
        check_online_conf(GEN_BASE, &env_conn, "", &[("LDAP_BIND_PASSWORD", PASSWORD)]).await;
    assert_eq!(code, 0, "{err}");
    let (code, err) =
        check_online_conf(GEN_BASE, &env_conn, "", &[("LDAP_BIND_PASSWORD", wrong)]).await;
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains(wrong), "{err}");
    let (code, err) = check_online_conf(GEN_BASE, &env_conn, "", &[]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("LDAP_BIND_PASSWORD is not set"), "{err}");
    let file_conn = format!("url = \"{}\"\n", ldap.url());
    let (code, err) = check_online_conf(GEN_BASE, &file_conn, wrong, &[]).await;
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains(wrong), "{err}");
    let (code, err) = check_online_conf(GEN_BASE, &file_conn, PASSWORD, &[]).await;
    assert_eq!(code, 0, "{err}");
}

/// A directory that accepts TCP but never answers: every login gets 503,
/// bounded by `timeout`, even with more parallel logins than the pool has
/// connections; `check --online` fails the same way.
#[tokio::test]
async fn a_directory_that_never_answers_is_503_within_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds every connection, and never writes a byte.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let d = tempfile::tempdir().unwrap();
    let conn = format!(
        "url = \"ldap://127.0.0.1:{port}\"\n{}timeout = \"1s\"\npool_size = 2\n",
        password_file_line(d.path())
    );
    let (gw, _) = start_gateway_with(
        GEN_BASE,
        d,
        "auto",
        &conn,
        &Kind::Generic.extra("", ROLES),
        &[],
    )
    .await;
    let started = Instant::now();
    let r = Login::alice().send(&gw).await;
    assert_eq!(r.status, 503, "{}", r.text());
    // Not a speed figure: a hang would take the 30 s of Raw::send, the
    // 1 s timeout bounds this one to a few seconds.
    assert!(started.elapsed() < Duration::from_secs(15));
    let gw = &gw;
    let statuses = futures_util::future::join_all((0..6).map(|i| async move {
        let uid = format!("p{i}");
        Login {
            username: &uid,
            subject: &uid,
            email: &format!("{uid}@example.org"),
            ..Login::alice()
        }
        .send(gw)
        .await
        .status
    }))
    .await;
    assert!(statuses.iter().all(|&c| c == 503), "{statuses:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let (code, err) = check_online_conf(
        GEN_BASE,
        &format!("url = \"ldap://127.0.0.1:{port}\"\ntimeout = \"1s\"\n"),
        PASSWORD,
        &[],
    )
    .await;
    assert_eq!(code, 2, "{err}");
}

/// `revoke_roles = true`: a mapped role follows the front's groups; USER
/// (always) and a role an admin granted that no rule names stay.
async fn revoked_roles_follow_the_front(kind: Kind) {
    let more = match kind {
        Kind::Georchestra => "revoke_roles = true",
        // groupOfNames must keep a member (RFC 4519 §3.5): groupOfMembers.
        Kind::Generic => "revoke_roles = true\nrole_object_classes = [\"top\", \"groupOfMembers\"]",
    };
    let s = kind.setup("auto", more).await;
    assert_eq!(alice_superuser().send(&s.gw).await.status, 200);
    let dn = kind.user_dn("alice");
    let superuser = kind.role_dn("SUPERUSER");
    assert_eq!(s.ldap.members(&superuser), [dn.as_str()]);
    // An admin grants ADMINISTRATOR by hand (no rule maps it).
    let admin = kind.role_dn("ADMINISTRATOR");
    s.ldap.modify(&match kind {
        Kind::Georchestra => {
            format!("dn: {admin}\nchangetype: modify\nadd: member\nmember: {dn}\n")
        }
        Kind::Generic => format!(
            "dn: {admin}\nchangetype: add\nobjectClass: top\nobjectClass: groupOfMembers\ncn: ADMINISTRATOR\nmember: {dn}\n"
        ),
    });
    // The front stops sending ROLE_SUPERUSER: the role goes, the rest stays.
    let fewer = Login {
        roles: Some("ROLE_OTHER"),
        ..Login::alice()
    };
    let r = fewer.send(&s.gw).await;
    assert_eq!(r.status, 200, "{}", s.gw.stderr());
    assert!(s.ldap.members(&superuser).is_empty());
    assert_eq!(s.ldap.members(&admin), [dn.as_str()]);
    if kind == Kind::Georchestra {
        assert_eq!(s.ldap.members(&kind.role_dn("USER")), [dn.as_str()]);
        assert_eq!(
            r.seen_headers()["sec-roles"],
            ["ROLE_ADMINISTRATOR;ROLE_USER"]
        );
    }
    // Sent again: granted again.
    assert_eq!(alice_superuser().send(&s.gw).await.status, 200);
    assert_eq!(s.ldap.members(&superuser), [dn.as_str()]);
}

per_layout!(revoked_roles_follow_the_front: georchestra_revoke_roles_follows_the_front, generic_revoke_roles_follows_the_front);

/// An entry geOrchestra's console wrote before vestibule (another uid,
/// the same `oAuth2Provider`/`oAuth2Uid`) is adopted, not duplicated and
/// not a conflict: it keeps its uid and identifier, gets the front's names,
/// and `default_org` gives the organisation the front did not send.
#[tokio::test]
async fn georchestra_adopts_an_entry_by_its_oauth2_identity_and_uses_default_org() {
    let existing = format!("uid=alice.l,ou=users,{GEO_BASE}");
    let uuid = "0b9a3c1e-5f6d-4c2b-9a8e-7d6c5b4a3f21";
    let tree = format!(
        "{}\n\ndn: {existing}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n\
         objectClass: inetOrgPerson\nobjectClass: shadowAccount\nobjectClass: georchestraUser\n\
         uid: alice.l\ncn: A L\nsn: L\nmail: alice@example.org\ngeorchestraObjectIdentifier: {uuid}\n\
         oAuth2Provider: myidp\noAuth2Uid: sub-alice\n",
        geo_tree().trim_end()
    );
    let s = setup(
        GEO_BASE,
        &tree,
        "auto",
        &geo_extra("default_org = \"GUEST\""),
    )
    .await;
    let r = Login {
        org: None,
        ..Login::alice()
    }
    .send(&s.gw)
    .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.gw.stderr());
    assert_eq!(
        s.ldap.dns(GEO_BASE, "(oAuth2Uid=sub-alice)"),
        [existing.as_str()]
    );
    assert!(s.ldap.dns(GEO_BASE, "(uid=alice)").is_empty());
    let e = &s.ldap.search(&existing, "(objectClass=*)")[existing.as_str()];
    assert_eq!(e["uid"], ["alice.l"]);
    assert_eq!(e["cn"], ["Alice Liddell"]);
    assert_eq!(e["sn"], ["Liddell"]);
    assert_eq!(e["givenname"], ["Alice"]);
    assert_eq!(e["georchestraobjectidentifier"], [uuid]);
    let link = s
        .store
        .directory_entry(alice_account(&*s.store).await.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (link.dn.as_str(), link.object_id.as_str(), link.written),
        (existing.as_str(), uuid, true)
    );
    assert_eq!(
        s.ldap.members(&format!("cn=GUEST,ou=orgs,{GEO_BASE}")),
        [existing.as_str()]
    );
    assert_eq!(
        s.ldap
            .dns(&format!("ou=orgs,{GEO_BASE}"), "(o=GUEST)")
            .len(),
        2,
        "the group and the organization entry"
    );
    assert_eq!(
        s.ldap.members(&format!("cn=USER,ou=roles,{GEO_BASE}")),
        [existing.as_str()]
    );
}

/// The generic layout with every override: container, naming attribute,
/// object classes, attribute mapping, group DN template.
#[tokio::test]
async fn generic_layout_overrides_reach_the_directory() {
    let tree = format!(
        "{}\ndn: ou=staff,{GEN_BASE}\nobjectClass: organizationalUnit\nou: staff\n\n\
         dn: ou=teams,{GEN_BASE}\nobjectClass: organizationalUnit\nou: teams\n",
        generic_tree()
    );
    let s = setup(
        GEN_BASE,
        &tree,
        "auto",
        &Kind::Generic.extra(
            "users_rdn = \"ou=staff\"\nrdn_attribute = \"cn\"\n\
             object_classes = [\"top\", \"person\", \"organizationalPerson\", \"inetOrgPerson\"]\n\
             attributes = { cn = \"uid\", sn = \"sn\", mail = \"mail\", employeeNumber = \"object_id\", displayName = \"display_name\" }\n\
             role_dn_template = \"cn=app-{role},ou=teams,{base}\"",
            ROLES,
        ),
    )
    .await;
    let r = alice_superuser().send(&s.gw).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.gw.stderr());
    let dn = format!("cn=alice,ou=staff,{GEN_BASE}");
    let entries = s.ldap.search(GEN_BASE, "(sn=Liddell)");
    assert_eq!(entries.keys().collect::<Vec<_>>(), [&dn]);
    let e = &entries[&dn];
    let mut names: Vec<&String> = e.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cn",
            "displayname",
            "employeenumber",
            "mail",
            "objectclass",
            "sn"
        ]
    );
    assert_eq!(e["cn"], ["alice"]);
    assert_eq!(e["displayname"], ["Alice Liddell"]);
    let link = s
        .store
        .directory_entry(alice_account(&*s.store).await.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e["employeenumber"], [link.object_id.as_str()]);
    assert_eq!(
        s.ldap
            .members(&format!("cn=app-SUPERUSER,ou=teams,{GEN_BASE}")),
        [dn.as_str()]
    );
    // A later login with a new email finds it by the recorded DN and its
    // identifier, and modifies it in place.
    let count = s.ldap.search(GEN_BASE, "(objectClass=*)").len();
    let changed = Login {
        email: "alice@wonderland.example",
        ..alice_superuser()
    };
    assert_eq!(changed.send(&s.gw).await.status, 200, "{}", s.gw.stderr());
    assert_eq!(
        s.ldap.search(&dn, "(objectClass=*)")[&dn]["mail"],
        ["alice@wonderland.example"]
    );
    assert_eq!(s.ldap.search(GEN_BASE, "(objectClass=*)").len(), count);
}
