// window.vitHybrid: the classifier on the page's WebGPU device (vit_hybrid_web.wasm, made by
// scripts/build_web.sh). Model files are fetched here, so that progress and network errors
// can be reported; parsing and every check on them happen in Rust, as natively.
//
//   await vitHybrid.load(baseUrl)          // folder with config.json, preprocessor_config.json,
//                                          // model.safetensors (trailing slash optional)
//   await vitHybrid.classify(bytes, topK)  // encoded image bytes (Uint8Array) ->
//                                          // {top: [{index, label, probability}], logits: number[]}
//   await vitHybrid.info()                 // {adapter: {...}, model: {...} | null}
//
// Calls run one at a time, in order (one device, one model).

import init, * as wasm from "./vit_hybrid_web.js";

const FILES = ["config.json", "preprocessor_config.json", "model.safetensors"];

const ready = (async () => {
  if (!navigator.gpu) {
    throw new Error(
      "this browser has no WebGPU (navigator.gpu is missing): use Chrome or Edge 113+, " +
        "Safari 26, or Firefox 141+ on Windows, over https or on localhost",
    );
  }
  await init();
})();

let queue = Promise.resolve();
// Runs `f` after every earlier call has settled.
function serial(f) {
  const run = queue.then(() => ready).then(f);
  queue = run.catch(() => {});
  return run;
}

// An Error from whatever wasm-bindgen or fetch threw, keeping its message.
function asError(e) {
  return e instanceof Error ? e : new Error(String(e));
}

function folderUrl(baseUrl) {
  let base = String(baseUrl ?? "").trim();
  if (!base) throw new Error("no model URL given");
  if (!base.endsWith("/")) base += "/";
  return new URL(base, document.baseURI);
}

// GET `url` as bytes, reporting (loaded, total) as it arrives.
async function fetchBytes(url, onBytes) {
  let response;
  try {
    response = await fetch(url, { mode: "cors" });
  } catch (e) {
    const crossOrigin = new URL(url).origin !== location.origin;
    throw new Error(
      `could not fetch ${url}: ${e.message}. ` +
        (crossOrigin
          ? "The server is unreachable, or refused this page cross-origin access (CORS: it " +
            "must answer with Access-Control-Allow-Origin); see the browser console."
          : "The server is unreachable."),
    );
  }
  if (!response.ok) {
    throw new Error(`could not fetch ${url}: HTTP ${response.status} ${response.statusText}`.trim());
  }
  const total = Number(response.headers.get("Content-Length")) || 0;
  const encoded = response.headers.get("Content-Encoding");
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    onBytes(bytes.length, bytes.length);
    return bytes;
  }
  const reader = response.body.getReader();
  // One buffer of the announced size where it is exact (no compression), else chunks.
  let whole = total && !encoded ? new Uint8Array(total) : null;
  const chunks = [];
  let loaded = 0;
  for (;;) {
    let step;
    try {
      step = await reader.read();
    } catch (e) {
      throw new Error(`downloading ${url} failed after ${loaded} bytes: ${e.message}`);
    }
    if (step.done) break;
    const chunk = step.value;
    if (whole && loaded + chunk.length <= whole.length) {
      whole.set(chunk, loaded);
    } else {
      if (whole) {
        chunks.push(whole.subarray(0, loaded));
        whole = null;
      }
      chunks.push(chunk);
    }
    loaded += chunk.length;
    onBytes(loaded, total);
  }
  if (whole) return loaded === whole.length ? whole : whole.subarray(0, loaded);
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return bytes;
}

function emitProgress(detail, onProgress) {
  if (onProgress) onProgress(detail);
  window.dispatchEvent(new CustomEvent("vithybrid-progress", { detail }));
}

async function loadContents(config, preprocessor, weights, options) {
  try {
    const f16 = options?.precision === "f16";
    return await withAdapterNames(await wasm.loadModel(config, preprocessor, weights, f16));
  } catch (e) {
    throw asError(e);
  }
}

// wgpu leaves the adapter's name empty on WebGPU: ask the browser what it is.
async function withAdapterNames(info) {
  const a = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  const b = a?.info;
  if (b) {
    const fallback = Boolean(b.isFallbackAdapter ?? a.isFallbackAdapter);
    const name = [b.vendor, b.architecture, b.device, b.description].filter(Boolean).join(" ");
    Object.assign(info.adapter, {
      name: name || "WebGPU adapter",
      vendor: b.vendor,
      architecture: b.architecture,
      isFallbackAdapter: fallback,
      description: `${name || "WebGPU adapter"} (WebGPU${fallback ? ", software fallback" : ""})`,
    });
  }
  return info;
}

function decodeText(bytes, name) {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${name} is not UTF-8 text`);
  }
}

const vitHybrid = {
  // Loads config.json, preprocessor_config.json and model.safetensors from `baseUrl`.
  // options: {precision: "f32" | "f16", onProgress({file, loaded, total})}. Resolves to info().
  load(baseUrl, options = {}) {
    return serial(async () => {
      const base = folderUrl(baseUrl);
      const texts = [];
      let weights;
      for (const name of FILES) {
        const url = new URL(name, base).href;
        const bytes = await fetchBytes(url, (loaded, total) =>
          emitProgress({ file: name, url, loaded, total }, options.onProgress),
        );
        if (name === "model.safetensors") weights = bytes;
        else texts.push(decodeText(bytes, url));
      }
      emitProgress({ file: "GPU upload", loaded: 0, total: 0 }, options.onProgress);
      return loadContents(texts[0], texts[1], weights, options);
    });
  },

  // The same from File objects (a file picker or a drop): the three files by name.
  loadFiles(files, options = {}) {
    return serial(async () => {
      const byName = new Map(Array.from(files, (f) => [f.name, f]));
      const missing = FILES.filter((n) => !byName.has(n));
      if (missing.length) {
        throw new Error(`the chosen files lack ${missing.join(", ")} (pick all three model files)`);
      }
      const read = async (n) => new Uint8Array(await byName.get(n).arrayBuffer());
      const config = decodeText(await read(FILES[0]), FILES[0]);
      const preprocessor = decodeText(await read(FILES[1]), FILES[1]);
      return loadContents(config, preprocessor, await read(FILES[2]), options);
    });
  },

  // Classifies one encoded image (PNG, JPEG, WebP, GIF, BMP, TIFF...).
  classify(bytes, topK = 5) {
    return serial(async () => {
      if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
      else if (ArrayBuffer.isView(bytes) && !(bytes instanceof Uint8Array)) {
        bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      } else if (Array.isArray(bytes)) bytes = Uint8Array.from(bytes);
      if (!(bytes instanceof Uint8Array)) {
        throw new Error("classify takes the image file's bytes as a Uint8Array");
      }
      const k = Number.isInteger(topK) && topK >= 0 ? topK : 5;
      try {
        return await wasm.classify(bytes, k);
      } catch (e) {
        throw asError(e);
      }
    });
  },

  // GPU time per shader of one forward pass of the last classified image.
  profile() {
    return serial(async () => {
      try {
        return await wasm.profile();
      } catch (e) {
        throw asError(e);
      }
    });
  },

  // The adapter and, once loaded, the model.
  info() {
    return serial(async () => {
      try {
        return await withAdapterNames(await wasm.info());
      } catch (e) {
        throw asError(e);
      }
    });
  },
};

window.vitHybrid = vitHybrid;
export default vitHybrid;
