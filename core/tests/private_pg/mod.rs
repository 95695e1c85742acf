//! A PostgreSQL cluster of the test's own (initdb on a free port, in a temporary directory),
//! for tests that must stop and start the server or need settings the machine's shared
//! PostgreSQL does not have. Built from the machine's PostgreSQL binaries
//! (`/usr/lib/postgresql/*/bin`, or `STRONGROOM_TEST_PG_BIN`); when they are missing the test
//! fails and says so.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PrivatePg {
    _dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

fn bin_dir() -> PathBuf {
    if let Ok(p) = std::env::var("STRONGROOM_TEST_PG_BIN") {
        return PathBuf::from(p);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "this test runs a PostgreSQL cluster of its own and needs initdb and pg_ctl: none \
             under /usr/lib/postgresql/*/bin (install PostgreSQL or set STRONGROOM_TEST_PG_BIN)"
        )
    })
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Run a PostgreSQL tool; as root, as the `postgres` user (PostgreSQL refuses to run as root).
fn run(bin: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    let exe = bin.join(tool);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PrivatePg {
    /// initdb (trust auth; no fsync, which only an OS crash would notice, but commits are
    /// synchronous so that a killed server keeps what it acknowledged) and start it.
    pub fn start() -> PrivatePg {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                ok,
                "cannot hand the scratch cluster's directory to the postgres user"
            );
            std::fs::set_permissions(
                dir.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }
        let out = run(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePg {
            _dir: dir,
            data,
            log,
            bin,
            port: free_port(),
        };
        pg.up();
        pg
    }

    /// Like [`PrivatePg::start`], but the server speaks TLS with `cert_pem` / `key_pem` and
    /// refuses every TCP connection that does not (`hostnossl … reject`).
    #[allow(dead_code, reason = "each test binary uses a part of this module")]
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> PrivatePg {
        let pg = PrivatePg::start();
        pg.kill();
        let write = |name: &str, text: &str, mode: u32| {
            let path = pg.data.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
            if is_root() {
                let ok = Command::new("chown")
                    .arg("postgres")
                    .arg(&path)
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                assert!(ok, "cannot hand {name} to the postgres user");
            }
        };
        write("server.crt", cert_pem, 0o644);
        write("server.key", key_pem, 0o600);
        write(
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            0o600,
        );
        let conf = pg.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).unwrap();
        pg.up();
        pg
    }

    /// Start (again).
    pub fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.data.display()
        );
        let out = run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                self.log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Stop the way a crash or an unplugged host does: no goodbye to the clients.
    pub fn kill(&self) {
        let out = run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    #[allow(dead_code, reason = "each test binary uses a part of this module")]
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A connection over the cluster's Unix socket (allowed whatever the TCP rules say).
    #[allow(dead_code, reason = "each test binary uses a part of this module")]
    pub async fn connect_local(&self, db: &str) -> tokio_postgres::Client {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host_path(&self.data)
            .port(self.port)
            .user("postgres")
            .dbname(db);
        let (c, conn) = cfg
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the scratch PostgreSQL's socket in {}: {e}",
                    self.data.display()
                )
            });
        tokio::spawn(conn);
        c
    }

    #[allow(dead_code, reason = "each test binary uses a part of this module")]
    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("the scratch PostgreSQL on port {}: {e}", self.port));
        tokio::spawn(conn);
        c
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = run(
            &self.bin,
            "pg_ctl",
            &["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}
