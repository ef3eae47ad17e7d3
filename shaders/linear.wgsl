// linear: y[m, n] = act(sum_k x[m * x_row_stride + k] * w[n, k] + bias[n]) + residual[m, n]
//
// Layout: x rows are `x_row_stride` apart (so the head can read only the CLS token of each
// image), w is PyTorch's [N, K], y and residual are dense [M, N].
// Tiling: a 64x64 output tile per workgroup of 16x16 invocations, each owning a 4x4 block
// spread 16 apart so neighbouring invocations touch neighbouring addresses; K in steps of 16
// through workgroup memory.
// Keep `Params` in sync with `LinearParams` in src/ops/linear.rs.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    x_row_stride: u32,
    // bit 0: add bias, bit 1: exact GELU, bit 2: add residual (after the activation)
    flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [M, x_row_stride]
@group(0) @binding(2) var<storage, read> w: array<f32>;        // [N, K]
@group(0) @binding(3) var<storage, read> bias: array<f32>;     // [N] (unused without flag)
@group(0) @binding(4) var<storage, read> residual: array<f32>; // [M, N] (unused without flag)
@group(0) @binding(5) var<storage, read_write> y: array<f32>;  // [M, N]

const TILE: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> xs: array<array<f32, 64>, 16>; // [TK][TILE]: x tile, transposed
var<workgroup> ws: array<array<f32, 64>, 16>; // [TK][TILE]: w tile, transposed

// erf to ~1.2e-7 relative (Numerical Recipes' erfc Chebyshev fit), since WGSL has no erf.
fn erf_approx(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
        t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
        t * (-0.82215223 + t * 0.17087277)))))))));
    return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn gelu(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752));
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let t = lid.y * 16u + lid.x;
    var acc: array<array<f32, 4>, 4>;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            acc[i][j] = 0.0;
        }
    }
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // 64x16 elements of each operand, 4 per invocation, consecutive invocations along K.
        for (var l = 0u; l < 4u; l++) {
            let idx = t + l * 256u;
            let r = idx / TK;
            let kk = idx % TK;
            let gk = k0 + kk;
            let gm = row0 + r;
            let gn = col0 + r;
            var xv = 0.0;
            if (gm < p.m && gk < p.k) {
                xv = x[gm * p.x_row_stride + gk];
            }
            var wv = 0.0;
            if (gn < p.n && gk < p.k) {
                wv = w[gn * p.k + gk];
            }
            xs[kk][r] = xv;
            ws[kk][r] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = xs[kk][lid.y + 16u * i];
                b[i] = ws[kk][lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(a[i], b[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let gm = row0 + lid.y + 16u * i;
        if (gm >= p.m) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let gn = col0 + lid.x + 16u * j;
            if (gn >= p.n) {
                continue;
            }
            var v = acc[i][j];
            if ((p.flags & 1u) != 0u) {
                v += bias[gn];
            }
            if ((p.flags & 2u) != 0u) {
                v = gelu(v);
            }
            if ((p.flags & 4u) != 0u) {
                v += residual[gm * p.n + gn];
            }
            y[gm * p.n + gn] = v;
        }
    }
}
