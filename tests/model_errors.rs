//! A broken model folder is one clear error that names the file, tensor or setting at fault.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use vit_hybrid::model::Model;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

/// A copy of the tiny fixture's model folder to break.
fn copy_tiny() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    ] {
        std::fs::copy(tiny().join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn load_err(dir: &Path) -> String {
    match Model::load(common::gpu(), dir) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_mentions(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "error should mention {p:?}: {err}");
    }
}

/// Rewrites model.safetensors through `edit` (name -> (dtype, shape, bytes)).
fn rewrite_weights(
    dir: &Path,
    edit: impl FnOnce(&mut HashMap<String, (Dtype, Vec<usize>, Vec<u8>)>),
) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut map: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> = st
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                (v.dtype(), v.shape().to_vec(), v.data().to_vec()),
            )
        })
        .collect();
    edit(&mut map);
    let views: Vec<(String, TensorView<'_>)> = map
        .iter()
        .map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

const CONV1: &str =
    "vit.embeddings.patch_embeddings.backbone.bit.encoder.stages.1.layers.0.conv1.weight";

#[test]
fn missing_tensor_is_named() {
    let dir = copy_tiny();
    rewrite_weights(dir.path(), |m| {
        m.remove(CONV1);
    });
    assert_mentions(&load_err(dir.path()), &[CONV1, "missing", "[16, 32, 1, 1]"]);
}

#[test]
fn wrong_shape_names_expected_and_actual() {
    let dir = copy_tiny();
    rewrite_weights(dir.path(), |m| {
        let t = m.get_mut("classifier.bias").unwrap();
        t.1 = vec![5];
        t.2.truncate(20);
    });
    assert_mentions(&load_err(dir.path()), &["classifier.bias", "[5]", "[10]"]);
}

/// One NaN (or Inf) in one weight would make every logit NaN: refused at load, by tensor
/// and count, in every dtype the loader reads.
#[test]
fn non_finite_weights_are_refused_by_name() {
    for (name, value, kind) in [
        (
            "vit.encoder.layer.0.attention.attention.query.weight",
            f32::NAN,
            "1 NaN",
        ),
        (
            "vit.embeddings.patch_embeddings.backbone.bit.embedder.convolution.weight",
            f32::INFINITY,
            "1 infinite",
        ),
        ("classifier.weight", f32::NEG_INFINITY, "1 infinite"),
    ] {
        let dir = copy_tiny();
        rewrite_weights(dir.path(), |m| {
            let t = m
                .get_mut(name)
                .unwrap_or_else(|| panic!("the fixture has {name}"));
            assert_eq!(t.0, Dtype::F32);
            t.2[4..8].copy_from_slice(&value.to_le_bytes());
        });
        assert_mentions(&load_err(dir.path()), &["model.safetensors", name, kind]);
    }
    let dir = copy_tiny();
    rewrite_weights(dir.path(), |m| {
        let t = m.get_mut("classifier.bias").unwrap();
        let half: Vec<u8> =
            t.2.chunks_exact(4)
                .enumerate()
                .flat_map(|(i, b)| {
                    let v = if i == 3 {
                        f32::NAN
                    } else {
                        f32::from_le_bytes(b.try_into().unwrap())
                    };
                    half::f16::from_f32(v).to_le_bytes()
                })
                .collect();
        *t = (Dtype::F16, t.1.clone(), half);
    });
    assert_mentions(&load_err(dir.path()), &["classifier.bias", "1 NaN"]);
}

#[test]
fn truncated_and_corrupt_weights() {
    let dir = copy_tiny();
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_mentions(&load_err(dir.path()), &["model.safetensors"]);
    std::fs::write(&path, b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage").unwrap();
    assert_mentions(&load_err(dir.path()), &["model.safetensors"]);
    std::fs::remove_file(&path).unwrap();
    assert_mentions(&load_err(dir.path()), &["model.safetensors"]);
}

#[test]
fn unsupported_settings_are_rejected_by_name() {
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "layer_type",
            Box::new(|v| v["backbone_config"]["layer_type"] = "preactivation".into()),
            "preactivation",
        ),
        (
            "hidden_act",
            Box::new(|v| v["hidden_act"] = "gelu_new".into()),
            "gelu_new",
        ),
        (
            "backbone act",
            Box::new(|v| v["backbone_config"]["hidden_act"] = "swish".into()),
            "swish",
        ),
        (
            "padding",
            Box::new(|v| v["backbone_config"]["global_padding"] = "valid".into()),
            "global_padding",
        ),
        (
            "heads",
            Box::new(|v| v["num_attention_heads"] = 5.into()),
            "num_attention_heads",
        ),
        (
            "featmap",
            Box::new(|v| v["backbone_featmap_shape"] = serde_json::json!([1, 128, 7, 7])),
            "backbone_featmap_shape",
        ),
    ];
    for (what, edit, needle) in cases {
        let dir = copy_tiny();
        edit_config(dir.path(), edit);
        let err = load_err(dir.path());
        assert_mentions(&err, &[needle]);
        eprintln!("{what}: {err}");
    }
}

