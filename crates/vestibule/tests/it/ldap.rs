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
    pub base: String,
}

impl Slapd {
    /// Starts slapd with `tree` (LDIF) loaded under `base`, with
    /// geOrchestra's schema.
    pub fn start(base: &str, tree: &str) -> Self {
        Self::start_with(base, tree, true)
    }

    /// Starts slapd, with or without geOrchestra's schema.
    pub fn start_with(base: &str, tree: &str, georchestra_schema: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             {schema}\n\
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Self {
            child: None,
            dir,
            port,
            base: base.to_owned(),
        };
        s.start_again();
        s
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// (Re)starts slapd on the same port and database.
    pub fn start_again(&mut self) {
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(self.url() + "/")
            // Foreground, no debug output.
            .arg("-d")
            .arg("0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while StdTcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "slapd did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
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
        let out = Command::new("ldapsearch")
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &self.url()])
            .args(["-D", &format!("cn=admin,{}", self.base), "-w", PASSWORD])
            .args(["-b", base, filter])
            .output()
            .unwrap();
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
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.url()])
            .args(["-D", &format!("cn=admin,{}", self.base), "-w", PASSWORD])
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

/// The gateway in front of a whoami app, with `[accounts.ldap]` on `ldap`.
async fn start_gateway(
    ldap: &Slapd,
    dir: tempfile::TempDir,
    provisioning: &str,
    ldap_extra: &str,
    env: &[(&str, &str)],
) -> (Gateway, String) {
    let up = start_whoami().await;
    let data = dir.path().join("data");
    let pw = dir.path().join("ldap-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let src = format!(
        "[source.headers]\ndialect = \"georchestra\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"{provisioning}\"\n\n\
         [database]\ndata_dir = \"{data}\"\n\n[accounts]\ncache_ttl = \"60s\"\n\n\
         [accounts.ldap]\nurl = \"{url}\"\nbind_dn = \"cn=admin,{base}\"\nbind_password_file = \"{pw}\"\nbase_dn = \"{base}\"\ntimeout = \"2s\"\n{ldap_extra}\n",
        data = data.display(),
        url = ldap.url(),
        base = ldap.base,
        pw = pw.display(),
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
        Raw::get(gw.addr, TRUSTED, "/", &h).await
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

#[tokio::test]
async fn georchestra_conflict_on_mail_waits_for_an_admin_and_overwrites_nothing() {
    let s = setup(GEO_BASE, &geo_tree(), "auto", &geo_extra("")).await;
    assert_eq!(Login::alice().send(&s.gw).await.status, 200);
    let before = s.ldap.search(GEO_BASE, "(objectClass=*)");
    // Another person (other subject, other uid) with alice's mail.
    let mallory = Login {
        username: "mallory",
        subject: "sub-mallory",
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
    assert_eq!(s.ldap.search(GEO_BASE, "(objectClass=*)"), before);
}

#[tokio::test]
async fn georchestra_directory_down_is_503_then_recovers() {
    let mut s = setup(GEO_BASE, &geo_tree(), "auto", &geo_extra("")).await;
    s.ldap.stop();
    let r = Login::alice().send(&s.gw).await;
    assert_eq!(r.status, 503, "{}", r.text());
    s.ldap.start_again();
    let r = Login::alice().send(&s.gw).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.gw.stderr());
    assert_eq!(s.ldap.dns(GEO_BASE, "(uid=alice)"), [user_dn("alice")]);
    assert_eq!(
        s.ldap.dns(GEO_BASE, "(cn=PSC)"),
        [format!("cn=PSC,ou=orgs,{GEO_BASE}")]
    );

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
    assert_eq!(s.ldap.dns(GEO_BASE, "(uid=bob)"), [user_dn("bob")]);
}

#[tokio::test]
async fn georchestra_a_failed_write_leaves_no_half_entry() {
    // EDITOR's group does not exist and cannot be created (an object
    // class the schema does not know), after the organisation and the
    // user were written: both go again.
    let s2 = setup(
        GEO_BASE,
        &geo_tree(),
        "auto",
        "layout = \"georchestra\"\nrole_object_classes = [\"top\", \"noSuchClass\"]\n[accounts.ldap.roles]\nEDITOR = [\"ROLE_EDITOR\"]\n",
    )
    .await;
    let login = Login {
        roles: Some("ROLE_EDITOR"),
        org: Some("NEWORG"),
        ..Login::alice()
    };
    let r = login.send(&s2.gw).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(s2.ldap.dns(GEO_BASE, "(uid=alice)").is_empty());
    assert!(s2.ldap.dns(GEO_BASE, "(|(cn=NEWORG)(o=NEWORG))").is_empty());
    assert!(
        s2.ldap
            .members(&format!("cn=USER,ou=roles,{GEO_BASE}"))
            .is_empty()
    );
}

#[tokio::test]
async fn georchestra_kill_between_the_directory_and_the_store_is_reconciled() {
    let ldap = Slapd::start(GEO_BASE, &geo_tree());
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_owned();
    let (mut gw, config) = start_gateway(
        &ldap,
        dir,
        "auto",
        &geo_extra(""),
        &[("FAILPOINTS", "ldap-after-directory-writes")],
    )
    .await;
    // The process dies after the directory writes, before the store says so.
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        let mut conn = Raw::connect(gw.addr, TRUSTED).await;
        let req = request(
            "GET",
            "/",
            &[
                ("sec-georchestra-preauthenticated", "true"),
                ("preauth-username", "alice"),
                ("preauth-email", "alice@example.org"),
                ("preauth-firstname", "Alice"),
                ("preauth-lastname", "Liddell"),
                ("preauth-org", "PSC"),
                ("preauth-provider", "myidp"),
                ("preauth-provider-id", "sub-alice"),
            ],
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.write_all(&req).await.unwrap();
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
        gw.stderr()
            .contains("failpoint ldap-after-directory-writes")
    );
    let dn = user_dn("alice");
    assert_eq!(ldap.dns(GEO_BASE, "(uid=alice)"), std::slice::from_ref(&dn));
    let store = vestibule_store::open(&StoreConfig::new(format!(
        "sqlite://{}",
        dir_path.join("data/vestibule.db").display()
    )))
    .await
    .unwrap();
    let account = alice_account(&*store).await;
    let link = store.directory_entry(account.id).await.unwrap().unwrap();
    assert!(!link.written, "the store still says: reconcile me");

    // Restarted without the failpoint: the next login adopts the entry
    // (same object identifier), writes nothing twice, and marks it written.
    let before = ldap.search(GEO_BASE, "(objectClass=*)");
    let dir2 = tempfile::tempdir().unwrap();
    let gw2 = Gateway::start_in(dir2, &config, &[]).await;
    assert_eq!(
        Login {
            username: "alice",
            ..Login::alice()
        }
        .send(&gw2)
        .await
        .status,
        200,
        "{}",
        gw2.stderr()
    );
    assert_eq!(ldap.search(GEO_BASE, "(objectClass=*)"), before);
    let link = store.directory_entry(account.id).await.unwrap().unwrap();
    assert!(link.written);
    assert_eq!(link.dn, dn);
}

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
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, password).unwrap();
    let cfg = dir.path().join("vestibule.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source.headers]\ndialect = \"georchestra\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n\
             [database]\ndata_dir = \"{data}\"\n\n[accounts]\n[accounts.ldap]\nurl = \"{url}\"\n\
             bind_dn = \"cn=admin,{base}\"\nbind_password_file = \"{pw}\"\nbase_dn = \"{base}\"\nlayout = \"{layout}\"\n\n\
             [[route]]\nname = \"app\"\npath_prefix = \"/\"\nupstream = \"http://127.0.0.1:9\"\n",
            data = dir.path().join("data").display(),
            url = ldap.url(),
            base = ldap.base,
            pw = pw.display(),
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["check", "--online", "--config"])
        .arg(&cfg)
        .env_remove("VESTIBULE_CONFIG")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
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
