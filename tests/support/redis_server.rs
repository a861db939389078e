//! A real `redis-server` for the tests: started on a free local port in a temp dir (no
//! persistence), stopped when dropped; also over TLS ([`RedisServer::start_tls`]) and as a
//! three-node Redis Cluster ([`RedisCluster`]). A missing `redis-server` fails the test with a
//! clear message (nothing is skipped): `.ci/run` installs it.
#![allow(dead_code)] // each test target uses a different part

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// The TLS port, when started with [`RedisServer::start_tls`].
    pub tls_port: Option<u16>,
    _dir: tempfile::TempDir,
}

/// A server's certificate, its key and the CA that signed it (PEM files).
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl RedisServer {
    /// Starts a server; panics (fails the test) when `redis-server` is missing or never answers.
    pub fn start() -> RedisServer {
        Self::start_with(|_| Vec::new(), false)
    }

    /// A server that also listens with TLS on `tls_port` (`rediss://`), with `tls`'s
    /// certificate, not asking clients for one.
    pub fn start_tls(tls: &TlsFiles) -> RedisServer {
        Self::start_with(
            |_| {
                let mut args = vec!["--tls-port".to_owned(), free_port().to_string()];
                for (flag, path) in [
                    ("--tls-cert-file", &tls.cert),
                    ("--tls-key-file", &tls.key),
                    ("--tls-ca-cert-file", &tls.ca),
                ] {
                    args.push(flag.to_owned());
                    args.push(path.display().to_string());
                }
                args.extend(["--tls-auth-clients".to_owned(), "no".to_owned()]);
                args
            },
            false,
        )
    }

    /// A server with `extra(dir)` arguments; with `cluster`, a cluster node that has its own
    /// (free) cluster bus port.
    fn start_with(extra: impl Fn(&Path) -> Vec<String>, cluster: bool) -> RedisServer {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            panic!(
                "redis-server is not installed, and the Redis store tests need it: \
                 `apt-get install -y redis-server` (.ci/run does this)"
            );
        }
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir");
            let extra = extra(dir.path());
            let tls_port = extra
                .iter()
                .position(|a| a == "--tls-port")
                .and_then(|i| extra.get(i + 1))
                .and_then(|p| p.parse().ok());
            let mut command = Command::new("redis-server");
            command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .args(&extra);
            if cluster {
                command
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                    ])
                    .args(["--cluster-port", &free_port().to_string()]);
            }
            let child = command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut server = RedisServer {
                child: Some(child),
                port,
                tls_port,
                _dir: dir,
            };
            if server.wait_ready() {
                return server;
            }
            last = format!("port {port}");
            server.kill();
        }
        panic!("redis-server did not come up ({last})");
    }

    fn wait_ready(&mut self) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Some(child) = &mut self.child {
                if let Ok(Some(_)) = child.try_wait() {
                    return false; // exited: the port was taken meanwhile
                }
            }
            if let Ok(mut con) = self.connection() {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The `rediss://` address of a server started with [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> String {
        format!(
            "rediss://127.0.0.1:{}",
            self.tls_port.expect("a TLS server")
        )
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// Every key in the server.
    pub fn keys(&self) -> Vec<String> {
        let mut con = self.connection().expect("connect to the test redis");
        redis::cmd("KEYS").arg("*").query(&mut con).expect("KEYS")
    }

    /// Stops the server at once (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// `true` while something accepts connections on `port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl TlsFiles {
    /// A fresh CA and a certificate it signs for `127.0.0.1` and `localhost`, in `dir` (the
    /// `openssl` command line tool; P-256 keys, valid for two days).
    pub fn generate(dir: &Path, name: &str) -> TlsFiles {
        let path = |file: &str| dir.join(format!("{name}-{file}"));
        let files = TlsFiles {
            cert: path("server.pem"),
            key: path("server.key"),
            ca: path("ca.pem"),
        };
        let (ca_key, csr, ext) = (path("ca.key"), path("server.csr"), path("ext.cnf"));
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("write ext");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &[
                    "req",
                    "-x509",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={name} test CA"),
                ],
                &ec[..],
            ]
            .concat(),
            &[("-keyout", &ca_key), ("-out", &files.ca)],
        );
        openssl(
            &[&["req", "-subj", "/CN=localhost"], &ec[..]].concat(),
            &[("-keyout", &files.key), ("-out", &csr)],
        );
        openssl(
            &["x509", "-req", "-days", "2", "-CAcreateserial"],
            &[
                ("-in", &csr),
                ("-CA", &files.ca),
                ("-CAkey", &ca_key),
                ("-extfile", &ext),
                ("-out", &files.cert),
            ],
        );
        files
    }
}

/// `openssl ARGS FLAG FILE...`; panics with its stderr when it fails.
fn openssl(args: &[&str], files: &[(&str, &PathBuf)]) {
    let mut command = Command::new("openssl");
    command.args(args);
    for (flag, file) in files {
        command.arg(flag).arg(file);
    }
    let out = command
        .output()
        .expect("run openssl (the `openssl` command line tool)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A three-node Redis Cluster (no replicas) on free local ports, every slot assigned; every
/// node stops when this is dropped.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(|_| Vec::new(), true))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        let started = Instant::now();
        while !cluster.nodes.iter().all(|n| {
            n.connection()
                .and_then(|mut con| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut con))
                .is_ok_and(|info| info.contains("cluster_state:ok"))
        }) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the test cluster never reached cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Every key in the cluster.
    pub fn keys(&self) -> Vec<String> {
        self.nodes.iter().flat_map(RedisServer::keys).collect()
    }
}