#[test]
fn config_that_disagrees_with_weights() {
    let dir = copy_tiny();
    edit_config(dir.path(), |v| v["intermediate_size"] = 100.into());
    assert_mentions(
        &load_err(dir.path()),
        &["intermediate.dense.weight", "[100, 48]", "[96, 48]"],
    );
}

#[test]
fn invalid_or_missing_config() {
    let dir = copy_tiny();
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    assert_mentions(&load_err(dir.path()), &["config.json"]);
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    assert_mentions(&load_err(dir.path()), &["config.json"]);
    assert_mentions(&load_err(&dir.path().join("nope")), &["nope"]);
}

/// transformers takes any JSON value as a label; numbers read as their text, null as the
/// default name.
#[test]
fn labels_that_are_not_strings_are_accepted() {
    let dir = copy_tiny();
    edit_config(dir.path(), |v| {
        v["id2label"]["0"] = 7.into();
        v["id2label"]["1"] = serde_json::Value::Null;
        v["id2label"]["2"] = 2.5.into();
    });
    let model = Model::load(common::gpu(), dir.path()).unwrap();
    assert_eq!(model.config.labels[..3], ["7", "LABEL_1", "2.5"]);
}

/// A file where a model folder belongs is named as such, not looked up on the hub.
#[test]
fn a_file_given_as_the_model_is_said_to_be_a_file() {
    let dir = copy_tiny();
    let file = dir.path().join("config.json");
    let err = match Model::from_pretrained(common::gpu(), file.to_str().unwrap()) {
        Ok(_) => panic!("a file is not a model"),
        Err(e) => format!("{e:#}"),
    };
    assert_mentions(&err, &["config.json", "is a file"]);
}

