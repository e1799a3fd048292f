#!/bin/sh
# Lays out under OUT what Myelin's image adds to gcr.io/distroless/cc-debian12:
#
#   OUT/usr/local/bin/myelin                the release binary
#   OUT/usr/lib/<multiarch>/<soname>        every shared library the binary loads that distroless/cc
#                                           lacks: Debian's RocksDB and what it links (gflags, snappy,
#                                           zlib, bzip2, lz4, zstd), found with ldd, not listed by hand
#   OUT/axonserver/{data,log,config}        the volume mount points (the image gives them to 65532)
#
# Used by docker/Dockerfile's builder stage and by docker/smoke.sh, so the image the smoke test
# builds offline holds exactly the files the real one does. POSIX sh: the builder runs it with sh.
#
# usage: stage-runtime.sh BINARY OUT
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 BINARY OUT" >&2
    exit 2
fi
bin=$1
out=$2

# What distroless/cc-debian12 already ships (packages libc6, libgcc-s1, libstdc++6, libgomp1,
# libssl3) and the loader's own entries. Everything else the binary loads must be copied.
in_distroless_cc() {
    case $1 in
        linux-vdso.so.* | ld-linux* | /lib64/ld-linux* | libc.so.* | libm.so.* | libpthread.so.* | \
            libdl.so.* | librt.so.* | libutil.so.* | libresolv.so.* | libgcc_s.so.* | \
            libstdc++.so.* | libgomp.so.* | libssl.so.* | libcrypto.so.*)
            return 0
            ;;
    esac
    return 1
}

install -D -m 0755 "$bin" "$out/usr/local/bin/myelin"

# ldd lines: "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)", "linux-vdso.so.1 (0x...)",
# "/lib64/ld-linux-x86-64.so.2 (0x...)" or "libfoo.so.1 => not found".
ldd "$bin" | while read -r soname arrow path _rest; do
    if in_distroless_cc "$soname"; then
        continue
    fi
    if [ "$arrow" != "=>" ] || [ ! -f "$path" ]; then
        echo "stage-runtime.sh: $bin needs $soname, which cannot be found here: $soname $arrow $path" >&2
        exit 1
    fi
    multiarch=$(basename "$(dirname "$path")")
    mkdir -p "$out/usr/lib/$multiarch"
    # -L: the file itself under its soname, not the symlink chain.
    cp -L "$path" "$out/usr/lib/$multiarch/$soname"
    echo "staged $out/usr/lib/$multiarch/$soname (from $path)"
done

mkdir -p "$out/axonserver/data" "$out/axonserver/log" "$out/axonserver/config"
