#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60), one job at a time, seeded with the
# committed fixtures, and prints each target's executions. Needs a nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`). Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
root=..
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(config preprocessor_config safetensors npy image
        image_png image_jpeg image_gif image_bmp image_tiff image_webp image_pnm image_qoi image_tga)
fi

# Seeds: copies of the fixtures, in a corpus folder per target that libFuzzer then grows.
seed() { # target files...
    local dir=corpus/$1
    shift
    mkdir -p "$dir"
    for f in "$@"; do
        cp -n "$f" "$dir/seed-$(echo "$f" | tr '/' '_')"
    done
}
images=("$root"/tests/fixtures/preprocess/*.png "$root"/tests/fixtures/preprocess/*.jpg
    "$root"/tests/fixtures/decode/*.{gif,tif,ppm,pgm}
    "$root"/tests/fixtures/fuzz/images/* "$root"/examples/images/*.png)
seed config "$root"/tests/fixtures/{tiny,odd,patch2}/config.json \
    "$root"/tests/data/vit-hybrid-base-bit-384.config.json
seed preprocessor_config "$root"/tests/fixtures/*/preprocessor_config*.json \
    "$root"/tests/data/vit-hybrid-base-bit-384.preprocessor_config.json
seed safetensors "$root"/tests/fixtures/tiny/model.safetensors
seed npy "$root"/tests/fixtures/fuzz/npy/*.npy
for t in image image_png image_jpeg image_gif image_bmp image_tiff image_webp image_pnm image_qoi image_tga; do
    seed "$t" "${images[@]}"
done

# One allocation may be up to 1 GiB (preprocess::MAX_DECODE_BYTES, MAX_OUTPUT_ELEMENTS f32);
# the RGB copy and the tensor come on top of a decode. With -jobs=1 libFuzzer keeps its full
# log in fuzz-0.log; the lines below are its summary.
for t in "${targets[@]}"; do
    dict=()
    case $t in config | preprocessor_config) dict=(-dict=dicts/json.dict) ;; esac
    echo "== $t"
    nice -n 10 cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" \
        -rss_limit_mb=4096 -malloc_limit_mb=1100 -timeout=10 -jobs=1 -workers=1 \
        -print_final_stats=1 "${dict[@]}" 2>&1 |
        grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|.*(panicked|ERROR|SUMMARY|crash-|timeout-|oom-))" || true
done
