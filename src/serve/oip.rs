//! Open Inference Protocol (KServe v2) inference messages: the request's inputs and outputs,
//! in JSON or with the binary tensor data extension, and the response.
//!
//! Binary data extension (as Triton's and KServe's clients send it): the body is the JSON
//! header, `Inference-Header-Content-Length` bytes long, followed by the raw tensors of the
//! inputs that carry `"parameters": {"binary_data_size": n}`, in input order. FP32 data is
//! little-endian; each BYTES element is a 4-byte little-endian length and that many bytes.

use base64::Engine;
use serde_json::{Map, Value, json};

pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// A request's one input, checked against the model.
pub enum Input {
    /// `images` preprocessed tensors [3, H, W], row-major.
    Pixels { images: usize, data: Vec<f32> },
    /// Encoded image files.
    Images(Vec<Vec<u8>>),
}

/// One requested output (always `logits`).
#[derive(Clone, Debug)]
pub struct OutputSpec {
    /// The classification extension: the K best classes as "score:index:label".
    pub classification: Option<usize>,
    pub binary: bool,
}

pub struct Request {
    pub id: Option<Value>,
    pub input: Input,
    pub outputs: Vec<OutputSpec>,
}

/// What the model takes: [3, H, W] images and this many labels.
pub struct Signature {
    pub height: usize,
    pub width: usize,
}

/// Parses an infer request body. `header_len` is `Inference-Header-Content-Length` when the
/// request uses the binary data extension. Errors are the 400 answer's message.
pub fn parse(body: &[u8], header_len: Option<usize>, sig: &Signature) -> Result<Request, String> {
    let (head, mut binary) = match header_len {
        None => (body, &[][..]),
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(format!(
                "Inference-Header-Content-Length is {n} but the body has only {} bytes",
                body.len()
            ));
        }
    };
    let v: Value =
        serde_json::from_slice(head).map_err(|e| format!("malformed JSON request: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("the request must be a JSON object with \"inputs\"")?;
    let inputs = obj
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or("the request has no \"inputs\" array")?;
    let [input] = inputs.as_slice() else {
        return Err(format!(
            "the request has {} inputs; give exactly one, \"pixel_values\" or \"image\"",
            inputs.len()
        ));
    };
    let input = parse_input(input, &mut binary, sig)?;
    if !binary.is_empty() {
        return Err(format!(
            "{} bytes of binary data follow the inputs' binary_data_size",
            binary.len()
        ));
    }
    let binary_default = match obj
        .get("parameters")
        .and_then(|p| p.get("binary_data_output"))
    {
        None => false,
        Some(b) => b
            .as_bool()
            .ok_or("parameter binary_data_output must be true or false")?,
    };
    let outputs = match obj.get("outputs") {
        None => vec![OutputSpec {
            classification: None,
            binary: binary_default,
        }],
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|o| parse_output(o, binary_default))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("\"outputs\" must be a non-empty array".into()),
    };
    Ok(Request {
        id: obj.get("id").cloned(),
        input,
        outputs,
    })
}

fn parse_output(o: &Value, binary_default: bool) -> Result<OutputSpec, String> {
    let name = o
        .get("name")
        .and_then(Value::as_str)
        .ok_or("every requested output needs a \"name\"")?;
    if name != "logits" {
        return Err(format!(
            "unknown output {name:?}: this model has one output, \"logits\""
        ));
    }
    let params = o.get("parameters");
    let classification = match params.and_then(|p| p.get("classification")) {
        None => None,
        Some(k) => match k.as_u64() {
            Some(k) if k > 0 => Some(k as usize),
            _ => {
                return Err(format!(
                    "output logits: classification must be a positive integer, got {k}"
                ));
            }
        },
    };
    let binary = match params.and_then(|p| p.get("binary_data")) {
        None => binary_default,
        Some(b) => b
            .as_bool()
            .ok_or("output logits: binary_data must be true or false")?,
    };
    Ok(OutputSpec {
        classification,
        binary,
    })
}

