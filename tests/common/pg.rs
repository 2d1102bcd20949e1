//! A throwaway PostgreSQL server for tests and examples: a new cluster in a temporary directory,
//! on a free loopback port, run as an unprivileged user when this process is root (the server
//! refuses to run as root), stopped and removed when dropped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A running server.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    user: Option<&'static str>,
}

impl PgServer {
    /// initdb + pg_ctl start; the server's superuser is `flock`, trusted on loopback.
    pub fn start() -> Result<Self, String> {
        let bin = bindir().ok_or("no PostgreSQL server binaries (initdb) found")?;
        let dir = std::env::temp_dir().join(format!(
            "flock-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let user = is_root().then_some("nobody");
        if let Some(user) = user {
            run(Command::new("chown").arg(user).arg(&dir))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let server = Self {
            bin,
            dir,
            port,
            user,
        };
        let data = server.data();
        server.pg(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "flock",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            server.dir.display()
        );
        server.start_again_with(&options)?;
        Ok(server)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn start_again_with(&self, options: &str) -> Result<(), String> {
        let log = self.dir.join("server.log").display().to_string();
        self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-o", options, "-w", "-l", &log, "start"],
        )
    }

    /// Starts the server again after [`stop`](PgServer::stop).
    pub fn restart(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            self.port,
            self.dir.display()
        );
        self.start_again_with(&options)
    }

    /// Stops the server at once (as a crash would: `-m immediate`).
    pub fn stop(&self) -> Result<(), String> {
        self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
    }

    /// [`start`](PgServer::start), with a table `lookup(k BIGINT PRIMARY KEY, label TEXT)` of
    /// `keys` rows, `label = 'label-' || k`.
    pub fn with_lookup(keys: i64) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let server = Self::start()?;
        let mut c =
            polars_flock::postgres::Client::connect(&server.url(), polars_flock::postgres::NoTls)?;
        c.execute(
            "CREATE TABLE lookup (k BIGINT PRIMARY KEY, label TEXT NOT NULL)",
            &[],
        )?;
        c.execute(
            "INSERT INTO lookup SELECT k, 'label-' || k FROM generate_series(0, $1::bigint - 1) AS k",
            &[&keys],
        )?;
        Ok(server)
    }

    /// The connection string of database `postgres`.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=flock dbname=postgres",
            self.port
        )
    }

    fn pg(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut cmd = match self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).current_dir(&self.dir);
        run(&mut cmd)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The server binaries' directory: `pg_config --bindir`, else Debian's newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bindir() -> Option<PathBuf> {
    let from_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.join("initdb").exists());
    from_config.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
