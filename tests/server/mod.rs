//! A `vit-hybrid serve` process on a free loopback port, and a small HTTP client for it:
//! shared by tests/serve.rs and benches/serve.rs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn digits_model() -> String {
    root().join("tests/fixtures/digits").display().to_string()
}

/// The example digit images, 0..=9.
pub fn digit_images() -> Vec<std::path::PathBuf> {
    (0..10)
        .map(|d| root().join(format!("examples/images/digits/digit_{d}_a.png")))
        .collect()
}

pub struct Server {
    child: Child,
    pub base: String,
    /// Every stderr line so far (the request log).
    pub log: Arc<Mutex<Vec<String>>>,
}

/// How long a server may take to load and warm the model on a slow software adapter before
/// the test gives up (not a speed threshold: it bounds a hung start).
const START_LIMIT: Duration = Duration::from_secs(300);

impl Server {
    /// Starts `vit-hybrid serve --port 0 ARGS` and waits until it is ready.
    pub fn start(args: &[&str]) -> Server {
        let s = Self::spawn(args);
        s.wait_ready();
        s
    }

    /// Starts the server and returns once it listens (the model may still be loading).
    pub fn spawn(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vit-hybrid"))
            .arg("serve")
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .env("NODEVICE_SELECT", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting vit-hybrid serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(addr);
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let base = match rx.recv_timeout(START_LIMIT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server printed no \"listening on\" line; its stderr:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Server { child, base, log }
    }

    pub fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            if let Ok(r) = get(&format!("{}/v2/health/ready", self.base))
                && r.status == 200
            {
                return;
            }
            assert!(
                start.elapsed() < START_LIMIT,
                "the server did not become ready; its stderr:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (through kill(1): the tests need no libc binding).
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill")
            .success();
        assert!(ok, "kill -TERM failed");
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("waiting for the server") {
                return s;
            }
            assert!(
                start.elapsed() < START_LIMIT,
                "the server did not exit; its stderr:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A metric's value from /metrics (the first line that starts with `name`).
    pub fn metric(&self, name: &str) -> f64 {
        let text = get(&self.url("/metrics")).unwrap().text();
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP answer: status, headers that matter here, body.
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    pub header_length: Option<usize>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", self.text()))
    }

    /// The `"error"` of an error answer with `status`.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "answer: {}", self.text());
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no \"error\" string in {}", self.text()))
            .to_string()
    }
}

fn reply(r: ureq::Response) -> Reply {
    let status = r.status();
    let content_type = r.header("content-type").map(str::to_owned);
    let retry_after = r.header("retry-after").map(str::to_owned);
    let header_length = r
        .header("inference-header-content-length")
        .and_then(|v| v.parse().ok());
    let mut body = Vec::new();
    r.into_reader()
        .read_to_end(&mut body)
        .expect("reading the answer");
    Reply {
        status,
        content_type,
        retry_after,
        header_length,
        body,
    }
}

fn send(r: Result<ureq::Response, ureq::Error>) -> Result<Reply, String> {
    match r {
        Ok(r) => Ok(reply(r)),
        Err(ureq::Error::Status(_, r)) => Ok(reply(r)),
        Err(e) => Err(e.to_string()),
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(600))
        .build()
}

pub fn get(url: &str) -> Result<Reply, String> {
    send(agent().get(url).call())
}

pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Reply, String> {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    send(req.send_bytes(body))
}

pub fn post_json(url: &str, body: &serde_json::Value) -> Reply {
    post(
        url,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap()
}
