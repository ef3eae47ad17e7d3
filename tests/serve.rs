//! `vit-hybrid serve` against the real binary on loopback: every endpoint and error of the
//! Open Inference Protocol server, answers equal to `classify`'s, concurrent clients batched
//! together, a full queue, and a SIGTERM drain.

mod server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use serde_json::{Value, json};
use server::{Server, digit_images, digits_model, get, post, post_json};

const NAME: &str = "digits";

/// `classify --json --logits --top-k 10` of the example digits: path -> its JSON line.
fn classify_answers() -> &'static Vec<(PathBuf, Value)> {
    static ANSWERS: OnceLock<Vec<(PathBuf, Value)>> = OnceLock::new();
    ANSWERS.get_or_init(|| {
        let images = digit_images();
        let out = Command::new(env!("CARGO_BIN_EXE_vit-hybrid"))
            .args(["classify", "--model", &digits_model(), "--json", "--logits"])
            .args(["--top-k", "10"])
            .args(&images)
            .env("NODEVICE_SELECT", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "classify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), images.len());
        images.into_iter().zip(lines).collect()
    })
}

fn logits_of(v: &Value) -> Vec<f32> {
    v["logits"]
        .as_array()
        .unwrap_or_else(|| panic!("no logits in {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The preprocessed [3, H, W] tensor of an image, as `classify` feeds it.
fn pixels(path: &Path) -> Vec<f32> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/digits");
    let cfg = vit_hybrid::preprocess::PreprocessConfig::load(&dir.join("preprocessor_config.json"))
        .unwrap();
    vit_hybrid::preprocess::preprocess_file(path, &cfg)
        .unwrap()
        .data
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A server of the demo model named NAME, with `args`.
fn start_digits(args: &[&str]) -> Server {
    let model = digits_model();
    let mut all = vec!["--model", model.as_str(), "--name", NAME];
    all.extend_from_slice(args);
    Server::start(&all)
}

fn infer_url(s: &Server) -> String {
    s.url(&format!("/v2/models/{NAME}/infer"))
}

fn image_request(files: &[Vec<u8>]) -> Value {
    let data: Vec<String> = files.iter().map(|f| b64(f)).collect();
    json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [files.len()], "data": data}]})
}

