#!/usr/bin/env bash
# Removes everything an e2e-node run created and then checks the host for leftovers; run.sh
# calls it from its EXIT trap, and it can be run by hand after a run that was killed.
# It touches only what env.sh names: pids it recorded, its bridge and the veths on it, its nft
# table and kube-proxy's, its cgroups, mounts under its directories and the CNI netns it created.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. tools/e2e-node/env.sh

log() { echo "e2e-node teardown: $*"; }
pid_of() { cat "$E2E_RUN/pids/$1" 2>/dev/null; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

stop_pid() { # pid [seconds before SIGKILL]
	local pid=$1 grace=${2:-10} i
	alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < grace * 5; i++)); do
		alive "$pid" || return 0
		sleep 0.2
	done
	kill -KILL "$pid" 2>/dev/null
	sleep 0.2
}

cgroot=$(cat "$E2E_RUN/cgroup-root" 2>/dev/null)
# What existed before the run. Without that record (state already gone) assume everything
# outside our own names did, and leave it alone.
if [ -f "$E2E_RUN/preexisting" ]; then
	preexisting=$(cat "$E2E_RUN/preexisting")
	was_there() { grep -qxF "$1" <<<"$preexisting"; }
else
	log "no record of the host before the run: only $E2E_STATE, $E2E_RUN and our own names are cleaned"
	was_there() { true; }
fi

# 1. Let the kubelet stop the pods itself, so the bridge plugin releases veths and addresses.
kubectl=$(cat "$E2E_RUN/kubectl" 2>/dev/null)
if alive "$(pid_of kubelet)" && alive "$(pid_of kube-apiserver)" && [ -x "$kubectl" ]; then
	log "deleting pods"
	# Owners first, or the ReplicaSet recreates the pods deleted under it.
	"$kubectl" --kubeconfig "$E2E_STATE/kubeconfig" delete deployments,replicasets,daemonsets,pods --all -A \
		--grace-period=0 --force --wait=false >/dev/null 2>&1
	for ((i = 0; i < 60; i++)); do
		[ -z "$(e2e_ctr tasks ls -q 2>/dev/null)" ] && break
		sleep 1
	done
fi

# 2. Daemons, clients of containerd first.
for name in kubelet kube-proxy kube-scheduler kube-controller-manager sink; do
	stop_pid "$(pid_of "$name")"
done
if alive "$(pid_of containerd)"; then
	for task in $(e2e_ctr tasks ls -q 2>/dev/null); do
		e2e_ctr tasks kill -s SIGKILL "$task" >/dev/null 2>&1
	done
fi
stop_pid "$(pid_of containerd)"
# containerd's shims outlive it on purpose (and ignore SIGTERM without it); each names our
# containerd's socket, which no other process on the host does.
for pid in $(pgrep -f -- "-address $E2E_CONTAINERD_SOCK( |\$)"); do
	stop_pid "$pid" 2
done
# Anything left in the pods' cgroups (run.sh's own job cgroup, below the kubelet's root).
if [ -n "$cgroot" ]; then
	for h in /sys/fs/cgroup/*/; do
		[ -d "$h$cgroot" ] || continue
		find "$h$cgroot" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
			kill -KILL "$pid" 2>/dev/null
		done
	done
fi
stop_pid "$(pid_of kube-apiserver)"
stop_pid "$(pid_of etcd)"

# 3. Mounts (snapshots, shm, volumes, netns files), deepest first.
ours() {
	local t=$1 p
	[[ $t == /run/netns/* ]] && was_there "netns:${t#/run/netns/}" && return 1
	case $t in "$E2E_STATE"/* | "$E2E_RUN"/* | "$E2E_RUN") return 0 ;; esac
	for p in $E2E_FIXED_PATHS; do
		case $t in "$p"/*) was_there "$p" && [[ $t != /run/netns/cni-* ]] && return 1; return 0 ;; esac
	done
	return 1
}
for ((pass = 0; pass < 3; pass++)); do
	findmnt -rn -o TARGET | sort -r | while read -r t; do
		t=$(printf '%b' "$t") # findmnt escapes spaces as \x20
		ours "$t" && { umount "$t" 2>/dev/null || umount -l "$t" 2>/dev/null; }
	done
done
for f in /run/netns/cni-*; do
	[ -e "$f" ] && ! was_there "netns:${f#/run/netns/}" && rm -f "$f"
done

# 4. Network: the veths on the bridge (their pod ends went with the netns), the bridge, nft.
for veth in $(ip -o link show master "$E2E_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
	ip link del "$veth" 2>/dev/null
done
ip link del "$E2E_BRIDGE" 2>/dev/null
nft delete table ip "$E2E_NFT_TABLE" 2>/dev/null
# kube-proxy leaves its tables when it stops (so that a restart keeps Services working).
for t in $E2E_KUBE_PROXY_TABLES; do
	was_there "nfttable:${t%/*} ${t#*/}" || nft delete table "${t%/*}" "${t#*/}" 2>/dev/null
