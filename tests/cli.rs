//! The `vit-hybrid` binary end to end: images and .npy tensors in, plain and JSON results out,
//! bad inputs reported in place with a non-zero exit.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::SafeTensors;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tiny() -> PathBuf {
    root().join("tests/fixtures/tiny")
}

fn photo() -> PathBuf {
    root().join("examples/images/chelsea.png")
}

fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[])
}

/// Runs the binary with a clean Hugging Face environment plus `env`.
fn run_env(args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vit-hybrid"));
    cmd.args(args)
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HOME")
        .env_remove("HF_HUB_CACHE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// transformers' float64 logits for the photo (input 2 of the tiny fixture).
fn reference_photo_logits() -> Vec<f64> {
    let bytes = std::fs::read(tiny().join("reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("logits").unwrap();
    let labels = t.shape()[1];
    let all: Vec<f64> = t
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    all[2 * labels..3 * labels].to_vec()
}

#[test]
fn classify_photo_json_matches_transformers() {
    // The adapter's own kernels, then each class forced (one of them the other family's).
    for kernels in [None, Some("cpu"), Some("gpu")] {
        classify_photo_with(kernels);
    }
}

fn classify_photo_with(kernels: Option<&str>) {
    let model = tiny();
    let photo = photo();
    let mut args = vec![
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--json",
        "--logits",
        "--top-k",
        "3",
        photo.to_str().unwrap(),
    ];
    if let Some(k) = kernels {
        args.extend(["--kernels", k]);
    }
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{kernels:?} kernels, stderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["input"], photo.to_str().unwrap());
    assert_eq!(v["top"].as_array().unwrap().len(), 3);
    let logits: Vec<f64> = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let want = reference_photo_logits();
    for (i, (g, w)) in logits.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() < 1e-4,
            "{kernels:?} kernels: logit {i}: {g} vs transformers {w}"
        );
    }
    let best = (0..want.len())
        .max_by(|&a, &b| want[a].total_cmp(&want[b]))
        .unwrap();
    assert_eq!(v["top"][0]["index"], best);
    let p: f64 = v["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["probability"].as_f64().unwrap())
        .sum();
    assert!(p > 0.0 && p <= 1.0 + 1e-6);
}

#[test]
fn npy_input_and_plain_output() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(tiny().join("reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let px = st.tensor("pixel_values").unwrap();
    let n = px.shape()[1..].iter().product::<usize>();
    let all: Vec<f32> = px
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
        .collect();
    let npy = dir.path().join("photo.npy");
    vit_hybrid::npy::write_f32(&npy, &[1, 3, 96, 96], &all[2 * n..3 * n]).unwrap();
    let model = tiny();
    let (code, stdout, stderr) = run(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        npy.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stdout.starts_with(npy.to_str().unwrap()), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        6,
        "a header and 5 classes: {stdout}"
    );
    assert!(stdout.contains("tiny class"), "{stdout}");
}

/// Finite pixels so large that the stem's conv overflows: PyTorch's network turns them into
/// NaN logits (the group norm's mean of infinities), so they are this input's error, never an
/// answer: no ReLU or max pool may drop the NaN on the way.
#[test]
fn overflowing_pixels_are_an_error_not_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let huge: Vec<f32> = (0..3 * 96 * 96)
        .map(|i| if i % 3 == 0 { 3.0e38 } else { -3.0e38 })
        .collect();
    let npy = dir.path().join("huge.npy");
    vit_hybrid::npy::write_f32(&npy, &[1, 3, 96, 96], &huge).unwrap();
    let (code, stdout, stderr) = run(&[
        "classify",
        "--model",
        tiny().to_str().unwrap(),
        "--json",
        npy.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "stdout: {stdout} stderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let e = v["error"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(e.contains("NaN or infinite"), "{e}");
}

/// Finite weights whose products overflow float32 give infinite logits: each input's error
/// (exit 1), never a probability table of NaN.
#[test]
fn non_finite_logits_are_an_error_not_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "preprocessor_config.json"] {
        std::fs::copy(tiny().join(f), dir.path().join(f)).unwrap();
    }
    let bytes = std::fs::read(tiny().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                v.dtype(),
                v.shape().to_vec(),
                v.data().to_vec(),
            )
        })
        .collect();
    for t in tensors.iter_mut().filter(|t| t.0 == "classifier.weight") {
        for (i, b) in t.3.chunks_exact_mut(4).enumerate() {
            let v: f32 = if i % 2 == 0 { 3.0e38 } else { 2.0e38 };
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors")).unwrap();
    let (code, stdout, stderr) = run(&[
        "classify",
        "--model",
        dir.path().to_str().unwrap(),
        "--json",
        photo().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "stderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let e = v["error"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(e.contains("NaN or infinite"), "{e}");
    assert!(
        stderr.contains("chelsea.png") && !stdout.contains("top"),
        "{stderr}"
    );
}

#[test]
fn bad_inputs_are_reported_in_place_and_the_rest_classified() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, b"this is not a JPEG").unwrap();
    let wrong = dir.path().join("wrong.npy");
    vit_hybrid::npy::write_f32(&wrong, &[3, 8, 8], &[0.0; 192]).unwrap();
    let missing = dir.path().join("missing.png");
    let model = tiny();
    let args: Vec<String> = vec![
        "classify".into(),
        "--model".into(),
        model.display().to_string(),
        "--json".into(),
        empty.display().to_string(),
        photo().display().to_string(),
        text.display().to_string(),
        wrong.display().to_string(),
        missing.display().to_string(),
    ];
    let mut args = args;
    // A folder with no image file is an input that failed, not silently nothing.
    let no_images = dir.path().join("no-images");
    std::fs::create_dir(&no_images).unwrap();
    std::fs::write(no_images.join("readme.txt"), b"no pictures here").unwrap();
    args.push(no_images.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 1, "some inputs failed: exit 1; stderr: {stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert!(
        lines[5]["error"]
            .as_str()
            .unwrap()
            .contains("no image file"),
        "{}",
        lines[5]
    );
    // Each error names its input once on stderr.
    assert_eq!(stderr.matches("notes.jpg").count(), 1, "{stderr}");
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v["input"], args[4 + i]);
        assert_eq!(v.get("error").is_none(), i == 1, "line {i}: {v}");
    }
    assert!(lines[3]["error"].as_str().unwrap().contains("[3, 8, 8]"));
    assert_eq!(
        stderr.matches("error:").count() - stderr.matches("XDG_RUNTIME_DIR").count(),
        5,
        "{stderr}"
    );
}

