//! `classify --shard K/N --output FILE --resume` through the binary: shards disjoint and
//! covering every input, results appended as JSON lines equal to `--json`'s, a cut last line
//! repaired and only the missing inputs run again, and bad K/N values refused clearly.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> String {
    root().join("tests/fixtures/digits").display().to_string()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vit-hybrid"))
        .args(args)
        .env("NODEVICE_SELECT", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A folder of 24 images (the ten digits, copied under several names) and one broken file.
fn image_folder(dir: &Path) -> PathBuf {
    let images = dir.join("images");
    std::fs::create_dir_all(images.join("sub")).unwrap();
    for copy in 0..2 {
        for d in 0..10 {
            let from = root().join(format!("examples/images/digits/digit_{d}_a.png"));
            let name = if copy == 0 {
                format!("d{d}.png")
            } else {
                format!("sub/copy_{d}.png")
            };
            std::fs::copy(&from, images.join(name)).unwrap();
        }
    }
    for extra in 0..4 {
        let from = root().join(format!("examples/images/digits/digit_{extra}_a.png"));
        std::fs::copy(from, images.join(format!("extra_{extra}.PNG"))).unwrap();
    }
    std::fs::write(images.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    images
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn inputs_of(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["input"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shards_are_disjoint_cover_every_input_and_match_json_output() {
    let dir = tempfile::tempdir().unwrap();
    let images = image_folder(dir.path());
    let images_arg = images.to_str().unwrap();
    // The whole set in one run, as `--json` prints it.
    let (code, stdout, stderr) = run(&[
        "classify",
        "--model",
        &model(),
        "--json",
        "--top-k",
        "3",
        images_arg,
    ]);
    assert_eq!(code, 1, "the broken file fails, the rest succeed: {stderr}");
    let whole: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(whole.len(), 25);

    let n = 3;
    let mut all = Vec::new();
    for k in 1..=n {
        let out = dir.path().join(format!("shard-{k}.jsonl"));
        let shard = format!("{k}/{n}");
        let (_, stdout, stderr) = run(&[
            "classify",
            "--model",
            &model(),
            "--top-k",
            "3",
            "--shard",
            &shard,
            "--output",
            out.to_str().unwrap(),
            images_arg,
        ]);
        assert!(stdout.is_empty(), "--output leaves stdout empty: {stdout}");
        assert!(stderr.contains(&format!("shard {k}/{n}:")), "{stderr}");
        all.extend(lines(&out));
    }
    let names = inputs_of(&all);
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "an input is in two shards");
    assert_eq!(
        names.len(),
        whole.len(),
        "the shards do not cover every input"
    );
    // Each line is the one `--json` prints for that input.
    for line in &all {
        let same = whole.iter().find(|w| w["input"] == line["input"]).unwrap();
        assert_eq!(line, same);
    }

    // The same shard twice picks the same inputs (deterministic from the paths).
    let again = dir.path().join("again.jsonl");
    run(&[
        "classify",
        "--model",
        &model(),
        "--shard",
        "2/3",
        "--output",
        again.to_str().unwrap(),
        images_arg,
    ]);
    assert_eq!(
        inputs_of(&lines(&again)),
        inputs_of(&lines(&dir.path().join("shard-2.jsonl")))
    );
}

#[test]
fn resume_repairs_a_cut_line_and_runs_only_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let images = image_folder(dir.path());
    let images_arg = images.to_str().unwrap();
    let out = dir.path().join("results.jsonl");
    let out_arg = out.to_str().unwrap();
    let args = [
        "classify",
        "--model",
        &model(),
        "--output",
        out_arg,
        "--resume",
        images_arg,
    ];
    let (_, _, stderr) = run(&args);
    let complete = lines(&out);
    assert_eq!(complete.len(), 25, "{stderr}");

    // A run killed while writing: 10 lines kept, the 11th cut in the middle.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut kept: String = text.split_inclusive('\n').take(10).collect();
    let eleventh = text.split_inclusive('\n').nth(10).unwrap();
    kept.push_str(&eleventh[..eleventh.len() / 2]);
    std::fs::write(&out, &kept).unwrap();

    let (code, _, stderr) = run(&args);
    // An error line answers its input too: the broken file fails again only if its line was
    // not among those kept.
    let broken_kept = complete[..10].iter().any(|l| l.get("error").is_some());
    assert_eq!(code, if broken_kept { 0 } else { 1 }, "{stderr}");
    assert!(stderr.contains("removed a cut last line"), "{stderr}");
    assert!(
        stderr.contains("resume: 10 of 25 inputs already in"),
        "{stderr}"
    );
    let resumed = lines(&out);
    assert_eq!(resumed.len(), 25);
    // The first 10 lines are untouched; the rest are the missing inputs, answered as before.
    assert_eq!(resumed[..10], complete[..10]);
    let mut a = inputs_of(&resumed);
    let mut b = inputs_of(&complete);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for line in &resumed {
        let same = complete
            .iter()
            .find(|c| c["input"] == line["input"])
            .unwrap();
        assert_eq!(line, same);
    }

    // Nothing left: a resumed run does no work and changes nothing.
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("25 of 25 inputs already in"), "{stderr}");
    assert_eq!(lines(&out), resumed);
}

#[test]
fn bad_shard_values_are_clear_errors() {
    for (bad, says) in [
        ("0/4", "between 1 and N"),
        ("5/4", "between 1 and N"),
        ("1/0", "at least 1"),
        ("3", "expected K/N"),
        ("x/4", "not a whole number"),
    ] {
        let (code, _, stderr) = run(&[
            "classify",
            "--model",
            &model(),
            "--shard",
            bad,
            "whatever.png",
        ]);
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(
            stderr.contains("--shard") && stderr.contains(says),
            "{bad}: {stderr}"
        );
    }
    let (code, _, stderr) = run(&["classify", "--resume", "whatever.png"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--output"), "{stderr}");
}
