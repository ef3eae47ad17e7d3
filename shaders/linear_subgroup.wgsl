// shaders/linear.wgsl compiled with SUBGROUP = 1: its texture products (CPU adapters) load x
// one row per lane and share the rows with subgroupBroadcast, which needs a device with
// subgroups of at least 8 invocations (src/ops/linear.rs). Everything else is linear.wgsl's.
// #let SUBGROUP = 1
// #include linear.wgsl
