//! The HTTP routes: the protocol's health, metadata and infer endpoints, `POST /classify`,
//! `/metrics`, and the layer that refuses oversized bodies, counts and logs every request.

// Helpers return the error answer itself (`Err(Response)`) so handlers can `?` it: it is
// built once per failed request, so its size on the stack does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use vit_hybrid::{Classification, Model};

use super::App;
use super::batcher::{ImageResult, Job, Refused};
use super::oip::{self, Input, OutputData};

type Shared = State<Arc<App>>;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_v),
        )
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_v),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_v))
        .route("/classify", post(classify))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, json_body(&json!({"error": message.into()}))).into_response()
}

fn json_body(v: &Value) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string())
}

fn too_large(max: usize) -> Response {
    let mut r = error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is larger than the server's limit of {max} bytes (--max-body-bytes)"
        ),
    );
    // The body is left unread, so the connection cannot carry another request.
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Refuses a declared oversized body before reading it, then counts and logs the request.
async fn observe(State(app): Shared, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let response = match declared {
        Some(n) if n > app.max_body as u64 => too_large(app.max_body),
        _ => next.run(req).await,
    };
    let seconds = start.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    app.metrics.request(&endpoint, status, seconds);
    eprintln!("{method} {path} {status} {:.1} ms", seconds * 1e3);
    response
}

/// The whole body, refused with 413 once it passes the limit (a chunked body has no declared
/// length, so this is where it is caught).
async fn read_body(body: Body, max: usize) -> Result<Bytes, Response> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(max)),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("reading the request body: {e}"),
        )),
    }
}

async fn live() -> Response {
    (StatusCode::OK, json_body(&json!({"live": true}))).into_response()
}

async fn ready(State(app): Shared) -> Response {
    let ready = app.ready.load(Ordering::SeqCst);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, json_body(&json!({"ready": ready}))).into_response()
}

async fn server_metadata() -> Response {
    let v = json!({
        "name": "vit-hybrid",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["classification", "binary_tensor_data"],
    });
    (StatusCode::OK, json_body(&v)).into_response()
}

/// The served model if `name` (and `version`, when given) name it and it is ready.
fn served_model(app: &App, name: &str, version: Option<&str>) -> Result<Arc<Model>, Response> {
    if name != app.name {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("unknown model {name:?}; this server serves {:?}", app.name),
        ));
    }
    if let Some(v) = version
        && v != "1"
    {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("model {name:?} has no version {v:?}; it has version \"1\""),
        ));
    }
    match app.model.get() {
        Some(m) if app.ready.load(Ordering::SeqCst) => Ok(m.clone()),
        _ => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("model {name:?} is not ready (loading, or the server is stopping)"),
        )),
    }
}

async fn model_metadata(State(app): Shared, Path(name): Path<String>) -> Response {
    metadata(&app, &name, None)
}

async fn model_metadata_v(
    State(app): Shared,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    metadata(&app, &name, Some(&version))
}

fn metadata(app: &App, name: &str, version: Option<&str>) -> Response {
    let model = match served_model(app, name, version) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (h, w) = model.config.image_size;
    let v = json!({
        "name": app.name,
        "versions": ["1"],
        "platform": "vit-hybrid_wgpu",
        "inputs": [
            {"name": "pixel_values", "datatype": "FP32", "shape": [-1, 3, h, w]},
            {"name": "image", "datatype": "BYTES", "shape": [-1]},
        ],
        "outputs": [
            {"name": "logits", "datatype": "FP32", "shape": [-1, model.config.num_labels()]},
        ],
    });
    (StatusCode::OK, json_body(&v)).into_response()
}

async fn model_ready(State(app): Shared, Path(name): Path<String>) -> Response {
    readiness(&app, &name, None)
}

async fn model_ready_v(
    State(app): Shared,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    readiness(&app, &name, Some(&version))
}

fn readiness(app: &App, name: &str, version: Option<&str>) -> Response {
    match served_model(app, name, version) {
        Ok(_) => (
            StatusCode::OK,
            json_body(&json!({"name": name, "ready": true})),
        )
            .into_response(),
        Err(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => (
            StatusCode::SERVICE_UNAVAILABLE,
            json_body(&json!({"name": name, "ready": false})),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn metrics(State(app): Shared) -> Response {
    let text = app.metrics.render(
        &app.queue.state(),
        app.in_flight.load(Ordering::SeqCst),
        app.ready.load(Ordering::SeqCst),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found(req: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no endpoint {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Decodes and preprocesses image files on the blocking pool; the error names the image.
async fn preprocess(
    model: Arc<Model>,
    files: Vec<Vec<u8>>,
    what: &'static str,
) -> Result<Vec<f32>, Response> {
    let task = tokio::task::spawn_blocking(move || {
        let mut pixels = Vec::with_capacity(files.len() * model.image_len());
        for (i, file) in files.iter().enumerate() {
            // A decoder bug must cost this request, not the server.
            let one = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                vit_hybrid::preprocess::decode_image(file)
                    .and_then(|img| vit_hybrid::input::from_image(&img, &model))
            }));
            let name = if files.len() == 1 {
                what.to_string()
            } else {
                format!("{what} {i}")
            };
            match one {
                Ok(Ok(p)) => pixels.extend(p),
                Ok(Err(e)) => return Err(format!("{name}: {e:#}")),
                Err(_) => return Err(format!("{name}: the image decoder crashed on it")),
            }
        }
        Ok(pixels)
    });
    match task.await {
        Ok(Ok(pixels)) => Ok(pixels),
        Ok(Err(e)) => Err(error(StatusCode::BAD_REQUEST, e)),
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("preprocessing failed: {e}"),
        )),
    }
}

/// Queues `images` preprocessed images and waits for their logits.
async fn run_model(
    app: &App,
    pixels: Vec<f32>,
    images: usize,
) -> Result<Vec<ImageResult>, Response> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job {
        pixels,
        images,
        reply: tx,
        enqueued: Instant::now(),
    };
    match app.queue.push(job) {
        Ok(()) => {}
        Err(Refused::Full) => {
            app.metrics.queue_full();
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the queue is full (--max-queue requests are waiting for the GPU); retry shortly",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(r);
        }
        Err(Refused::Closed) => {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is stopping",
            ));
        }
    }
    match rx.await {
        Ok(Ok(results)) => Ok(results),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the GPU worker stopped before answering",
        )),
    }
}

