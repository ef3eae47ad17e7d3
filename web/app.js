// The page: model URL field (?model=URL sets it), model files, image pick/drop, top-5 bars,
// latency and GPU time per shader, every failure shown in #error. All work goes through
// window.vitHybrid (vit-hybrid.js), the same API that scripts and tests use.

import vitHybrid from "./vit-hybrid.js";

const DEFAULT_MODEL = "https://huggingface.co/google/vit-hybrid-base-bit-384/resolve/main/";
const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
$("model-url").value = params.get("model") || DEFAULT_MODEL;

let loaded = null; // the load() in flight or done, so an image waits for it
let pendingImage = null;

function showError(e) {
  const box = $("error");
  if (!e) {
    box.style.display = "none";
    box.textContent = "";
    return;
  }
  box.textContent = String(e.message || e);
  box.style.display = "block";
}

function mib(bytes) {
  return (bytes / (1 << 20)).toFixed(1) + " MiB";
}

function progress({ file, loaded: done, total }) {
  const bar = $("progress");
  bar.style.display = "block";
  if (total) {
    bar.max = total;
    bar.value = done;
    $("status").textContent = `Downloading ${file}: ${mib(done)} of ${mib(total)}`;
  } else {
    bar.removeAttribute("value");
    $("status").textContent = done ? `Downloading ${file}: ${mib(done)}` : `${file}…`;
  }
}

function describe(info) {
  const a = info.adapter;
  const m = info.model;
  const feats = a.features.length ? a.features.join(", ") : "no optional features";
  const adapter = `${a.description} · ${feats}`;
  if (!m) return adapter;
  return (
    `Model: ${m.labels} classes, ${m.imageSize[0]}×${m.imageSize[1]} input, ` +
    `${(m.parameters / 1e6).toFixed(2)}M parameters (${m.precision}, ${mib(m.weightBytes)} on the GPU). ` +
    `Adapter: ${adapter}`
  );
}

async function load(run) {
  showError(null);
  $("status").textContent = "Loading…";
  loaded = run().finally(() => {
    $("progress").style.display = "none";
  });
  try {
    const info = await loaded;
    $("status").textContent = describe(info);
    if (pendingImage) classify(...pendingImage);
  } catch (e) {
    $("status").textContent = "No model loaded.";
    loaded = null;
    showError(e);
  }
}

function loadUrl() {
  const url = $("model-url").value;
  const precision = $("f16").checked ? "f16" : "f32";
  load(() => vitHybrid.load(url, { precision, onProgress: progress }));
}

function bars(el, rows) {
  el.classList.remove("muted");
  el.replaceChildren(
    ...rows.map(({ name, share, value }) => {
      const row = document.createElement("div");
      row.className = "bar";
      const track = document.createElement("div");
      track.className = "track";
      const fill = document.createElement("div");
      fill.className = "fill";
      fill.style.width = `${Math.max(0, Math.min(1, share)) * 100}%`;
      const label = document.createElement("div");
      label.className = "name";
      label.textContent = name;
      label.title = name;
      track.append(fill, label);
      const num = document.createElement("div");
      num.className = "num";
      num.textContent = value;
      row.append(track, num);
      return row;
    }),
  );
}

async function classify(bytes, name) {
  showError(null);
  $("image-name").textContent = name;
  const url = URL.createObjectURL(new Blob([bytes]));
  const img = document.createElement("img");
  img.src = url;
  img.alt = name;
  $("drop").replaceChildren(img);
  if (!loaded) {
    // Without a model yet: load the one in the URL field, then classify.
    pendingImage = [bytes, name];
    loadUrl();
    return;
  }
  pendingImage = null;
  try {
    await loaded;
  } catch {
    return; // the load's error is already shown
  }
  try {
    $("bars").textContent = "Classifying…";
    const r = await vitHybrid.classify(bytes, 5);
    bars(
      $("bars"),
      r.top.map((p) => ({
        name: `${p.label} (${p.index})`,
        share: p.probability,
        value: `${(100 * p.probability).toFixed(1)} %`,
      })),
    );
    const t = r.timing;
    $("latency").textContent =
      `${r.width}×${r.height} image · decode + preprocess ${t.decodeMs.toFixed(1)} ms · ` +
      `forward ${t.forwardMs.toFixed(1)} ms (upload, every shader, readback) · ` +
      `total ${(t.decodeMs + t.forwardMs).toFixed(1)} ms`;
    const info = await vitHybrid.info();
    if (!info.adapter.features.includes("timestamp-query")) {
      $("shaders").textContent = "This adapter has no timestamp queries.";
      return;
    }
    $("shaders").textContent = "Timing every dispatch…";
    const p = await vitHybrid.profile();
    const top = p.shaders.slice(0, 12);
    const max = Math.max(...top.map((s) => s.ms), 1e-9);
    bars(
      $("shaders"),
      top.map((s) => ({
        name: `${s.name} ×${s.dispatches}`,
        share: s.ms / max,
        value: `${s.ms.toFixed(1)} ms`,
      })),
    );
    $("shaders").classList.add("shader");
    const note = document.createElement("div");
    note.className = "muted";
    note.textContent = `${p.totalMs.toFixed(1)} ms of GPU time in all (${p.method})`;
    $("shaders").append(note);
  } catch (e) {
    $("bars").textContent = "";
    showError(e);
  }
}

async function openImage(file) {
  if (!file) return;
  classify(new Uint8Array(await file.arrayBuffer()), file.name);
}

$("load").addEventListener("click", loadUrl);
$("model-url").addEventListener("keydown", (e) => {
  if (e.key === "Enter") loadUrl();
});
$("model-files").addEventListener("change", (e) => {
  const files = e.target.files;
  const precision = $("f16").checked ? "f16" : "f32";
  load(() => vitHybrid.loadFiles(files, { precision }));
});
$("image-file").addEventListener("change", (e) => openImage(e.target.files[0]));

const drop = $("drop");
for (const ev of ["dragenter", "dragover"]) {
  document.addEventListener(ev, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
}
for (const ev of ["dragleave", "drop"]) {
  document.addEventListener(ev, () => drop.classList.remove("over"));
}
document.addEventListener("drop", (e) => {
  e.preventDefault();
  const files = Array.from(e.dataTransfer.files);
  if (files.some((f) => f.name.endsWith(".safetensors") || f.name.endsWith(".json"))) {
    const precision = $("f16").checked ? "f16" : "f32";
    load(() => vitHybrid.loadFiles(files, { precision }));
  } else {
    openImage(files[0]);
  }
});

if (params.has("model")) loadUrl();