/// Counts of zero and a trace that cannot be written are usage errors, said before any work.
#[test]
fn zero_counts_and_unwritable_traces_are_refused_up_front() {
    let model = tiny();
    let m = model.to_str().unwrap();
    let p = photo();
    let p = p.to_str().unwrap();
    for args in [
        vec!["classify", "--model", m, "--top-k", "0", p],
        vec!["classify", "--model", m, "--batch-size", "0", p],
        vec!["bench", "--model", m, "--iters", "0"],
        vec!["profile", "--model", m, "--batch-size", "0"],
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("at least 1") && stdout.is_empty(),
            "{args:?}: {stderr}"
        );
    }
    let (code, stdout, stderr) = run(&["profile", "--model", m, "--trace", "/nonexistent/t.json"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("/nonexistent") && stdout.is_empty(),
        "{stderr}"
    );
    // A folder as the trace file: refused before the profile runs (its stdout stays empty).
    let folder = std::env::temp_dir();
    let (code, stdout, stderr) =
        run(&["profile", "--model", m, "--trace", folder.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is a folder") && stdout.is_empty(),
        "{stderr}"
    );
}

#[test]
fn broken_model_is_one_clear_error() {
    let (code, _, stderr) = run(&[
        "classify",
        "--model",
        "/nonexistent/model",
        photo().to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/model"), "{stderr}");
}

/// The adapter line of `info` with LP_NUM_THREADS set to `threads`, or unset.
fn adapter_line(threads: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vit-hybrid"));
    cmd.args(["info", "--model", tiny().to_str().unwrap()]);
    match threads {
        Some(t) => cmd.env("LP_NUM_THREADS", t),
        None => cmd.env_remove("LP_NUM_THREADS"),
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("adapter:"));
    line.expect("an adapter line").to_string()
}

#[test]
fn lavapipe_runs_four_threads_per_core_unless_told() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let default = adapter_line(None);
    if !default.contains("llvmpipe") {
        assert!(!default.contains("threads"), "{default}");
        return;
    }
    let want = (4 * cores).min(16);
    assert!(default.ends_with(&format!(", {want} threads")), "{default}");
    let told = adapter_line(Some("3"));
    assert!(told.ends_with(", 3 threads"), "{told}");
}

#[test]
fn info_describes_model_and_adapter() {
    let model = tiny();
    let (code, stdout, stderr) = run(&["info", "--model", model.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    for needle in [
        "adapter:",
        "parameters:   122250 in 115 tensors",
        "F32 x115",
        "96x96",
        "10",
    ] {
        assert!(
            stdout.contains(needle),
            "info output lacks {needle:?}:\n{stdout}"
        );
    }
    // Forcing a class names that class's kernels, whatever the adapter.
    for (class, needles) in [
        (
            "gpu",
            ["linear:main_vec4", "Tiled variant", "Workgroup variant"],
        ),
        (
            "cpu",
            ["main_texture_f32", "texture products", "Rows variant"],
        ),
    ] {
        let args = [
            "info",
            "--kernels",
            class,
            "--model",
            model.to_str().unwrap(),
        ];
        let (code, out, stderr) = run(&args);
        assert_eq!(code, 0, "{stderr}");
        for needle in needles {
            assert!(
                out.contains(needle),
                "info --kernels {class} lacks {needle:?}:\n{out}"
            );
        }
    }
    // On lavapipe (subgroups of 8) the kernels it names are the subgroup ones.
    let lavapipe = stdout.contains("llvmpipe");
    for needle in ["linear_subgroup:main_texture_f32", "attention_fused:main"] {
        if !lavapipe {
            break;
        }
        assert!(
            stdout.contains(needle),
            "info output lacks {needle:?}:\n{stdout}"
        );
    }
}

/// A hub cache laid out as huggingface_hub writes it, holding the tiny model as `test/tiny`.
fn prepared_cache() -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--test--tiny");
    let snap = repo.join("snapshots/0123456789abcdef");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123456789abcdef").unwrap();
    for f in [
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    ] {
        std::fs::copy(tiny().join(f), snap.join(f)).unwrap();
    }
    cache
}

#[test]
fn hub_id_from_prepared_cache_offline() {
    let cache = prepared_cache();
    let one = Path::new("1");
    let (code, stdout, stderr) = run_env(
        &[
            "classify",
            "--model",
            "test/tiny",
            "--top-k",
            "1",
            photo().to_str().unwrap(),
        ],
        &[("HF_HUB_CACHE", cache.path()), ("HF_HUB_OFFLINE", one)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("tiny class"), "{stdout}");
    // HF_HOME/hub is the cache when HF_HUB_CACHE is unset.
    let home = tempfile::tempdir().unwrap();
    std::fs::rename(cache.path(), home.path().join("hub")).unwrap();
    let (code, _, stderr) = run_env(
        &["info", "--model", "test/tiny"],
        &[("HF_HOME", home.path()), ("HF_HUB_OFFLINE", one)],
    );
    assert_eq!(code, 0, "{stderr}");
}

/// A sharded checkpoint in the cache (index and every shard) is found offline; one with a
/// shard missing is not there.
#[test]
fn sharded_hub_model_from_prepared_cache_offline() {
    let cache = prepared_cache();
    let snap = cache
        .path()
        .join("models--test--tiny/snapshots/0123456789abcdef");
    common::split_into_shards(&snap);
    let one = Path::new("1");
    let env = [("HF_HUB_CACHE", cache.path()), ("HF_HUB_OFFLINE", one)];
    let p = photo();
    let args = [
        "classify",
        "--model",
        "test/tiny",
        "--top-k",
        "1",
        p.to_str().unwrap(),
    ];
    let (code, stdout, stderr) = run_env(&args, &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("tiny class"), "{stdout}");
    std::fs::remove_file(snap.join("model-00002-of-00002.safetensors")).unwrap();
    let (code, _, stderr) = run_env(&args, &env);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not in the Hugging Face cache"), "{stderr}");
}

#[test]
fn hub_id_missing_offline_or_unreachable_names_the_cache() {
    let cache = prepared_cache();
    let (code, _, stderr) = run_env(
        &["info", "--model", "test/absent"],
        &[
            ("HF_HUB_CACHE", cache.path()),
            ("HF_HUB_OFFLINE", Path::new("1")),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("test/absent") && stderr.contains(cache.path().to_str().unwrap()),
        "{stderr}"
    );
    // With the network "on" but the hub unreachable (a closed local port), the error says so.
    let (code, _, stderr) = run_env(
        &["info", "--model", "test/absent"],
        &[
            ("HF_HUB_CACHE", cache.path()),
            ("HF_ENDPOINT", Path::new("http://127.0.0.1:9")),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no network") && stderr.contains(cache.path().to_str().unwrap()),
        "{stderr}"
    );
}

#[test]
fn folders_recursive_sorted_and_batches_keep_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
    for name in ["z.png", "b/c/y.PNG", "b/a.png", "m.png"] {
        std::fs::copy(photo(), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "skipped").unwrap();
    std::fs::write(dir.path().join("b/broken.png"), "not a png").unwrap();
    let model = tiny();
    let (code, stdout, stderr) = run(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--json",
        "--batch-size",
        "2",
        photo().to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "the broken file fails: {stderr}");
    let inputs: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["input"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let d = dir.path().display();
    let want = vec![
        photo().display().to_string(),
        format!("{d}/b/a.png"),
        format!("{d}/b/broken.png"),
        format!("{d}/b/c/y.PNG"),
        format!("{d}/m.png"),
        format!("{d}/z.png"),
    ];
    assert_eq!(inputs, want);
    // The same photo gives the same answer wherever it falls in a batch.
    let tops: Vec<String> = stdout
        .lines()
        .filter(|l| !l.contains("error"))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["top"].to_string()
        })
        .collect();
    assert!(tops.windows(2).all(|w| w[0] == w[1]), "{stdout}");
}

#[test]
fn preprocess_writes_what_transformers_feeds_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("px.npy");
    let model = tiny();
    let (code, _, stderr) = run(&[
        "preprocess",
        "--model",
        model.to_str().unwrap(),
        photo().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (shape, data) = vit_hybrid::npy::read_f32(&out).unwrap();
    assert_eq!(shape, vec![1, 3, 96, 96]);
    let bytes = std::fs::read(tiny().join("reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let px = st.tensor("pixel_values").unwrap();
    let n = 3 * 96 * 96;
    let want: Vec<f32> = px
        .data()
        .chunks_exact(8)
        .skip(2 * n)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
        .collect();
    assert_eq!(
        data, want,
        "PNG preprocessing must equal transformers' bit for bit"
    );
}

#[test]
fn bench_json_reports_the_promised_fields() {
    let model = tiny();
    let (code, stdout, stderr) = run(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--iters",
        "2",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in [
        "adapter",
        "batch_size",
        "cold_start_s",
        "median_s_per_image",
        "images_per_s",
        "gflops_per_s",
    ] {
        assert!(v.get(key).is_some(), "bench --json lacks {key}: {stdout}");
    }
    assert_eq!(v["batch_size"], 1);
    assert!(v["gflops_per_s"].as_f64().unwrap() > 0.0);
    // 2 * multiply-adds of the tiny config, counted from config.json.
    assert!(
        (v["gflop_per_image"].as_f64().unwrap() - 0.0255).abs() < 0.001,
        "{stdout}"
    );
    assert!(
        stderr.contains("bench: run 2/2"),
        "progress on stderr: {stderr}"
    );
}

#[test]
fn profile_tables_and_chrome_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.json");
    let model = tiny();
    let (code, stdout, stderr) = run(&[
        "profile",
        "--model",
        model.to_str().unwrap(),
        photo().to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    for needle in [
        "shader",
        "layer",
        "backbone.stem",
        "encoder.layer.1.mlp",
        "GFLOP/s",
        "share",
    ] {
        assert!(
            stdout.contains(needle),
            "profile output lacks {needle:?}:\n{stdout}"
        );
    }
    // A linear kernel's row (linear or linear_subgroup, any entry point).
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("linear") && l.contains(":main")),
        "profile output lacks a linear shader:\n{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = v["traceEvents"].as_array().unwrap();
    assert!(events.len() > 50, "one event per dispatch");
    for e in events {
        assert_eq!(e["ph"], "X");
        assert!(e["dur"].as_f64().unwrap() >= 0.0 && e["ts"].as_f64().unwrap() >= 0.0);
        assert!(e["args"]["layer"].as_str().is_some());
    }
    assert!(
        events.iter().any(|e| e["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("linear") && n.contains(":main"))),
        "a linear dispatch in the trace"
    );
}

/// Headers that lie: a truncated PNG, a PNG claiming 100000 x 100000 pixels, .npy files with
/// the wrong dtype or a shape bigger than the file. Each fails alone, without a panic.
#[test]
fn lying_headers_and_truncated_files_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let png = std::fs::read(photo()).unwrap();
    let truncated = dir.path().join("truncated.png");
    std::fs::write(&truncated, &png[..png.len() / 3]).unwrap();
    // Same file with the IHDR size patched to 100000 x 100000 (CRC left wrong on purpose
    // too: either check must stop it before any allocation of that size).
    let mut huge_png = png.clone();
    huge_png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge_png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let huge = dir.path().join("huge.png");
    std::fs::write(&huge, &huge_png).unwrap();
    let f8 = dir.path().join("f8.npy");
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 96, 96), }";
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    npy.extend_from_slice(&(h.len() as u16).to_le_bytes());
    npy.extend_from_slice(h.as_bytes());
    npy.extend(std::iter::repeat_n(0u8, 3 * 96 * 96 * 8));
    std::fs::write(&f8, &npy).unwrap();
    let lying = dir.path().join("lying.npy");
    vit_hybrid::npy::write_f32(&lying, &[3, 96, 96], &vec![0.0; 3 * 96 * 96]).unwrap();
    let mut bytes = std::fs::read(&lying).unwrap();
    bytes.truncate(bytes.len() - 1000);
    std::fs::write(&lying, &bytes).unwrap();

    let model = tiny();
    let paths = [&truncated, &huge, &f8, &lying];
    let mut args = vec![
        "classify".to_string(),
        "--model".into(),
        model.display().to_string(),
        "--json".into(),
    ];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    args.push(photo().display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for (i, v) in lines[..4].iter().enumerate() {
        let e = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("input {i} should fail: {v}"));
        assert!(
            e.contains(paths[i].file_name().unwrap().to_str().unwrap()),
            "error names the file: {e}"
        );
    }
    assert!(
        lines[2]["error"].as_str().unwrap().contains("f8"),
        "{}",
        lines[2]
    );
    assert!(
        lines[4].get("top").is_some(),
        "the good photo is still classified"
    );
}

/// `shader` lists the shaders and prints one as the GPU gets it: templates expanded, the
/// written-out accumulators there, no directive left.
#[test]
fn shader_prints_the_expanded_source() {
    let (code, list, _) = run(&["shader"]);
    assert_eq!(code, 0);
    assert!(list.lines().any(|l| l == "linear") && list.lines().any(|l| l == "conv2d"));
    let (code, src, _) = run(&["shader", "linear"]);
    assert_eq!(code, 0);
    assert!(src.contains("fn main_texture_f32_to_buffer4("), "{src}");
    assert!(src.contains("a15_2 +="), "accumulators written out");
    assert!(
        !src.contains("// #for") && !src.contains("{r}"),
        "templates expanded"
    );
    let (code, _, err) = run(&["shader", "no-such-shader"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no shader named") && err.contains("linear"),
        "{err}"
    );
}

#[test]
fn clean_run_prints_no_error_line() {
    // Where CI and servers run: no desktop session, so no XDG_RUNTIME_DIR.
    let out = Command::new(env!("CARGO_BIN_EXE_vit-hybrid"))
        .args(["classify", "--model", tiny().to_str().unwrap()])
        .arg(photo())
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(
        !stderr.to_lowercase().contains("error"),
        "a run that works printed: {stderr}"
    );
}
