//! The JSON object of one classified input, as `classify --json` and `--output` write it and
//! `serve`'s `POST /classify` answers it.

use serde_json::{Value, json};
use vit_hybrid::Classification;

/// `{"input", "top": [{"index", "label", "probability"}], "logits"?}`.
pub fn classification(input: &str, c: &Classification, logits: bool) -> Value {
    let top: Vec<_> = c
        .top
        .iter()
        .map(|p| json!({"index": p.index, "label": p.label, "probability": p.probability}))
        .collect();
    let mut obj = json!({"input": input, "top": top});
    if logits {
        obj["logits"] = json!(c.logits);
    }
    obj
}

/// `{"input", "error"}`: an input that has no answer.
pub fn error(input: &str, e: &str) -> Value {
    json!({"input": input, "error": e})
}
