#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# user_build.sh BUILD_DIR SRC_DIR - builds programs the way a user builds
# them and runs them: Copper installed (meson install --destdir) into a
# temporary root, found only through pkg-config, the programs compiled at
# -O2 with nothing but what `pkg-config --cflags --libs copper` gives.
#
#   1. user_prog.c, shared library, -O2 -g: tasks meet on a channel, a
#      mutex and a wait group; its goroutine profile shows every link of a
#      call chain GCC would turn into sibling calls, with no clone suffix.
#   2. the same at -O2 without -g: names from the ELF symbol table, still
#      no .isra/.constprop/.part suffix.
#   3. the same linked statically, as the README shows:
#      cc app.c -Wl,-Bstatic -lcopper -Wl,-Bdynamic \
#         $(pkg-config --static --libs copper)
#   4. user_prog.cpp as C++11, C++17 and C++20.
#   5. user_prog.c built with sibling calls after all: each record still
#      names the task's entry function, and no frame is junk.
#   6. the installed libcopper.so exports no testing_* symbol and holds no
#      COPPER_TEST_GUARD_MODE string.
#   7. user_heap.c, shared and static, -O2: the heap profile (default rate)
#      shows the retained site keep_buffers with about its 24 MiB in use
#      (pprof's scaling of the debug=1 counts, within the sampling error)
#      and nothing in use at drop_buffers; go tool pprof reads the debug=0
#      form (when go is installed).
#
# Prints one "ok"/"not ok" line per step; exits non-zero on the first
# failure.  meson registers it only in builds without sanitizers (an ASan
# library needs an ASan program).
set -euo pipefail
# meson test points LD_LIBRARY_PATH at the build tree; a user has none.
unset LD_LIBRARY_PATH
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "not ok - $*"
	exit 1
}

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet \
	>"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "meson install"; }
