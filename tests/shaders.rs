//! Every shader in shaders/ parses and validates with naga, and every file there is known to
//! the crate (so none is left out of this check or of the pipeline cache).

use vit_hybrid::ops::ALL_KERNELS;

/// What a kernel may use beyond core WGSL; every other kernel must validate without anything.
fn capabilities(kernel: &str) -> naga::valid::Capabilities {
    use naga::valid::Capabilities;
    match kernel {
        // unpack2x16float: wgpu's SHADER_F16_IN_F32 downlevel flag (all but llvmpipe without f16).
        "linear_f16" => Capabilities::SHADER_FLOAT16_IN_FLOAT32,
        // `enable f16;`: devices with SHADER_F16.
        "linear_f16_native" => Capabilities::SHADER_FLOAT16,
        // subgroupBroadcast: devices with SUBGROUP (subgroups of 8 or more, for the products).
        "linear_subgroup" => Capabilities::SUBGROUP,
        // subgroupBroadcast, subgroupShuffle, subgroupMax and subgroupAdd: the same devices.
        "attention_fused" => Capabilities::SUBGROUP,
        _ => Capabilities::empty(),
    }
}

#[test]
fn every_shader_parses_and_validates() {
    for k in ALL_KERNELS {
        let module = naga::front::wgsl::parse_str(k.source).unwrap_or_else(|e| {
            panic!(
                "shaders/{}.wgsl does not parse:\n{}",
                k.name,
                e.emit_to_string(k.source)
            )
        });
        let mut validator =
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities(k.name));
        validator.validate(&module).unwrap_or_else(|e| {
            panic!(
                "shaders/{}.wgsl does not validate:\n{}",
                k.name,
                e.emit_to_string(k.source)
            )
        });
        assert!(
            module
                .entry_points
                .iter()
                .any(|e| e.stage == naga::ShaderStage::Compute),
            "shaders/{}.wgsl has no compute entry point",
            k.name
        );
    }
}

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "wgsl")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    files.sort();
    let mut known: Vec<String> = ALL_KERNELS.iter().map(|k| k.name.to_string()).collect();
    known.sort();
    assert_eq!(
        files, known,
        "shaders/ and ops::ALL_KERNELS list different shaders"
    );
}