/// The FP32 logits [N, labels] of a JSON infer answer.
fn answer_logits(v: &Value, labels: usize) -> Vec<Vec<f32>> {
    let out = &v["outputs"][0];
    assert_eq!(out["name"], "logits", "{v}");
    assert_eq!(out["datatype"], "FP32", "{v}");
    let n = out["shape"][0].as_u64().unwrap() as usize;
    assert_eq!(out["shape"], json!([n, labels]), "{v}");
    let flat: Vec<f32> = out["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    flat.chunks(labels).map(<[f32]>::to_vec).collect()
}

/// Sends raw bytes on a fresh connection and returns everything the server answers.
fn raw_exchange(s: &Server, request: &[u8], then: &[u8], repeat: usize) -> String {
    let addr = s.base.trim_start_matches("http://");
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    c.write_all(request).unwrap();
    // The server may answer and close while the rest is still being sent.
    for _ in 0..repeat {
        if c.write_all(then).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn every_endpoint_answers_like_classify() {
    let mut s = start_digits(&["--max-batch", "4", "--max-body-bytes", "200000"]);
    let answers = classify_answers();
    let labels = logits_of(&answers[0].1).len();

    // Health and metadata.
    let live = get(&s.url("/v2/health/live")).unwrap();
    assert_eq!(
        (live.status, live.json()["live"].clone()),
        (200, json!(true))
    );
    assert_eq!(get(&s.url("/v2/health/ready")).unwrap().status, 200);
    let meta = get(&s.url("/v2")).unwrap().json();
    assert_eq!(meta["name"], "vit-hybrid");
    assert!(
        meta["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("classification"))
    );
    let m = get(&s.url(&format!("/v2/models/{NAME}"))).unwrap();
    assert_eq!(m.status, 200, "{}", m.text());
    let m = m.json();
    assert_eq!(m["name"], NAME);
    assert_eq!(
        m["inputs"],
        json!([
            {"name": "pixel_values", "datatype": "FP32", "shape": [-1, 3, 48, 48]},
            {"name": "image", "datatype": "BYTES", "shape": [-1]},
        ])
    );
    assert_eq!(
        m["outputs"],
        json!([{"name": "logits", "datatype": "FP32", "shape": [-1, labels]}])
    );
    let r = get(&s.url(&format!("/v2/models/{NAME}/ready"))).unwrap();
    assert_eq!((r.status, r.json()["ready"].clone()), (200, json!(true)));
    assert!(
        get(&s.url("/v2/models/other/ready"))
            .unwrap()
            .error(404)
            .contains("unknown model")
    );
    assert!(
        get(&s.url("/v2/models/other"))
            .unwrap()
            .error(404)
            .contains("unknown model")
    );

    // POST /classify: the object `classify --json` prints, for every example digit.
    for (path, want) in answers {
        let file = std::fs::read(path).unwrap();
        let input = path.display().to_string();
        let url = s.url(&format!(
            "/classify?top_k=10&logits=true&input={}",
            input.replace('/', "%2F")
        ));
        let got = post(&url, &[], &file).unwrap();
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(&got.json(), want, "{}", path.display());
    }
    let plain = post(
        &s.url("/classify?top_k=2"),
        &[],
        &std::fs::read(&answers[3].0).unwrap(),
    )
    .unwrap()
    .json();
    assert_eq!(plain["input"], "-");
    assert_eq!(
        plain["top"],
        json!(answers[3].1["top"].as_array().unwrap()[..2])
    );
    assert!(plain.get("logits").is_none());

    // Infer, image input as base64 JSON: logits equal classify's, every image in one request.
    let files: Vec<Vec<u8>> = answers
        .iter()
        .map(|(p, _)| std::fs::read(p).unwrap())
        .collect();
    let mut req = image_request(&files);
    req["id"] = json!("req-7");
    let v = post_json(&infer_url(&s), &req).json();
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["model_name"], NAME);
    let got = answer_logits(&v, labels);
    for ((path, want), got) in answers.iter().zip(&got) {
        assert_eq!(got, &logits_of(want), "{}", path.display());
    }

    // The classification extension: K strings "score:index:label" per image, best first.
    let mut req = image_request(&files[..3]);
    req["outputs"] = json!([{"name": "logits", "parameters": {"classification": 2}}]);
    let v = post_json(&infer_url(&s), &req).json();
    let out = &v["outputs"][0];
    assert_eq!(out["datatype"], "BYTES", "{v}");
    assert_eq!(out["shape"], json!([3, 2]));
    for (i, (_, want)) in answers[..3].iter().enumerate() {
        for rank in 0..2 {
            let text = out["data"][i * 2 + rank].as_str().unwrap();
            let parts: Vec<&str> = text.splitn(3, ':').collect();
            let top = &want["top"][rank];
            assert_eq!(parts[1], top["index"].to_string(), "{text}");
            assert_eq!(parts[2], top["label"].as_str().unwrap(), "{text}");
            let score: f32 = parts[0].parse().unwrap();
            let index = top["index"].as_u64().unwrap() as usize;
            assert_eq!(score, logits_of(want)[index], "{text}");
        }
    }

    // pixel_values, flat JSON data: the preprocessed tensors give the same logits.
    let px: Vec<f32> = answers[..2].iter().flat_map(|(p, _)| pixels(p)).collect();
    let req = json!({"inputs": [{"name": "pixel_values", "datatype": "FP32",
        "shape": [2, 3, 48, 48], "data": px}]});
    let got = answer_logits(&post_json(&infer_url(&s), &req).json(), labels);
    assert_eq!(got[0], logits_of(&answers[0].1));
    assert_eq!(got[1], logits_of(&answers[1].1));

    // Binary data extension, as Triton's client sends it: FP32 pixels in, binary FP32 out;
    // and on a version path.
    let head = json!({"inputs": [{"name": "pixel_values", "datatype": "FP32",
        "shape": [2, 3, 48, 48], "parameters": {"binary_data_size": px.len() * 4}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": true}}]})
    .to_string();
    let mut body = head.clone().into_bytes();
    body.extend(px.iter().flat_map(|x| x.to_le_bytes()));
    let len = head.len().to_string();
    let r = post(
        &s.url(&format!("/v2/models/{NAME}/versions/1/infer")),
        &[
            ("Inference-Header-Content-Length", &len),
            ("Content-Type", "application/octet-stream"),
        ],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let hl = r.header_length.expect("Inference-Header-Content-Length");
    let v: Value = serde_json::from_slice(&r.body[..hl]).unwrap();
    assert_eq!(
        v["outputs"][0]["parameters"]["binary_data_size"],
        2 * labels * 4
    );
    let floats: Vec<f32> = r.body[hl..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(floats[..labels], logits_of(&answers[0].1)[..]);
    assert_eq!(floats[labels..], logits_of(&answers[1].1)[..]);

    // Binary BYTES image input (4-byte length + file per element), JSON output.
    let head = json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2, 1],
        "parameters": {"binary_data_size": 8 + files[4].len() + files[5].len()}}]})
    .to_string();
    let mut body = head.clone().into_bytes();
    for f in &files[4..6] {
        body.extend((f.len() as u32).to_le_bytes());
        body.extend(f);
    }
    let len = head.len().to_string();
    let r = post(
        &infer_url(&s),
        &[("Inference-Header-Content-Length", &len)],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let got = answer_logits(&r.json(), labels);
    assert_eq!(got[0], logits_of(&answers[4].1));
    assert_eq!(got[1], logits_of(&answers[5].1));

    // Errors: each a JSON {"error"} naming the cause.
    let bad = |body: &[u8]| post(&infer_url(&s), &[], body).unwrap().error(400);
    assert!(bad(b"{\"inputs\": [").contains("malformed JSON"));
    let bad_input = |name: &str, datatype: &str, shape: Value, data: Value| {
        let req = json!({"inputs": [{"name": name, "datatype": datatype, "shape": shape,
            "data": data}]});
        bad(req.to_string().as_bytes())
    };
    let e = bad_input("pixel_values", "FP64", json!([1, 3, 48, 48]), json!([0]));
    assert!(e.contains("expected FP32"), "{e}");
    let e = bad_input("pixel_values", "FP32", json!([1, 3, 32, 32]), json!([0]));
    assert!(e.contains("shape"), "{e}");
    let e = bad_input(
        "pixel_values",
        "FP32",
        json!([1, 3, 48, 48]),
        json!([0.5, 1.0]),
    );
    assert!(e.contains("2 values") && e.contains("6912"), "{e}");
    let e = bad_input("image", "BYTES", json!([2]), json!([b64(&files[0])]));
    assert!(e.contains("1 elements"), "{e}");
    let e = bad(image_request(&[b"not an image at all".to_vec()])
        .to_string()
        .as_bytes());
    assert!(e.contains("image"), "{e}");
    let truncated = files[7][..files[7].len() / 2].to_vec();
    let e = bad(image_request(&[files[0].clone(), truncated.clone()])
        .to_string()
        .as_bytes());
    assert!(e.starts_with("image 1:"), "{e}");
    let mut req = image_request(&files[..1]);
    req["outputs"] = json!([{"name": "probabilities"}]);
    assert!(bad(req.to_string().as_bytes()).contains("unknown output"));
    let e = post(&s.url("/classify"), &[], &truncated)
        .unwrap()
        .error(400);
    assert!(e.contains("the image"), "{e}");
    assert!(
        post(&s.url("/classify"), &[], b"")
            .unwrap()
            .error(400)
            .contains("empty")
    );
    assert!(
        post(&s.url("/classify?top_k=many"), &[], &files[0])
            .unwrap()
            .error(400)
            .contains("query")
    );
    assert!(
        post_json(&s.url("/v2/models/nope/infer"), &image_request(&files[..1]))
            .error(404)
            .contains("unknown model")
    );
    get(&s.url("/v2/nothing/here")).unwrap().error(404);
    get(&infer_url(&s)).unwrap().error(405);

    // 413 from the declared length, before the body is sent at all.
    let head = format!(
        "POST /v2/models/{NAME}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n"
    );
    let answer = raw_exchange(&s, head.as_bytes(), b"", 0);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("{\"error\":"), "{answer}");
    // And a chunked body (no declared length) once it passes the limit while streaming.
    let head = "POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = format!("1000\r\n{}\r\n", "x".repeat(0x1000));
    let answer = raw_exchange(&s, head.as_bytes(), chunk.as_bytes(), 100);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max-body-bytes"), "{answer}");

    // Metrics: requests by endpoint and status, latency, queue, batch sizes.
    let text = get(&s.url("/metrics")).unwrap().text();
    for want in [
        "vit_hybrid_requests_total{endpoint=\"/classify\",status=\"200\"}",
        "vit_hybrid_requests_total{endpoint=\"/v2/models/{name}/infer\",status=\"400\"}",
        "vit_hybrid_requests_total{endpoint=\"/v2/models/{name}/infer\",status=\"413\"}",
        "vit_hybrid_request_duration_seconds_bucket{endpoint=\"/classify\",le=\"+Inf\"}",
        "vit_hybrid_queue_depth 0",
        "vit_hybrid_batch_size_bucket{le=\"4\"}",
        "vit_hybrid_batch_size_count",
    ] {
        assert!(text.contains(want), "{want} missing from /metrics:\n{text}");
    }
    // Ten images in one request ran as passes of at most --max-batch 4.
    assert!(s.metric("vit_hybrid_batch_size_sum") >= 10.0);

    // One log line per request: method, path, status, milliseconds.
    let log = s.log.lock().unwrap().clone();
    assert!(
        log.iter().any(
            |l| l.starts_with(&format!("POST /v2/models/{NAME}/infer 400 ")) && l.ends_with(" ms")
        ),
        "{log:?}"
    );
    s.terminate();
    assert!(s.wait_exit().success());
}

#[test]
fn concurrent_clients_are_batched_and_each_gets_its_own_answer() {
    let s = start_digits(&["--max-batch", "8", "--max-delay-ms", "100"]);
    let answers = classify_answers();
    let labels = logits_of(&answers[0].1).len();
    let url = infer_url(&s);
    let barrier = std::sync::Barrier::new(16);
    std::thread::scope(|scope| {
        for client in 0..16 {
            let (url, barrier) = (&url, &barrier);
            scope.spawn(move || {
                barrier.wait();
                for round in 0..3 {
                    let k = (client + round) % answers.len();
                    let (path, want) = &answers[k];
                    if client % 8 == 7 && round == 1 {
                        // A bad request in the crowd: pixels that overflow float32 in the
                        // network give this request a 400, never its batch-mates.
                        let req = json!({"inputs": [{"name": "pixel_values", "datatype": "FP32",
                            "shape": [1, 3, 48, 48], "data": vec![3.0e38f32; 3 * 48 * 48]}]});
                        let e = post_json(url, &req).error(400);
                        assert!(e.contains("NaN or infinite"), "{e}");
                        continue;
                    }
                    let file = std::fs::read(path).unwrap();
                    let v = post_json(url, &image_request(&[file])).json();
                    assert_eq!(
                        answer_logits(&v, labels)[0],
                        logits_of(want),
                        "client {client} round {round}: {}",
                        path.display()
                    );
                }
            });
        }
    });
    let passes = s.metric("vit_hybrid_batch_size_count");
    let single = s.metric("vit_hybrid_batch_size_bucket{le=\"1\"}");
    // Warm-up passes are not counted: every image here ran (some twice: a pass holding the
    // overflowing request is run again request by request).
    assert!(s.metric("vit_hybrid_batch_size_sum") >= 48.0);
    assert!(
        passes > single,
        "no forward pass held more than one image ({passes} passes, all single)"
    );
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let s = start_digits(&["--max-batch", "1", "--max-queue", "1"]);
    let answers = classify_answers();
    let file = std::fs::read(&answers[0].0).unwrap();
    let url = infer_url(&s);
    std::thread::scope(|scope| {
        // A long request: 400 images, run one per pass.
        let long = scope.spawn(|| post_json(&url, &image_request(&vec![file.clone(); 400])));
        while s.metric("vit_hybrid_batch_size_count") < 1.0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The GPU is busy with it; one request may wait, the next is refused.
        let waiting = scope.spawn(|| post_json(&url, &image_request(std::slice::from_ref(&file))));
        while s.metric("vit_hybrid_queue_depth") < 1.0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let refused = post_json(&url, &image_request(std::slice::from_ref(&file)));
        assert!(
            s.metric("vit_hybrid_batch_size_count") < 400.0,
            "the long request ended before the check; it proves nothing"
        );
        assert!(refused.error(503).contains("queue is full"));
        assert_eq!(refused.retry_after.as_deref(), Some("1"));
        assert_eq!(long.join().unwrap().status, 200);
        assert_eq!(waiting.join().unwrap().status, 200);
    });
    assert_eq!(s.metric("vit_hybrid_queue_rejected_total"), 1.0);
}

#[test]
fn sigterm_answers_every_accepted_request_then_exits_0() {
    let mut s = start_digits(&["--max-batch", "2"]);
    let answers = classify_answers();
    let labels = logits_of(&answers[0].1).len();
    let file = std::fs::read(&answers[2].0).unwrap();
    let url = infer_url(&s);
    let want = logits_of(&answers[2].1);
    const IMAGES: usize = 150;
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| post_json(&url, &image_request(&vec![file.clone(); IMAGES]))))
            .collect();
        // Every request is in.
        while s.metric("vit_hybrid_inference_requests_in_flight") < 4.0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let done = s.metric("vit_hybrid_batch_size_sum");
        s.terminate();
        assert!(
            done < (4 * IMAGES) as f64,
            "every image ran before SIGTERM; the drain was not tested"
        );
        for c in clients {
            let r = c.join().unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            for got in answer_logits(&r.json(), labels) {
                assert_eq!(got, want);
            }
        }
    });
    let status = s.wait_exit();
    assert!(status.success(), "exit status {status}");
    // Gone: no new connections.
    assert!(get(&s.url("/v2/health/live")).is_err());
    let log = s.log.lock().unwrap().join("\n");
    assert!(log.contains("SIGTERM"), "{log}");
}

#[test]
fn a_model_that_does_not_load_stops_the_server_with_its_error() {
    let mut s = Server::spawn(&["--model", "/nonexistent/model/folder"]);
    let status = s.wait_exit();
    assert_eq!(status.code(), Some(2));
    let log = s.log.lock().unwrap().join("\n");
    assert!(log.contains("/nonexistent/model/folder"), "{log}");
}