/// Every image's logits, or a 400 naming the first image that has none.
fn all_logits(results: Vec<ImageResult>, what: &str) -> Result<Vec<Vec<f32>>, Response> {
    let n = results.len();
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.map_err(|e| {
                let name = if n == 1 {
                    what.to_string()
                } else {
                    format!("{what} {i}")
                };
                error(StatusCode::BAD_REQUEST, format!("{name}: {e}"))
            })
        })
        .collect()
}

async fn infer(
    State(app): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer_with(&app, &name, None, &headers, body)
        .await
        .unwrap_or_else(|r| r)
}

async fn infer_v(
    State(app): Shared,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer_with(&app, &name, Some(&version), &headers, body)
        .await
        .unwrap_or_else(|r| r)
}

/// Counts an inference request in flight while it lives.
struct InFlight<'a>(&'a App);

impl<'a> InFlight<'a> {
    fn new(app: &'a App) -> Self {
        app.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(app)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn infer_with(
    app: &App,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let _in_flight = InFlight::new(app);
    let model = served_model(app, name, version)?;
    let header_len = match headers.get(oip::HEADER_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    error(
                        StatusCode::BAD_REQUEST,
                        "Inference-Header-Content-Length must be a byte count",
                    )
                })?,
        ),
    };
    let body = read_body(body, app.max_body).await?;
    let (h, w) = model.config.image_size;
    let request = oip::parse(
        &body,
        header_len,
        &oip::Signature {
            height: h,
            width: w,
        },
    )
    .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    drop(body);
    let (images, pixels, what) = match request.input {
        Input::Pixels { images, data } => (images, data, "pixel_values image"),
        Input::Images(files) => {
            let n = files.len();
            (n, preprocess(model.clone(), files, "image").await?, "image")
        }
    };
    let logits = all_logits(run_model(app, pixels, images).await?, what)?;
    let labels = model.config.num_labels();
    let outputs = request
        .outputs
        .into_iter()
        .map(|spec| match spec.classification {
            Some(k) => {
                let k = k.min(labels);
                let strings = logits
                    .iter()
                    .flat_map(|l| {
                        model
                            .top_k(l, k)
                            .into_iter()
                            .map(|p| format!("{}:{}:{}", l[p.index], p.index, p.label))
                    })
                    .collect();
                (spec, vec![images, k], OutputData::Bytes(strings))
            }
            None => {
                let flat = logits.iter().flatten().copied().collect();
                (spec, vec![images, labels], OutputData::Fp32(flat))
            }
        })
        .collect();
    let r = oip::response(&app.name, request.id.as_ref(), outputs);
    Ok(match r.binary {
        None => ([(header::CONTENT_TYPE, "application/json")], r.json).into_response(),
        Some(binary) => {
            let json_len = r.json.len();
            let mut all = r.json;
            all.extend(binary);
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (
                        header::HeaderName::from_static(oip::HEADER_LENGTH),
                        json_len.to_string(),
                    ),
                ],
                all,
            )
                .into_response()
        }
    })
}

#[derive(serde::Deserialize)]
struct ClassifyQuery {
    top_k: Option<usize>,
    logits: Option<bool>,
    /// The `"input"` the answer names (default "-": the request body).
    input: Option<String>,
}

/// `POST /classify`: an image file as the body; the answer is the object `classify --json`
/// prints for it.
async fn classify(
    State(app): Shared,
    query: Result<Query<ClassifyQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Response {
    let _in_flight = InFlight::new(&app);
    let run = async {
        let Query(q) =
            query.map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad query: {e}")))?;
        let model = served_model(&app, &app.name, None)?;
        let body = read_body(body, app.max_body).await?;
        if body.is_empty() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "the request body is empty; send an image file (curl --data-binary @photo.jpg)",
            ));
        }
        let pixels = preprocess(model.clone(), vec![body.to_vec()], "the image").await?;
        let logits = all_logits(run_model(&app, pixels, 1).await?, "the image")?
            .pop()
            .expect("one image in, one out");
        let c = Classification {
            top: model.top_k(&logits, q.top_k.unwrap_or(5)),
            logits,
        };
        let input = q.input.as_deref().unwrap_or("-");
        let v = crate::result_json::classification(input, &c, q.logits.unwrap_or(false));
        Ok((StatusCode::OK, json_body(&v)).into_response())
    };
    run.await.unwrap_or_else(|r| r)
}