#[test]
fn preprocessor_that_never_fits_the_model() {
    let dir = copy_tiny();
    let path = dir.path().join("preprocessor_config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["crop_size"] = serde_json::json!({"height": 64, "width": 80});
    std::fs::write(&path, v.to_string()).unwrap();
    assert_mentions(
        &load_err(dir.path()),
        &["preprocessor_config.json", "64x80", "96x96", "image_size"],
    );
    // Without a crop the size depends on the image: checked per image, not at load.
    v["do_center_crop"] = false.into();
    std::fs::write(&path, v.to_string()).unwrap();
    Model::load(common::gpu(), dir.path()).unwrap();
}

/// tiny's model.safetensors split into two shards with transformers' index file.
fn shard_tiny() -> tempfile::TempDir {
    let dir = copy_tiny();
    common::split_into_shards(dir.path());
    dir
}

#[test]
fn sharded_checkpoints_load_as_one() {
    let whole = Model::load(common::gpu(), &tiny()).unwrap();
    let dir = shard_tiny();
    let sharded = Model::load(common::gpu(), dir.path()).unwrap();
    let pixels = common::random(7, whole.image_len(), -1.0, 1.0);
    assert_eq!(
        sharded.forward(&pixels, 1).unwrap(),
        whole.forward(&pixels, 1).unwrap()
    );
}

#[test]
fn broken_shard_indexes_are_named() {
    let index_of = |dir: &Path| dir.join("model.safetensors.index.json");
    let edit_index = |dir: &Path, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(index_of(dir)).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(index_of(dir), v.to_string()).unwrap();
    };
    // A shard outside the folder.
    let dir = shard_tiny();
    edit_index(dir.path(), &|v| {
        v["weight_map"]["extra.weight"] = "../model-00001-of-00002.safetensors".into()
    });
    assert_mentions(&load_err(dir.path()), &["index.json", "not a file name"]);
    // A shard that is not there.
    let dir = shard_tiny();
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    assert_mentions(&load_err(dir.path()), &["model-00002-of-00002.safetensors"]);
    // A tensor in two shards.
    let dir = shard_tiny();
    std::fs::copy(
        dir.path().join("model-00001-of-00002.safetensors"),
        dir.path().join("copy.safetensors"),
    )
    .unwrap();
    edit_index(dir.path(), &|v| {
        v["weight_map"]["extra.weight"] = "copy.safetensors".into()
    });
    assert_mentions(&load_err(dir.path()), &["two shards"]);
    // Only PyTorch's format: said so.
    let dir = copy_tiny();
    std::fs::rename(
        dir.path().join("model.safetensors"),
        dir.path().join("pytorch_model.bin"),
    )
    .unwrap();
    assert_mentions(
        &load_err(dir.path()),
        &["pytorch_model.bin", "safe_serialization"],
    );
}

/// F16 and BF16 checkpoints load, and give exactly what the same rounded values give as F32.
#[test]
fn half_precision_weights_convert_exactly() {
    for dtype in [Dtype::F16, Dtype::BF16] {
        let (half_dir, f32_dir) = (copy_tiny(), copy_tiny());
        let round = |b: &[u8]| -> (Vec<u8>, Vec<u8>) {
            let mut h = Vec::new();
            let mut f = Vec::new();
            for c in b.chunks_exact(4) {
                let v = f32::from_le_bytes(c.try_into().unwrap());
                let (bytes, back) = if dtype == Dtype::F16 {
                    let x = half::f16::from_f32(v);
                    (x.to_le_bytes(), x.to_f32())
                } else {
                    let x = half::bf16::from_f32(v);
                    (x.to_le_bytes(), x.to_f32())
                };
                h.extend_from_slice(&bytes);
                f.extend_from_slice(&back.to_le_bytes());
            }
            (h, f)
        };
        let mut rounded = HashMap::new();
        rewrite_weights(half_dir.path(), |m| {
            for (name, t) in m.iter_mut() {
                let (h, f) = round(&t.2);
                rounded.insert(name.clone(), f);
                *t = (dtype, t.1.clone(), h);
            }
        });
        rewrite_weights(f32_dir.path(), |m| {
            for (name, t) in m.iter_mut() {
                t.2 = rounded[name].clone();
            }
        });
        let half_model = Model::load(common::gpu(), half_dir.path()).unwrap();
        let f32_model = Model::load(common::gpu(), f32_dir.path()).unwrap();
        assert_eq!(
            half_model.info.dtypes,
            vec![(format!("{dtype:?}"), half_model.info.tensor_count)]
        );
        let pixels = common::random(9, half_model.image_len(), -1.0, 1.0);
        assert_eq!(
            half_model.forward(&pixels, 1).unwrap(),
            f32_model.forward(&pixels, 1).unwrap(),
            "{dtype:?}"
        );
    }
}

#[test]
fn wrong_pixel_count_is_an_error() {
    let model = Model::load(common::gpu(), &tiny()).unwrap();
    let err = model.forward(&[0.0; 10], 1).unwrap_err().to_string();
    assert_mentions(&err, &["10 values", "96"]);
}