done
# The kubelet's iptables chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, ...) that were not there
# before: first the rules that jump to them, then the chains; then tables left with no rule
# at all (iptables-nft recreates those on demand).
kube_chains() { nft list ruleset 2>/dev/null | awk '/^table /{t=$2" "$3} /^\tchain KUBE-/{print t" "$2}'; }
while read -r fam tbl chain; do
	if [ -z "$chain" ] || was_there "nft:$fam $tbl $chain"; then continue; fi
	nft -a list table "$fam" "$tbl" | awk -v c="$chain" '/^\tchain /{ch=$2} $0 ~ "jump "c" " {print ch, $NF}' |
		while read -r from handle; do nft delete rule "$fam" "$tbl" "$from" handle "$handle"; done
	nft flush chain "$fam" "$tbl" "$chain" && nft delete chain "$fam" "$tbl" "$chain"
done < <(kube_chains)
nft list tables 2>/dev/null | while read -r _ fam tbl; do
	was_there "nfttable:$fam $tbl" && continue
	nft list table "$fam" "$tbl" | grep -qvE '^\s*(table|chain|type|\}|$)' || nft delete table "$fam" "$tbl"
done

# The bridge plugin (isGateway) turns IPv4 forwarding on, which pod -> Service -> pod needs;
# it stays on after the plugin is gone unless put back as it was before the run.
fwd=$(sed -n 's/^sysctl:net.ipv4.ip_forward=//p' <<<"${preexisting:-}")
[ -n "$fwd" ] && sysctl -qw "net.ipv4.ip_forward=$fwd"

# 5. cgroups, deepest first (empty now).
if [ -n "$cgroot" ]; then
	for h in /sys/fs/cgroup/*/; do
		[ -d "$h$cgroot" ] && find "$h$cgroot" -depth -type d -exec rmdir {} + 2>/dev/null
	done
fi

# 6. Files. /run/netns may hold other tests' namespaces: only removed when empty.
[ -f "$E2E_RUN/tracefs-mounted" ] && umount /sys/kernel/tracing 2>/dev/null
for p in $E2E_FIXED_PATHS; do
	if [ ! -e "$p" ] || was_there "$p"; then
		continue
	elif [ "$p" = /run/netns ]; then
		rmdir "$p" 2>/dev/null
	else
		rm -rf "$p"
	fi
done
rm -rf "$E2E_STATE" "$E2E_RUN"

# 7. Check the host.
left=()
# Every daemon and shim names one of the two directories on its command line.
procs=$(pgrep -f -- "$E2E_STATE|$E2E_RUN" | tr '\n' ' ')
[ -n "$procs" ] && left+=("processes naming $E2E_STATE or $E2E_RUN: $procs")
[ -n "$cgroot" ] && for h in /sys/fs/cgroup/*/; do
	[ -d "$h$cgroot" ] && left+=("cgroup $h$cgroot")
done
while read -r t; do
	ours "$t" && left+=("mount $t")
done < <(findmnt -rn -o TARGET)
ip link show "$E2E_BRIDGE" >/dev/null 2>&1 && left+=("link $E2E_BRIDGE")
nft list table ip "$E2E_NFT_TABLE" >/dev/null 2>&1 && left+=("nft table $E2E_NFT_TABLE")
for t in $E2E_KUBE_PROXY_TABLES; do
	! was_there "nfttable:${t%/*} ${t#*/}" && nft list table "${t%/*}" "${t#*/}" >/dev/null 2>&1 &&
		left+=("nft table ${t%/*} ${t#*/}")
done
while read -r fam tbl chain; do
	[ -n "$chain" ] && ! was_there "nft:$fam $tbl $chain" && left+=("nft chain $fam $tbl $chain")
done < <(kube_chains)
[ -n "$fwd" ] && [ "$(sysctl -n net.ipv4.ip_forward)" != "$fwd" ] && left+=("net.ipv4.ip_forward not back to $fwd")
for p in $E2E_STATE $E2E_RUN $E2E_FIXED_PATHS; do
	[ -e "$p" ] && ! was_there "$p" && left+=("path $p")
done
for port in $E2E_ETCD_PORT $E2E_ETCD_PEER_PORT $E2E_APISERVER_PORT $E2E_KUBELET_PORT $E2E_KUBELET_HEALTHZ_PORT \
	$E2E_KUBE_PROXY_HEALTHZ_PORT $E2E_KUBE_PROXY_METRICS_PORT; do
	ss -Hltn "sport = :$port" | grep -q . && left+=("listener on port $port")
done
ss -Hltn "src $E2E_GATEWAY" | grep -q . && left+=("listener on $E2E_GATEWAY")
if ((${#left[@]})); then
	log "LEFTOVERS:"
	printf '  %s\n' "${left[@]}"
	exit 1
fi
log "host clean (no processes, mounts, cgroups, links, nft tables, files or listeners left; ip_forward as before)"