fn parse_input(v: &Value, binary: &mut &[u8], sig: &Signature) -> Result<Input, String> {
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or("the input has no \"name\"")?;
    let datatype = v
        .get("datatype")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("input {name}: no \"datatype\""))?;
    let shape: Vec<usize> = v
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|s| s.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
        .ok_or_else(|| {
            format!("input {name}: \"shape\" must be an array of non-negative integers")
        })?;
    // The binary part of this input, if it is sent that way.
    let raw = match v.get("parameters").and_then(|p| p.get("binary_data_size")) {
        None => None,
        Some(n) => {
            let n = n
                .as_u64()
                .ok_or_else(|| format!("input {name}: binary_data_size must be an integer"))?
                as usize;
            if n > binary.len() {
                return Err(format!(
                    "input {name}: binary_data_size is {n} but only {} bytes of binary data follow the header",
                    binary.len()
                ));
            }
            let (mine, rest) = binary.split_at(n);
            *binary = rest;
            Some(mine)
        }
    };
    let data = v.get("data");
    if raw.is_some() == data.is_some() {
        return Err(format!(
            "input {name}: give either \"data\" or parameters.binary_data_size, exactly one"
        ));
    }
    match name {
        "pixel_values" => {
            if datatype != "FP32" {
                return Err(format!(
                    "input pixel_values: datatype {datatype}, expected FP32"
                ));
            }
            let (h, w) = (sig.height, sig.width);
            let images = match shape.as_slice() {
                [n, 3, a, b] if *n > 0 && *a == h && *b == w => *n,
                _ => {
                    return Err(format!(
                        "input pixel_values: shape {shape:?}, expected [N, 3, {h}, {w}] with N >= 1"
                    ));
                }
            };
            let want = images
                .checked_mul(3 * h * w)
                .ok_or("input pixel_values: the shape is too large")?;
            let values = match raw {
                Some(bytes) => {
                    if bytes.len() != want * 4 {
                        return Err(format!(
                            "input pixel_values: {} bytes of binary data, shape {shape:?} needs {} ({want} FP32 values)",
                            bytes.len(),
                            want * 4
                        ));
                    }
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                }
                None => {
                    let mut values = Vec::with_capacity(want.min(1 << 24));
                    flatten_numbers(data.expect("checked above"), &mut values)?;
                    if values.len() != want {
                        return Err(format!(
                            "input pixel_values: {} values in \"data\", shape {shape:?} needs {want}",
                            values.len()
                        ));
                    }
                    values
                }
            };
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "input pixel_values: value {i} is NaN or outside float32's range"
                ));
            }
            Ok(Input::Pixels {
                images,
                data: values,
            })
        }
        "image" => {
            if datatype != "BYTES" {
                return Err(format!("input image: datatype {datatype}, expected BYTES"));
            }
            let images = match shape.as_slice() {
                [n] | [n, 1] if *n > 0 => *n,
                _ => {
                    return Err(format!(
                        "input image: shape {shape:?}, expected [N] (or [N, 1]) with N >= 1"
                    ));
                }
            };
            let files = match raw {
                Some(bytes) => split_bytes_elements(bytes)?,
                None => {
                    let mut files = Vec::new();
                    flatten_base64(data.expect("checked above"), &mut files)?;
                    files
                }
            };
            if files.len() != images {
                return Err(format!(
                    "input image: {} elements, shape {shape:?} needs {images}",
                    files.len()
                ));
            }
            Ok(Input::Images(files))
        }
        other => Err(format!(
            "unknown input {other:?}: this model takes \"pixel_values\" (FP32) or \"image\" (BYTES)"
        )),
    }
}

