//! Expands the `#for` blocks (and `#include`s) of every `shaders/*.wgsl` (see src/shader_template.rs) into
//! `$OUT_DIR/shaders/`, which the crate embeds; a template error fails the build naming the
//! file and line.

#[path = "src/shader_template.rs"]
mod shader_template;

use std::path::Path;

fn main() {
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("shaders");
    std::fs::create_dir_all(&out).expect("creating $OUT_DIR/shaders");
    println!("cargo:rerun-if-changed=shaders");
    println!("cargo:rerun-if-changed=src/shader_template.rs");
    let mut entries: Vec<_> = std::fs::read_dir("shaders")
        .expect("reading shaders/")
        .map(|e| e.expect("reading shaders/").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    entries.sort();
    for path in entries {
        println!("cargo:rerun-if-changed={}", path.display());
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let read = |name: &str| {
            std::fs::read_to_string(Path::new("shaders").join(name))
                .map_err(|e| format!("reading shaders/{name}: {e}"))
        };
        let expanded = shader_template::expand_with(&source, &read)
            .unwrap_or_else(|e| panic!("expanding {}: {e}", path.display()));
        let dest = out.join(path.file_name().expect("a file"));
        // Rewrite only on change so that an unchanged shader does not rebuild the crate.
        if std::fs::read_to_string(&dest).ok().as_deref() != Some(expanded.as_str()) {
            std::fs::write(&dest, expanded)
                .unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
        }
    }
}
