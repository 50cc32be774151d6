#!/bin/sh
# BPF cost of two revisions, measured side by side (root): both revisions' programs attached at
# once, so every connection runs both and the machine's drift (±20–30% between runs of
# `go test -bench KernelCost` on this VM) falls on both alike. Each round runs the two
# revisions' BenchmarkKernelCostPerConnection/<scenario> concurrently (the one that starts, and
# attaches, first alternates: the program that runs first on a tracepoint warms the cache for
# the second) and compares ns per run of the state program, and of all programs together, from
# the kernel's run statistics. Per run, not per connection: each binary's programs also run for
# the other's connections.
#
# Needs bpftool (to start the second once the first is attached).
#
# usage: bench/bpf-versus.sh BASE_REV [AFTER_REV|worktree] [SCENARIO] [ROUNDS] [CONNECTIONS]
#   AFTER_REV "worktree" (default) is the current tree, uncommitted changes included.
set -eu
base=$1
after=${2:-worktree}
scenario=${3:-events+aggregate}
rounds=${4:-10}
conns=${5:-40000}
repo=$(git rev-parse --show-toplevel)
work=$(mktemp -d /tmp/bpf-versus.XXXXXX)
cleanup() {
	git -C "$repo" worktree remove --force "$work/base" 2>/dev/null || true
	[ "$after" = worktree ] || git -C "$repo" worktree remove --force "$work/after" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

build() { # rev dir out
	git -C "$repo" worktree add --detach "$2" "$1" >/dev/null 2>&1
	(cd "$2" && go test -c -o "$3" ./receiver/internal/kernel)
}
build "$base" "$work/base" "$work/base.test"
if [ "$after" = worktree ]; then
	(cd "$repo" && go test -c -o "$work/after.test" ./receiver/internal/kernel)
else
	build "$after" "$work/after" "$work/after.test"
fi

pattern="KernelCostPerConnection/$(printf '%s' "$scenario" | sed 's/+/\\+/g')\$"
run() { # binary label round
	"$work/$1.test" -test.run '^$' -test.bench "$pattern" -test.benchtime "${conns}x" 2>&1 |
		grep '^Benchmark' | sed "s/^/$1 $2 /"
}
# The state programs loaded on the machine (bpftool shortens names to 15 characters).
attached() { bpftool prog show 2>/dev/null | grep -c ' name state_tp_btf ' || true; }
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) -eq 1 ]; then first=base second=after; else first=after second=base; fi
	before=$(attached)
	run $first "$r" >"$work/$r.$first" &
	# The second starts once the first's state program is loaded (it attaches right after):
	# a fixed delay sometimes let the second attach first (a round of the wrong order).
	for _ in $(seq 1 200); do
		[ "$(attached)" -gt "$before" ] && break
		sleep 0.05
	done
	sleep 0.1
	run $second "$r" >"$work/$r.$second"
	wait
done
cat "$work"/*.base "$work"/*.after >"$work/all"

# Per round: state_tp_btf ns per run, all programs' ns per run, for base and after; ratios.
awk -v scenario="$scenario" '
function metric(name,   i) { for (i = 1; i < NF; i++) if ($(i + 1) == name) return $i; return 0 }
{
	state = metric("ns-in-state_tp_btf/conn") / metric("runs-state_tp_btf/conn")
	ns = 0; runs = 0
	for (i = 1; i < NF; i++) {
		if ($(i + 1) ~ /^ns-in-.*\/conn$/ && $(i + 1) != "ns-in-bpf/conn") ns += $i
		if ($(i + 1) ~ /^runs-.*\/conn$/) runs += $i
	}
	s[$1, $2] = state; t[$1, $2] = ns / runs; n = ($2 > n ? $2 : n)
}
END {
	printf "scenario %s; ns per run (kernel run statistics), base -> after, ratio after/base\n", scenario
	printf "round  state_tp_btf                 all programs\n"
	for (r = 1; r <= n; r++) {
		a = s["after", r] / s["base", r]; b = t["after", r] / t["base", r]
		sr[r] = a; tr[r] = b
		printf "%5d  %6.1f -> %6.1f  %.3f      %6.1f -> %6.1f  %.3f\n", r, s["base", r], s["after", r], a, t["base", r], t["after", r], b
	}
	# Whichever attached first runs first and pays for the cold cache lines (measured: ±10% on
	# the state program), so each order has its own median; the estimate is their geometric mean.
	for (r = 1; r <= n; r++) {
		if (r % 2) { so[++no] = sr[r]; to[no] = tr[r] } else { se[++ne] = sr[r]; te[ne] = tr[r] }
	}
	printf "median ratio, base attached first: state_tp_btf %.3f, all programs %.3f (%d rounds)\n", median(so, no), median(to, no), no
	printf "median ratio, after attached first: state_tp_btf %.3f, all programs %.3f (%d rounds)\n", median(se, ne), median(te, ne), ne
	printf "estimate (geometric mean of the two orders): state_tp_btf %.3f, all programs %.3f\n", sqrt(median(so, no) * median(se, ne)), sqrt(median(to, no) * median(te, ne))
}
function median(v, n,   i, j, x, w) {
	for (i = 1; i <= n; i++) w[i] = v[i]
	for (i = 2; i <= n; i++) { x = w[i]; for (j = i - 1; j >= 1 && w[j] > x; j--) w[j + 1] = w[j]; w[j + 1] = x }
	return n % 2 ? w[(n + 1) / 2] : (w[n / 2] + w[n / 2 + 1]) / 2
}' "$work/all"