/// Row-major values from a flat or nested JSON array, as the protocol allows both.
fn flatten_numbers(v: &Value, out: &mut Vec<f32>) -> Result<(), String> {
    match v {
        Value::Number(n) => {
            let x = n
                .as_f64()
                .ok_or("input pixel_values: a value is not a number")?;
            out.push(x as f32);
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|x| flatten_numbers(x, out)),
        other => Err(format!(
            "input pixel_values: \"data\" must hold numbers, found {}",
            kind(other)
        )),
    }
}

/// BYTES elements in JSON: base64 strings (or `{"b64": "..."}` objects), flat or nested.
fn flatten_base64(v: &Value, out: &mut Vec<Vec<u8>>) -> Result<(), String> {
    let text = match v {
        Value::Array(items) => return items.iter().try_for_each(|x| flatten_base64(x, out)),
        Value::String(s) => s.as_str(),
        Value::Object(o) if o.get("b64").is_some_and(Value::is_string) => {
            o["b64"].as_str().expect("checked")
        }
        other => {
            return Err(format!(
                "input image: each element must be a base64 string of an image file, found {}",
                kind(other)
            ));
        }
    };
    let engine = &base64::engine::general_purpose::STANDARD;
    let bytes = engine
        .decode(text.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.trim()))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text.trim()))
        .map_err(|e| format!("input image: element {} is not base64: {e}", out.len()))?;
    out.push(bytes);
    Ok(())
}

