//! Databases for tests (cargo feature `testkit`): a private PostgreSQL
//! cluster on loopback, fresh databases in it, and SQLite URLs.
//!
//! ```toml
//! [dev-dependencies]
//! vestibule-store = { workspace = true, features = ["testkit"] }
//! ```
//!
//! ```no_run
//! # async fn demo() {
//! use vestibule_store::{StoreConfig, testkit};
//! // A new, empty database on this test binary's shared cluster.
//! let url = testkit::postgres_url();
//! let store = vestibule_store::open(&StoreConfig::new(url)).await.unwrap();
//! // Or SQLite in a temporary directory (keep `dir` alive).
//! let dir = tempfile::tempdir().unwrap();
//! let store = vestibule_store::open(&StoreConfig::new(testkit::sqlite_url(dir.path()))).await.unwrap();
//! # }
//! ```
//!
//! The cluster is made with Debian's `postgresql` package
//! (`/usr/lib/postgresql/<version>/bin`; `VESTIBULE_PG_BINDIR` overrides).
//! Missing binaries are a panic that says `apt-get install postgresql`:
//! tests never skip silently. `initdb` refuses to run as root, so as root
//! every server binary runs as the `postgres` system user (`runuser`), in
//! a directory chowned to it. The server listens on `127.0.0.1` on a free
//! port, with `fsync = on`, trust authentication for user `postgres`, and
//! its Unix socket in its own directory (no clash with a system server).
//!
//! [`shared`] starts one cluster per test binary (about 3 s, once) and
//! [`postgres_url`] makes a database per test in it, so tests can run in
//! parallel. A static is never dropped, so every cluster also has a
//! watchdog process that stops the server and deletes its directory when
//! the test binary exits, however it exits. [`PgCluster::start`] makes a
//! private cluster, stopped by PID when dropped, that a test may stop and
//! start again to simulate an outage.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const MISSING: &str = "PostgreSQL server binaries (initdb, pg_ctl) were not found in \
     $VESTIBULE_PG_BINDIR, /usr/lib/postgresql/<version>/bin or $PATH: \
     apt-get install postgresql";

/// A PostgreSQL server of its own, in a temporary directory.
#[derive(Debug)]
pub struct PgCluster {
    root: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    pid: Option<u32>,
    as_postgres: bool,
    watchdog: Option<Child>,
}

/// The cluster shared by every test of this test binary, started on first
/// use.
pub fn shared() -> &'static PgCluster {
    static SHARED: OnceLock<PgCluster> = OnceLock::new();
    SHARED.get_or_init(PgCluster::start)
}

/// A URL to a new, empty database on the [`shared`] cluster.
pub fn postgres_url() -> String {
    shared().create_database()
}

/// A SQLite URL for `vestibule.db` in `dir` (created on open).
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("vestibule.db").display())
}

impl PgCluster {
    /// `initdb` and start a server on a free loopback port. Panics (with
    /// the server log) when that fails.
    pub fn start() -> Self {
        let bin = bindir();
        let as_postgres = running_as_root();
        let mut builder = tempfile::Builder::new();
        builder.prefix("vestibule-pg-");
        // The `postgres` user must be able to reach the directory: root's
        // own TMPDIR may not be.
        let root = if as_postgres {
            builder.tempdir_in("/tmp")
        } else {
            builder.tempdir()
        }
        .unwrap_or_else(|e| panic!("cannot make a directory for PostgreSQL: {e}"))
        .keep();
        let mut cluster = Self {
            data: root.join("data"),
            root,
            bin,
            port: 0,
            pid: None,
            as_postgres,
            watchdog: None,
        };
        if as_postgres {
            run(
                Command::new("chown").arg("postgres:").arg(&cluster.root),
                "chown the cluster directory to `postgres`",
            );
        }
        let mut initdb = cluster.tool("initdb");
        initdb.arg("-D").arg(&cluster.data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run(&mut initdb, "initdb");
        let conf = format!(
            "\n# vestibule testkit\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             fsync = on\n\
             synchronous_commit = on\n\
             full_page_writes = on\n\
             max_connections = 200\n\
             shared_buffers = 16MB\n",
            cluster.root.display()
        );
        append(&cluster.data.join("postgresql.conf"), &conf);

        // A free port can be taken between probing and binding: retry.
        for attempt in 1..=5 {
            cluster.port = free_port();
            if cluster.try_start() {
                return cluster;
            }
            if attempt == 5 {
                panic!(
                    "PostgreSQL did not start; its log:\n{}",
                    std::fs::read_to_string(cluster.log_path()).unwrap_or_default()
                );
            }
        }
        unreachable!()
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for database `db` as the superuser `postgres`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// Creates a database with a fresh name and returns its URL.
    pub fn create_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let port = self.port.to_string();
        run(
            Command::new(self.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", &name])
                .env("PGCONNECT_TIMEOUT", "10"),
            "createdb",
        );
        self.url(&name)
    }

    /// Stops the server (fast shutdown: clients are disconnected), by PID.
    /// The data stays; [`PgCluster::start_again`] brings it back on the
    /// same port.
    pub fn stop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let Some(pid) = self.pid.take() else { return };
        signal("INT", pid);
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(pid) {
            signal("KILL", pid);
        }
    }

    /// Starts a stopped server again, on the same port. Panics if it does
    /// not come up.
    pub fn start_again(&mut self) {
        if self.pid.is_none() && !self.try_start() {
            panic!(
                "PostgreSQL did not restart; its log:\n{}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
        }
    }

    /// The server binary `tool`, run as `postgres` when we are root.
    fn tool(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn try_start(&mut self) -> bool {
        let mut pg_ctl = self.tool("pg_ctl");
        pg_ctl
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&self.data)
            .arg("-l")
            .arg(self.log_path())
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .stdin(Stdio::null());
        // `-l` sends the server's output to the log, so waiting for
        // pg_ctl's own output does not wait for the server.
        let ok = pg_ctl.output().map(|o| o.status.success()).unwrap_or(false);
        if !ok {
            return false;
        }
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()));
        let Some(pid) = pid else { return false };
        self.pid = Some(pid);
        self.watchdog = spawn_watchdog(pid, &self.root);
        true
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Stops server `pid` and deletes `root` once this process has exited.
/// It also exits when `root` disappears (the cluster was dropped).
fn spawn_watchdog(pid: u32, root: &Path) -> Option<Child> {
    const SCRIPT: &str = r#"
        parent=$1; pg=$2; dir=$3
        while kill -0 "$parent" 2>/dev/null && [ -d "$dir" ]; do sleep 0.5; done
        [ -d "$dir" ] || exit 0
        kill -INT "$pg" 2>/dev/null
        i=0
        while [ -e "$dir/data/postmaster.pid" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        [ -e "$dir/data/postmaster.pid" ] && kill -KILL "$pg" 2>/dev/null
        rm -rf "$dir"
    "#;
    Command::new("sh")
        .args(["-c", SCRIPT, "vestibule-pg-watchdog"])
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Where `initdb` and `pg_ctl` are.
fn bindir() -> PathBuf {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("VESTIBULE_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        assert!(has_tools(&dir), "{MISSING}");
        return dir;
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    if let Some((_, bin)) = debian {
        return bin;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|d| has_tools(d))
        .unwrap_or_else(|| panic!("{MISSING}"))
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free loopback port: {e}"))
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output();
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Runs `cmd` to completion; panics with its output if it fails.
fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}. {MISSING}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
