// tokens: the encoder's input from the patch projection (whose conv already added its bias):
//   out[b, 0, d]     = cls[d] + pos[0, d]
//   out[b, 1 + p, d] = proj[b, d, p] + pos[1 + p, d]
//
// Layout: proj is the conv's channel-first output [B, dim, patches] (p runs over the patch
// grid row-major), out is token-major [B, patches + 1, dim], pos is [patches + 1, dim].
// This is a transpose, so a 16 (channels) x 16 (tokens) tile goes through workgroup memory:
// reads run along p and writes along d, both contiguous. One 16x16 workgroup per tile, tiles of
// all images spread by grid_1d.
// Keep `Params` in sync with `TokensParams` in src/ops/tokens.rs.

struct Params {
    batch: u32,
    dim: u32,
    patches: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> proj: array<f32>;      // [B, dim, patches]
@group(0) @binding(2) var<storage, read> cls: array<f32>;       // [dim]
@group(0) @binding(3) var<storage, read> pos: array<f32>;       // [patches + 1, dim]
@group(0) @binding(4) var<storage, read_write> out: array<f32>; // [B, patches + 1, dim]

const TILE: u32 = 16u;

// [channel][token]; the 17th column keeps the transposed reads off a single memory bank.
var<workgroup> tile: array<array<f32, 17>, 16>;

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tokens = p.patches + 1u;
    let tiles_d = (p.dim + TILE - 1u) / TILE;
    let tiles_per_image = tiles_d * ((tokens + TILE - 1u) / TILE);
    // Workgroup-uniform, so returning here keeps the barrier below in uniform control flow.
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= tiles_per_image * p.batch) {
        return;
    }
    let b = wg / tiles_per_image;
    let t0 = (wg % tiles_per_image) / tiles_d * TILE;
    let d0 = (wg % tiles_per_image) % tiles_d * TILE;

    // Read with lid.x along tokens (contiguous in proj).
    let t = t0 + lid.x;
    let d = d0 + lid.y;
    var v = 0.0;
    if (t < tokens && d < p.dim) {
        if (t == 0u) {
            v = cls[d];
        } else {
            v = proj[(b * p.dim + d) * p.patches + (t - 1u)];
        }
    }
    tile[lid.y][lid.x] = v;
    workgroupBarrier();

    // Write with lid.x along channels (contiguous in out and pos).
    let tw = t0 + lid.y;
    let dw = d0 + lid.x;
    if (tw < tokens && dw < p.dim) {
        out[(b * tokens + tw) * p.dim + dw] = tile[lid.x][lid.y] + pos[tw * p.dim + dw];
    }
}
