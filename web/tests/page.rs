//! The built page (target/web, from scripts/build_web.sh) end to end in headless Chromium,
//! driven through chromedriver's WebDriver API: models and images come from loopback HTTP
//! servers, everything goes through `window.vitHybrid` as scripts use it, and once through
//! the page's own controls (`?model=`, the image picker), ending in a screenshot
//! (target/web-page.png). scripts/web_test.sh runs it; it fails, saying why, without
//! Chromium, chromedriver or the built page.
#![cfg(not(target_arch = "wasm32"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A static file server on 127.0.0.1: `/` is target/web, `/fixtures/` tests/fixtures,
/// `/images/` examples/images. `cors`: whether it lets other origins read its files.
fn serve(cors: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = answer(stream, cors);
            });
        }
    });
    format!("http://{addr}")
}

fn answer(mut stream: TcpStream, cors: bool) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Headers are read and ignored.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or("/");
    let file = if path.contains("..") {
        None
    } else if let Some(rest) = path.strip_prefix("/fixtures/") {
        Some(root().join("tests/fixtures").join(rest))
    } else if let Some(rest) = path.strip_prefix("/images/") {
        Some(root().join("examples/images").join(rest))
    } else {
        let rest = path.trim_start_matches('/');
        Some(
            root()
                .join("target/web")
                .join(if rest.is_empty() { "index.html" } else { rest }),
        )
    };
    let kind = match file.as_ref().and_then(|f| f.extension()?.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    let body = file.and_then(|f| std::fs::read(f).ok());
    let allow = if cors {
        "Access-Control-Allow-Origin: *\r\n"
    } else {
        ""
    };
    let (status, body) = match body {
        Some(b) => ("200 OK", b),
        None => ("404 Not Found", b"not found".to_vec()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

/// A minimal HTTP/1.1 JSON client for chromedriver.
fn webdriver(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connecting to chromedriver");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read by Content-Length: chromedriver may keep the connection open.
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 2 {
        head.push_str(&line);
        line.clear();
    }
    let lower = head.to_ascii_lowercase();
    let payload = if let Some(n) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        let mut body = vec![0; n];
        reader.read_exact(&mut body).unwrap();
        String::from_utf8_lossy(&body).into_owned()
    } else {
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        if lower.contains("transfer-encoding: chunked") {
            dechunk(&rest)
        } else {
            rest
        }
    };
    serde_json::from_str(&payload)
        .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}: {head}\n{payload}"))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

struct Driver {
    child: Child,
    port: u16,
    session: String,
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/lib/chromium/chromium".into())
}

impl Driver {
    fn start() -> Self {
        let binary = chromium();
        assert!(
            Path::new(&binary).exists(),
            "no Chromium at {binary} (run scripts/setup_web.sh, or set CHROMIUM)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {driver}: {e} (run scripts/setup_web.sh, or set CHROMEDRIVER)")
            });
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--enable-unsafe-webgpu", "--window-size=1100,900"],
        }}}});
        let r = webdriver(port, "POST", "/session", Some(&caps));
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver gave no session: {r}"))
            .to_string();
        let d = Driver {
            child,
            port,
            session,
        };
        eprintln!("page: chromedriver session {}", d.session);
        d.call("POST", "timeouts", json!({"script": 600_000}));
        d
    }

    fn call(&self, method: &str, what: &str, body: Value) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        let body = (method == "POST").then_some(&body);
        let r = webdriver(self.port, method, &path, body);
        if r["value"]["error"].is_string() {
            panic!("WebDriver {what}: {}", r["value"]);
        }
        r["value"].clone()
    }

    /// Runs an async function body in the page and returns `{ok}` or `{err}`.
    /// The page's console since the last call, for failure messages.
    fn console(&self) -> String {
        let path = format!("/session/{}/se/log", self.session);
        let r = webdriver(self.port, "POST", &path, Some(&json!({"type": "browser"})));
        r["value"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|e| format!("{} {}", e["level"], e["message"]))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    /// `window.vitHybrid.load(url)`.
    fn load(&self, url: &str) -> Result<Value, String> {
        self.run("return await window.vitHybrid.load(args[0]);", json!([url]))
    }

    fn run(&self, body: &str, args: Value) -> Result<Value, String> {
        eprintln!("page: {}", body.lines().next().unwrap_or(""));
        let script = format!(
            "const done = arguments[arguments.length - 1];
             (async (...args) => {{ {body} }})(...arguments[0])
               .then(ok => done({{ok: ok === undefined ? null : ok}}),
                     e => done({{err: String(e && e.message || e)}}));"
        );
        let r = self.call(
            "POST",
            "execute/async",
            json!({"script": script, "args": [args]}),
        );
        match r.get("err").and_then(Value::as_str) {
            Some(e) => Err(format!("{e}\n(page console:\n{})", self.console())),
            None => Ok(r["ok"].clone()),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(|| webdriver(self.port, "DELETE", &path, None));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// transformers' logits of the digits examples (tools/make_fixtures.py).
fn examples() -> Vec<(String, Vec<f64>)> {
    let text = std::fs::read_to_string(root().join("tests/fixtures/digits/examples.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let file = e["file"].as_str().unwrap();
            let logits = e["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            (
                file.trim_start_matches("examples/images/").to_string(),
                logits,
            )
        })
        .collect()
}

const CLASSIFY: &str = "const [url, k] = args;
    const r = await fetch(url);
    if (!r.ok) throw new Error(`test image ${url}: HTTP ${r.status}`);
    return await window.vitHybrid.classify(new Uint8Array(await r.arrayBuffer()), k);";

#[test]
fn page_classifies_through_window_vit_hybrid() {
    let index = root().join("target/web/index.html");
    assert!(
        index.exists(),
        "{} is missing: run scripts/build_web.sh first",
        index.display()
    );
    let site = serve(true);
    let elsewhere = serve(false);
    let driver = Driver::start();
    driver.call("POST", "url", json!({"url": format!("{site}/")}));

    // The API: load without and with a trailing slash, classify, info.
    let info = driver
        .load(&format!("{site}/fixtures/digits"))
        .unwrap_or_else(|e| panic!("loading the digits model over HTTP: {e}"));
    eprintln!("info after load: {info}");
    assert_eq!(info["model"]["labels"], 10, "{info}");
    let info = driver.run("return await window.vitHybrid.info();", json!([]));
    let info = info.unwrap();
    assert!(info["adapter"]["name"].is_string(), "{info}");
    driver
        .load(&format!("{site}/fixtures/digits/"))
        .unwrap_or_else(|e| panic!("loading with a trailing slash: {e}"));

    for (file, want) in examples() {
        let r = driver
            .run(CLASSIFY, json!([format!("{site}/images/{file}"), 5]))
            .unwrap_or_else(|e| panic!("classifying {file}: {e}"));
        let logits: Vec<f64> = r["logits"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no logits in {r}"))
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(logits.len(), want.len(), "{file}");
        let worst = logits
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-4,
            "{file}: logits differ from transformers by {worst:e}: {logits:?} vs {want:?}"
        );
        let top = r["top"].as_array().unwrap();
        assert_eq!(top.len(), 5, "{file}: {r}");
        let best = (0..want.len())
            .max_by(|&a, &b| want[a].total_cmp(&want[b]))
            .unwrap();
        assert_eq!(top[0]["index"], best, "{file}: {r}");
        assert!(top[0]["label"].is_string(), "{file}: {r}");
        let p: Vec<f64> = top
            .iter()
            .map(|t| t["probability"].as_f64().unwrap())
            .collect();
        assert!(
            p.windows(2).all(|w| w[0] >= w[1]) && p.iter().sum::<f64>() <= 1.0 + 1e-6,
            "{file}: {p:?}"
        );
    }

    // Failures reject with a message that says what went wrong.
    let broken = driver
        .run(
            "return await window.vitHybrid.classify(new Uint8Array([1, 2, 3, 4]), 5);",
            json!([]),
        )
        .expect_err("classifying garbage bytes");
    assert!(broken.contains("image"), "{broken}");
    let missing = driver
        .load(&format!("{site}/fixtures/no-such-model"))
        .expect_err("loading a missing model");
    assert!(
        missing.contains("404") && missing.contains("config.json"),
        "{missing}"
    );
    let cors = driver
        .load(&format!("{elsewhere}/fixtures/digits"))
        .expect_err("loading from an origin that refuses CORS");
    assert!(cors.contains("CORS"), "{cors}");
    let mismatched = driver
        .load(&format!("{site}/fixtures/preprocess/"))
        .expect_err("a folder without a model");
    assert!(mismatched.contains("config.json"), "{mismatched}");
    // The failed loads kept the model.
    let info = driver.run("return await window.vitHybrid.info();", json!([]));
    assert_eq!(info.unwrap()["model"]["labels"], 10);

    // The page itself: ?model= loads the model, the image picker classifies, the bars show.
    let model = format!("{site}/fixtures/digits/");
    driver.call(
        "POST",
        "url",
        json!({"url": format!("{site}/?model={model}")}),
    );
    let input = driver.call(
        "POST",
        "element",
        json!({"using": "css selector", "value": "#image-file"}),
    );
    let element = input
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
        .expect("the page has an image picker")
        .to_string();
    let image = root().join("examples/images/digits/digit_3_a.png");
    driver.call(
        "POST",
        &format!("element/{element}/value"),
        json!({"text": image.canonicalize().unwrap().display().to_string()}),
    );
    let shown = driver
        .run(
            "for (let i = 0; i < 1200; i++) {
               const err = document.getElementById('error');
               if (err.style.display === 'block') throw new Error(err.textContent);
               const s = document.getElementById('shaders').textContent;
               const bars = document.querySelectorAll('#bars .bar');
               if (bars.length && (s.includes('GPU time') || s.includes('no timestamp'))) {
                 return Array.from(bars, b => b.textContent);
               }
               await new Promise(r => setTimeout(r, 100));
             }
             throw new Error('no result on the page after 120 s: ' + document.body.innerText);",
            json!([]),
        )
        .unwrap_or_else(|e| panic!("the page did not classify: {e}"));
    eprintln!("the page shows: {shown}");
    let bars = shown.as_array().unwrap();
    assert_eq!(bars.len(), 5, "{shown}");
    assert!(bars[0].as_str().unwrap().contains("(3)"), "{shown}");
    let png = driver.call("GET", "screenshot", json!(null));
    let png = decode_base64(png.as_str().expect("a screenshot"));
    let out = root().join("target/web-page.png");
    std::fs::write(&out, png).unwrap();
    eprintln!("screenshot: {}", out.display());
}

fn decode_base64(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| value(c) as u32).collect();
        let n = v.iter().fold(0u32, |a, &x| a << 6 | x) << (6 * (4 - v.len()));
        out.extend(&n.to_be_bytes()[1..v.len()]);
    }
    out
}