/// A binary BYTES tensor: elements of a 4-byte little-endian length and that many bytes.
fn split_bytes_elements(mut b: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(format!(
                "input image: binary element {} is cut inside its 4-byte length",
                out.len()
            ));
        }
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if n > b.len() - 4 {
            return Err(format!(
                "input image: binary element {} declares {n} bytes but {} remain",
                out.len(),
                b.len() - 4
            ));
        }
        out.push(b[4..4 + n].to_vec());
        b = &b[4 + n..];
    }
    Ok(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One output tensor's contents.
pub enum OutputData {
    Fp32(Vec<f32>),
    Bytes(Vec<String>),
}

/// An infer response: the JSON (header, when any output is binary) and the binary part.
pub struct Response {
    pub json: Vec<u8>,
    /// Some when the binary data extension is used: the bytes after the JSON header.
    pub binary: Option<Vec<u8>>,
}

/// Builds the response for `outputs`, each `(spec, shape, data)`.
pub fn response(
    model_name: &str,
    id: Option<&Value>,
    outputs: Vec<(OutputSpec, Vec<usize>, OutputData)>,
) -> Response {
    let mut binary: Vec<u8> = Vec::new();
    let mut any_binary = false;
    let list: Vec<Value> = outputs
        .into_iter()
        .map(|(spec, shape, data)| {
            let datatype = match data {
                OutputData::Fp32(_) => "FP32",
                OutputData::Bytes(_) => "BYTES",
            };
            let mut o = Map::new();
            o.insert("name".into(), json!("logits"));
            o.insert("datatype".into(), json!(datatype));
            o.insert("shape".into(), json!(shape));
            if spec.binary {
                any_binary = true;
                let start = binary.len();
                match data {
                    OutputData::Fp32(v) => {
                        binary.extend(v.iter().flat_map(|x| x.to_le_bytes()));
                    }
                    OutputData::Bytes(v) => {
                        for s in v {
                            binary.extend((s.len() as u32).to_le_bytes());
                            binary.extend(s.as_bytes());
                        }
                    }
                }
                o.insert(
                    "parameters".into(),
                    json!({"binary_data_size": binary.len() - start}),
                );
            } else {
                let data = match data {
                    OutputData::Fp32(v) => json!(v),
                    OutputData::Bytes(v) => json!(v),
                };
                o.insert("data".into(), data);
            }
            Value::Object(o)
        })
        .collect();
    let mut body = json!({"model_name": model_name, "model_version": "1"});
    if let Some(id) = id {
        body["id"] = id.clone();
    }
    body["outputs"] = Value::Array(list);
    Response {
        json: serde_json::to_vec(&body).expect("JSON values serialise"),
        binary: any_binary.then_some(binary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: Signature = Signature {
        height: 2,
        width: 2,
    };

    fn err(body: &str) -> String {
        match parse(body.as_bytes(), None, &SIG) {
            Ok(_) => panic!("{body} parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn pixel_values_flat_or_nested() {
        let flat: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let body = json!({"inputs": [{"name": "pixel_values", "datatype": "FP32",
            "shape": [1, 3, 2, 2], "data": flat}]});
        let Input::Pixels { images, data } = parse(body.to_string().as_bytes(), None, &SIG)
            .unwrap()
            .input
        else {
            panic!("not pixels")
        };
        assert_eq!((images, data), (1, flat.clone()));
        let nested = json!([[[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10, 11]]]]);
        let body = json!({"inputs": [{"name": "pixel_values", "datatype": "FP32",
            "shape": [1, 3, 2, 2], "data": nested}]});
        let Input::Pixels { data, .. } = parse(body.to_string().as_bytes(), None, &SIG)
            .unwrap()
            .input
        else {
            panic!("not pixels")
        };
        assert_eq!(data, flat);
    }

    #[test]
    fn bad_requests_say_why() {
        assert!(err("{").contains("malformed JSON"));
        assert!(
            err(r#"{"inputs":[{"name":"pixel_values","datatype":"INT8","shape":[1,3,2,2],"data":[]}]}"#)
                .contains("expected FP32")
        );
        assert!(
            err(r#"{"inputs":[{"name":"pixel_values","datatype":"FP32","shape":[1,3,4,4],"data":[]}]}"#)
                .contains("expected [N, 3, 2, 2]")
        );
        assert!(
            err(r#"{"inputs":[{"name":"pixel_values","datatype":"FP32","shape":[1,3,2,2],"data":[1,2]}]}"#)
                .contains("2 values")
        );
        assert!(
            err(r#"{"inputs":[{"name":"image","datatype":"BYTES","shape":[2],"data":["AAAA"]}]}"#)
                .contains("1 elements")
        );
        assert!(
            err(r#"{"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":["!!"]}]}"#)
                .contains("not base64")
        );
        assert!(
            err(r#"{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}"#)
                .contains("unknown input")
        );
        assert!(
            err(r#"{"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":["AAAA"]}],"outputs":[{"name":"probs"}]}"#)
                .contains("unknown output")
        );
    }

    #[test]
    fn binary_image_elements_and_outputs() {
        let head = json!({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
            "parameters": {"binary_data_size": 4 + 3 + 4 + 1}}],
            "outputs": [{"name": "logits", "parameters": {"binary_data": true, "classification": 2}}]})
        .to_string();
        let mut body = head.clone().into_bytes();
        body.extend(3u32.to_le_bytes());
        body.extend(b"abc");
        body.extend(1u32.to_le_bytes());
        body.extend(b"z");
        let req = parse(&body, Some(head.len()), &SIG).unwrap();
        let Input::Images(files) = req.input else {
            panic!("not images")
        };
        assert_eq!(files, vec![b"abc".to_vec(), b"z".to_vec()]);
        assert_eq!(req.outputs[0].classification, Some(2));
        assert!(req.outputs[0].binary);
        // A cut element is an error, not a short read.
        let cut = &body[..body.len() - 1];
        assert!(parse(cut, Some(head.len()), &SIG).is_err());

        let r = response(
            "m",
            None,
            vec![(
                req.outputs[0].clone(),
                vec![1, 1],
                OutputData::Bytes(vec!["1.5:3:cat".into()]),
            )],
        );
        let bin = r.binary.unwrap();
        assert_eq!(&bin[..4], &9u32.to_le_bytes());
        assert_eq!(&bin[4..], b"1.5:3:cat");
        let v: Value = serde_json::from_slice(&r.json).unwrap();
        assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 13);
    }
}
