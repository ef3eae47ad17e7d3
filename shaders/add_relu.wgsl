// add_relu: acc = max(acc + other, 0), in place: the bottleneck's output ReLU(main + shortcut).
//
// Layout: acc and other are flat [n] (any shape, same layout).
// One element per invocation, 256 per workgroup; workgroups spread by grid_1d because stage-1
// tensors of a batch pass 65535 * 256 elements.
// Keep `Params` in sync with `AddReluParams` in src/ops/add_relu.rs.

struct Params {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>; // [n], updated in place
@group(0) @binding(2) var<storage, read> other: array<f32>;     // [n]

const WG: u32 = 256u;

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i < p.n) {
        acc[i] = max(acc[i] + other[i], 0.0);
    }
}