pc=$(find "$tmp/root" -name copper.pc | head -n 1)
[ -n "$pc" ] || fail "no copper.pc installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
libdir=$(pkg-config --variable=libdir copper)
case $libdir in # pkgconf adds the sysroot to some paths, not to others
"$tmp/root"/*) ;;
*) libdir="$tmp/root$libdir" ;;
esac
[ -e "$libdir/libcopper.so" ] || fail "no libcopper.so in $libdir"
cflags=$(pkg-config --cflags copper)
CC=${CC:-cc}
CXX=${CXX:-c++}

# check_prog NAME OUTPUT: the sum, and the chain in the profile.
check_prog() {
	local name=$1 out=$2
	grep -q '^sum=5050$' <<<"$out" || fail "$name: no sum=5050 in: $out"
	for f in start_x outer_x inner_x wait_here; do
		grep -qE "[[:space:]]$f\+0x" <<<"$out" ||
			fail "$name: $f missing from the profile:
$out"
	done
	if grep -qE '\.(isra|constprop|part|cold)' <<<"$out"; then
		fail "$name: a clone suffix in the profile:
$out"
	fi
	echo "ok - $name"
}

# 1. shared, -O2 -g
# shellcheck disable=SC2086
"$CC" -O2 -g -o "$tmp/prog" "$src/user_prog.c" $cflags \
	$(pkg-config --libs copper) -Wl,-rpath,"$libdir" ||
	fail "C program, shared: compile"
ldd "$tmp/prog" | grep -q "$libdir/libcopper.so" ||
	fail "the shared build does not load the installed libcopper.so: $(ldd "$tmp/prog")"
check_prog "C -O2 -g, shared library" "$("$tmp/prog" "$tmp/gr.pb.gz")"

# 1b. the same profile as a user reads it with Go's own tool
if command -v go >/dev/null 2>&1; then
	traces=$(HOME=$tmp GOFLAGS=-mod=mod go tool pprof -traces "$tmp/gr.pb.gz" 2>&1) ||
		fail "go tool pprof -traces: $traces"
	for f in start_x outer_x inner_x wait_here co_chan_recv; do
		grep -qE "(^|[[:space:]])$f\$" <<<"$traces" ||
			fail "go tool pprof -traces lacks $f:
$traces"
	done
	echo "ok - go tool pprof -traces reads the chain"
else
	echo "ok - go tool pprof -traces # SKIP: go not installed"
fi

# 2. shared, -O2 without -g
# shellcheck disable=SC2086
"$CC" -O2 -o "$tmp/prog_nog" "$src/user_prog.c" $cflags \
	$(pkg-config --libs copper) -Wl,-rpath,"$libdir" ||
	fail "C program without -g: compile"
check_prog "C -O2 without -g, shared library" "$("$tmp/prog_nog")"

# 3. static
# shellcheck disable=SC2086
"$CC" -O2 -g -o "$tmp/prog_static" "$src/user_prog.c" $cflags \
	$(pkg-config --libs-only-L copper) -Wl,-Bstatic -lcopper -Wl,-Bdynamic \
	$(pkg-config --static --libs copper) ||
	fail "C program, static: link"
if ldd "$tmp/prog_static" | grep -q libcopper; then
	fail "the static link still needs libcopper.so"
fi
check_prog "C -O2 -g, static library" "$("$tmp/prog_static")"

# 5. built with sibling calls after all (a user's own flags override
#    pkg-config's): the chain may collapse, but every record still names
#    the function the task was started with, and no frame is junk.
# shellcheck disable=SC2086
"$CC" -O2 -g -o "$tmp/prog_sib" "$src/user_prog.c" $cflags \
	-foptimize-sibling-calls $(pkg-config --libs copper) \
	-Wl,-rpath,"$libdir" || fail "C program with sibling calls: compile"
out=$("$tmp/prog_sib") || fail "with sibling calls: exit status $?"
grep -qE '^3 @ ' <<<"$out" || fail "with sibling calls: no record of 3:
$out"
grep -qE '[[:space:]]start_x\+0x' <<<"$out" ||
	fail "with sibling calls: the entry start_x is missing:
$out"
if grep -qE '^#[[:space:]]+0x[0-9a-f]+[[:space:]]+\?' <<<"$out"; then
	fail "with sibling calls: a frame with no name:
$out"
fi
echo "ok - C -O2 -g with sibling calls: the entry function stays"

# 6. the installed library carries no test door
lib="$libdir/libcopper.so"
if nm -D "$lib" | grep -q ' testing_'; then
	fail "libcopper.so exports testing_* symbols"
fi
if grep -q COPPER_TEST_GUARD_MODE "$lib"; then
	fail "libcopper.so reads COPPER_TEST_GUARD_MODE"
fi
echo "ok - no test-only code in the installed library"

# 4. C++
for std in c++11 c++17 c++20; do
	# shellcheck disable=SC2086
	"$CXX" -std=$std -O2 -g -Wall -Wextra -Werror -o "$tmp/prog_cxx" \
		"$src/user_prog.cpp" $cflags $(pkg-config --libs copper) \
		-Wl,-rpath,"$libdir" || fail "C++ ($std): compile"
	out=$("$tmp/prog_cxx") || fail "C++ ($std): exit status $?"
	grep -qE '^sum=5050 yields=[0-9]+$' <<<"$out" ||
		fail "C++ ($std): unexpected output: $out"
	echo "ok - C++ ($std)"
done

# 7. heap profile of a user's program, shared and static
# check_heap NAME TEXT: keep_buffers holds about its 24 MiB once pprof's
# scaling is applied (the estimate's standard deviation at 512 KiB is
# sqrt(512 KiB / 24 MiB) = 14%: the bound, 50%, is 3.5 of them), and
# drop_buffers holds nothing.
check_heap() {
	local name=$1
	printf '%s\n' "$2" >"$tmp/heap.txt"
	python3 - "$name" "$tmp/heap.txt" <<'PY' || fail "$name: heap profile:
$2"
import math, re, sys
text = open(sys.argv[2]).read()
lines = text.split("\n")
m = re.match(r"heap profile: \d+: \d+ \[\d+: \d+\] @ heap/(\d+)$", lines[0])
assert m, "bad header " + lines[0]
rate = int(m.group(1)) // 2
assert rate == 524288, rate
keep = drop_inuse = 0.0
for i, l in enumerate(lines):
    r = re.match(r"(\d+): (\d+) \[(\d+): (\d+)\] @", l)
    if not r or i + 1 >= len(lines):
        continue
    n, b = int(r.group(1)), int(r.group(2))
    leaf = lines[i + 1]
    est = b / (1 - math.exp(-(b / n) / rate)) if n else 0
    if re.search(r"\tkeep_buffers\+0x", leaf):
        keep += est
    if re.search(r"\tdrop_buffers\+0x", leaf):
        drop_inuse += b
truth = 1536 * 16384
err = (keep - truth) / truth
print("# %s: keep_buffers in use %.0f (truth %d, %+.0f%%)" % (sys.argv[1], keep, truth, 100 * err))
assert abs(err) < 0.5, err
assert drop_inuse == 0, drop_inuse
assert "# runtime.MemStats" in text
PY
	echo "ok - $name"
}

# shellcheck disable=SC2086
"$CC" -O2 -g -o "$tmp/heap" "$src/user_heap.c" $cflags \
	$(pkg-config --libs copper) -Wl,-rpath,"$libdir" ||
	fail "heap program, shared: compile"
check_heap "heap profile, shared library" "$("$tmp/heap" "$tmp/heap.pb.gz")"
# shellcheck disable=SC2086
"$CC" -O2 -g -o "$tmp/heap_static" "$src/user_heap.c" $cflags \
	$(pkg-config --libs-only-L copper) -Wl,-Bstatic -lcopper -Wl,-Bdynamic \
	$(pkg-config --static --libs copper) ||
	fail "heap program, static: link"
check_heap "heap profile, static library" "$("$tmp/heap_static")"
if command -v go >/dev/null 2>&1; then
	top=$(HOME=$tmp GOFLAGS=-mod=mod go tool pprof -sample_index=inuse_space \
		-top "$tmp/heap.pb.gz" 2>&1) || fail "go tool pprof -top: $top"
	grep -qE "[[:space:]]keep_buffers$" <<<"$top" ||
		fail "go tool pprof -top lacks keep_buffers:
$top"
	echo "ok - go tool pprof -top reads the heap profile"
else
	echo "ok - go tool pprof -top (heap) # SKIP: go not installed"
fi
