//! Helpers for the service tests (and the service bench): start `riskgate serve` on a free local
//! port, talk HTTP/1.1 to it over kept-alive connections, stop it.
#![allow(dead_code)] // each target uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `riskgate serve`, killed when dropped (unless it already exited).
pub struct Server {
    child: Child,
    pub addr: String,
    /// Everything it logged to standard error so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `binary serve --rules RULES --listen 127.0.0.1:0 EXTRA...` and waits until it
    /// logs the address it listens on.
    pub fn start(binary: &str, rules: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--rules")
            .arg(rules)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RISKGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("riskgate serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(addr) = line
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix("addr="))
                    {
                        let _ = tx.send(addr.to_string());
                        sent = true;
                    }
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "riskgate serve did not start: {:?}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Server { child, addr, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new kept-alive connection.
    pub fn client(&self) -> Client {
        Client::connect(&self.addr)
    }

    /// Sends a signal (`TERM`, `HUP`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit (a generous bound: this is no timing assertion).
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "riskgate serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal blocking HTTP/1.1 client on one kept-alive connection.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connects");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    /// Sends a request with `body` (bytes) and reads the response.
    pub fn send(&mut self, method: &str, path: &str, body: &[u8]) -> Response {
        self.write_request(method, path, body, &[]);
        self.read_response()
    }

    pub fn post(&mut self, path: &str, body: &str) -> Response {
        self.send("POST", path, body.as_bytes())
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, b"")
    }

    /// Writes the request head and body (write errors ignored: the server may stop reading a
    /// body it refuses).
    pub fn write_request(&mut self, method: &str, path: &str, body: &[u8], headers: &[&str]) {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n",
            body.len()
        )
        .into_bytes();
        for header in headers {
            request.extend_from_slice(header.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        let _ = self.writer.write_all(&request);
    }

    /// Writes raw bytes on the connection.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    pub fn read_response(&mut self) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header).expect("header");
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        if status == 100 {
            return self.read_response();
        }
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        Response {
            status,
            headers,
            body: String::from_utf8(body).expect("UTF-8 body"),
        }
    }
}

/// `riskgate score --rules RULES FILE`: its standard output lines.
pub fn score_cli(binary: &str, rules: &Path, file: &Path) -> Vec<String> {
    let output = Command::new(binary)
        .arg("score")
        .arg("--rules")
        .arg(rules)
        .arg(file)
        .output()
        .expect("riskgate score runs");
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// What one input line came to, in a form both `riskgate score` and the service give: the
/// decision line as printed, or `invalid` for a refused line.
pub fn score_outcomes(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            if line.starts_with("{\"line\":") {
                "invalid".to_string()
            } else {
                line.clone()
            }
        })
        .collect()
}

/// Whether a line is a withdrawal event (a JSON object with `"kind": "withdrawal"`).
pub fn is_withdrawal(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| {
            v.get("kind")
                .and_then(|k| k.as_str())
                .map(|k| k == "withdrawal")
        })
        .unwrap_or(false)
}

/// Streams `lines` through the service as the contract describes (each withdrawal scored with
/// /v1/score, then every event posted to /v1/events, one request at a time); returns what each
/// line came to, like [`score_outcomes`]. `between` runs before each line (to interleave other
/// requests).
pub fn stream_through(
    client: &mut Client,
    lines: &[String],
    mut between: impl FnMut(&mut Client, usize),
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        between(client, i);
        if is_withdrawal(line) {
            let scored = client.post("/v1/score", line);
            let recorded = client.post("/v1/events", line);
            match scored.status {
                200 => {
                    assert_eq!(recorded.status, 204, "line {}: {:?}", i + 1, recorded);
                    out.push(scored.body);
                }
                400 | 409 => {
                    assert_eq!(
                        recorded.status,
                        scored.status,
                        "line {}: {:?}",
                        i + 1,
                        recorded
                    );
                    assert!(scored.json().get("error").is_some());
                    out.push("invalid".into());
                }
                other => panic!(
                    "line {}: /v1/score answered {other}: {}",
                    i + 1,
                    scored.body
                ),
            }
        } else {
            let recorded = client.post("/v1/events", line);
            match recorded.status {
                204 => assert!(recorded.body.is_empty()),
                400 => {
                    assert!(recorded.json().get("error").is_some());
                    out.push("invalid".into());
                }
                other => panic!(
                    "line {}: /v1/events answered {other}: {}",
                    i + 1,
                    recorded.body
                ),
            }
        }
    }
    out
}

/// Every stream the repository ships: fixtures/*.jsonl and rules/*/tests/*.jsonl.
pub fn shipped_streams(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut add = |dir: PathBuf| {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "jsonl") {
                    files.push(path);
                }
            }
        }
    };
    add(root.join("fixtures"));
    for pack in std::fs::read_dir(root.join("rules"))
        .expect("rules dir")
        .flatten()
    {
        add(pack.path().join("tests"));
    }
    files.sort();
    files
}

/// The lines of a file (without line endings).
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("readable")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
