//! deploy/: the Dockerfile, the KServe manifests, the Kubernetes Indexed Job and the Slurm
//! array script run command lines that `vit-hybrid serve` and `classify` accept, on the ports
//! and paths they declare. Each command line goes through the binary's own parser
//! (VIT_HYBRID_PARSE_ONLY prints the parsed arguments and exits), the shell ones through a
//! real shell with the binary on PATH.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_vit-hybrid"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `program args` with the binary first on PATH in parse-only mode; the arguments
/// `vit-hybrid` parsed.
fn parsed(program: &str, args: &[String], env: &[(&str, &str)]) -> Vec<String> {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(program)
        .args(args)
        .env("PATH", path)
        .env("VIT_HYBRID_PARSE_ONLY", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} was refused:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{program} {args:?} printed {stdout:?}: {e}"))
}

/// `--flag value` of parsed arguments.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn yaml_docs(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| match s {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("not a string: {other:?}"),
        })
        .collect()
}

fn port_of(v: &Value) -> u16 {
    match v {
        Value::Number(n) => n.as_u64().unwrap() as u16,
        other => panic!("port {other:?} is not a number"),
    }
}

#[test]
fn dockerfile_serves_the_port_it_exposes() {
    let text = std::fs::read_to_string(deploy("Dockerfile")).unwrap();
    let instruction = |name: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(name))
            .map(|rest| rest.trim().to_string())
            .collect()
    };
    let bases = instruction("FROM ");
    assert!(
        bases.last().unwrap().starts_with("debian:"),
        "the image runs on {bases:?}"
    );
    let apt = text.replace("\\\n", " ");
    for pkg in ["libvulkan1", "mesa-vulkan-drivers"] {
        assert!(apt.contains(pkg), "the image does not install {pkg}");
    }
    let json_list = |name: &str| -> Vec<String> {
        let v = instruction(name);
        assert_eq!(v.len(), 1, "one {name}");
        serde_json::from_str(&v[0]).unwrap_or_else(|e| panic!("{name} is not exec form: {e}"))
    };
    let entry = json_list("ENTRYPOINT ");
    let cmd = json_list("CMD ");
    assert_eq!(entry, ["vit-hybrid"]);
    let args = parsed("vit-hybrid", &cmd, &[]);
    assert_eq!(args[0], "serve");
    let exposed: Vec<String> = instruction("EXPOSE ");
    assert_eq!(exposed, [flag(&args, "--port").unwrap()]);
    assert_eq!(flag(&args, "--host"), Some("0.0.0.0"));
    assert!(text.contains("COPY --from=build /src/target/release/vit-hybrid /usr/local/bin/"));
}

#[test]
fn kserve_runtime_speaks_v2_on_its_port_with_probes_on_the_health_paths() {
    let docs = yaml_docs("kserve.yaml");
    let by_kind: BTreeMap<String, &Value> = docs
        .iter()
        .map(|d| (d["kind"].as_str().unwrap().to_string(), d))
        .collect();
    let runtime = by_kind["ServingRuntime"];
    let isvc = by_kind["InferenceService"];
    assert_eq!(strings(&runtime["spec"]["protocolVersions"]), ["v2"]);
    let model = &isvc["spec"]["predictor"]["model"];
    assert_eq!(model["protocolVersion"].as_str(), Some("v2"));
    assert_eq!(model["runtime"], runtime["metadata"]["name"]);
    assert_eq!(
        model["modelFormat"]["name"],
        runtime["spec"]["supportedModelFormats"][0]["name"]
    );

    let container = &runtime["spec"]["containers"][0];
    let args = parsed("vit-hybrid", &strings(&container["args"]), &[]);
    assert_eq!(args[0], "serve");
    let port: u16 = flag(&args, "--port").unwrap().parse().unwrap();
    assert_eq!(flag(&args, "--host"), Some("0.0.0.0"));
    // KServe's storage initializer puts the model here, and the v2 paths use the
    // InferenceService's name.
    assert_eq!(flag(&args, "--model"), Some("/mnt/models"));
    assert_eq!(flag(&args, "--name"), isvc["metadata"]["name"].as_str());
    assert_eq!(port_of(&container["ports"][0]["containerPort"]), port);
    for (probe, path) in [
        ("readinessProbe", "/v2/health/ready"),
        ("livenessProbe", "/v2/health/live"),
        ("startupProbe", "/v2/health/ready"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(port_of(&get["port"]), port, "{probe}");
    }
}

/// The shards that shard commands name must be 1..=N, each once, over the same inputs.
fn check_shards(runs: &[Vec<String>], n: usize, results_under: &str, inputs_under: &str) {
    let mut seen = Vec::new();
    let mut outputs = Vec::new();
    for args in runs {
        assert_eq!(args[0], "classify", "{args:?}");
        assert!(args.contains(&"--resume".to_string()), "{args:?}");
        let shard = flag(args, "--shard").unwrap();
        let (k, total) = shard.split_once('/').unwrap();
        assert_eq!(total.parse::<usize>().unwrap(), n, "{args:?}");
        seen.push(k.parse::<usize>().unwrap());
        let output = flag(args, "--output").unwrap();
        assert!(output.starts_with(results_under), "{output}");
        outputs.push(output.to_string());
        let inputs = args.last().unwrap();
        assert!(inputs.starts_with(inputs_under), "{inputs}");
    }
    seen.sort();
    assert_eq!(seen, (1..=n).collect::<Vec<_>>());
    outputs.sort();
    outputs.dedup();
    assert_eq!(outputs.len(), n, "every shard needs its own results file");
}

#[test]
fn indexed_job_runs_every_shard_on_the_shared_volume() {
    let docs = yaml_docs("k8s-indexed-job.yaml");
    let job = &docs[0];
    assert_eq!(job["kind"].as_str(), Some("Job"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = spec["completions"].as_u64().unwrap() as usize;
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    let command = strings(&container["command"]);
    let script = strings(&container["args"]);
    assert_eq!(command[1..], ["-c"]);
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    let claim = &pod["volumes"][0]["persistentVolumeClaim"]["claimName"];
    assert!(claim.is_string(), "the volume is not a shared claim");
    // The pod's shell, with each index Kubernetes gives (0-based).
    let runs: Vec<Vec<String>> = (0..n)
        .map(|i| {
            let mut args = vec!["-c".to_string()];
            args.extend(script.iter().cloned());
            parsed(
                "sh",
                &args,
                &[("JOB_COMPLETION_INDEX", i.to_string().as_str())],
            )
        })
        .collect();
    check_shards(&runs, n, mount, mount);
}

#[test]
fn slurm_array_runs_every_shard_with_resume() {
    let path = deploy("slurm-array.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    let array = text
        .lines()
        .find_map(|l| l.strip_prefix("#SBATCH --array="))
        .expect("an #SBATCH --array line");
    let (first, last) = array.split_once('-').unwrap();
    assert_eq!(
        first, "1",
        "shards are 1-based, so the array must start at 1"
    );
    let n: usize = last.parse().unwrap();
    let results = tempfile::tempdir().unwrap();
    let results_dir = results.path().to_str().unwrap();
    let runs: Vec<Vec<String>> = (1..=n)
        .map(|k| {
            let (k, count) = (k.to_string(), n.to_string());
            parsed(
                "bash",
                &[path.display().to_string()],
                &[
                    ("SLURM_ARRAY_TASK_ID", k.as_str()),
                    ("SLURM_ARRAY_TASK_COUNT", count.as_str()),
                    ("RESULTS", results_dir),
                ],
            )
        })
        .collect();
    check_shards(&runs, n, results_dir, "/shared/");
}
