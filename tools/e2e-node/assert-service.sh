#!/usr/bin/env bash
# Checks the Service -> backend pod records (service_backends, kube-proxy in nftables mode) in
# the DaemonSet's output. The client pod's podnet.tcp.connect records to the Service's ClusterIP
# must name the Service and one of its backend pods (podnet.peer.k8s.pod.uid/.name, with
# podnet.peer.backend.address = that pod's IP); a connection counts as proven when the backend
# pod's own podnet.tcp.accept record (on that pod's resource) shows the same connection: peer =
# the client's address and the connect's local port, local = the backend address and port the
# connect named. Passes when every backend is proven at least once and no connect names a wrong
# backend: a constant or swapped attribution fails. Prints what it found; exits 1 when lacking.
# usage: assert-service.sh OUTPUT CLIENT_UID CLIENT_IP SERVICE SERVICE_IP BACKEND_UID,NAME,IP...
set -euo pipefail
out=$1 client_uid=$2 client_ip=$3 service=$4 service_ip=$5
shift 5
[ -s "$out" ] || { echo "assert-service: no output yet in $out"; exit 1; }
pattern=(-e "$client_uid")
for b in "$@"; do pattern+=(-e "${b%%,*}"); done
# As assert.sh: the file and its rotated backups, only the requests that mention these pods.
lines() { grep -h -F "${pattern[@]}" "${out%.jsonl}"*.jsonl || true; }

# One line per connect or accept record: event, the resource's pod uid, local address and port,
# peer address and port, then the Service, backend address and port, peer pod uid and name.
records=$(lines | jq -rR '
	def attrs: [.[]? | {(.key): (.value | (.stringValue // .intValue) | tostring)}] | add // {};
	fromjson? | .resourceLogs[]? | (.resource.attributes | attrs) as $r
	| .scopeLogs[]?.logRecords[]?
	| select(.eventName == "podnet.tcp.connect" or .eventName == "podnet.tcp.accept")
	| (.attributes | attrs) as $a
	| [.eventName, $r["k8s.pod.uid"], $a["network.local.address"], $a["network.local.port"],
	   $a["network.peer.address"], $a["network.peer.port"], $a["podnet.peer.k8s.service.name"],
	   $a["podnet.peer.backend.address"], $a["podnet.peer.backend.port"],
	   $a["podnet.peer.k8s.pod.uid"], $a["podnet.peer.k8s.pod.name"]]
	| map(. // "-") | @tsv' | sort -u)

awk -F'\t' -v cu="$client_uid" -v cip="$client_ip" -v svc="$service" -v sip="$service_ip" \
	-v backends="$*" '
BEGIN {
	n = split(backends, list, " ")
	for (i = 1; i <= n; i++) { split(list[i], f, ","); name[f[1]] = f[2]; ip[f[1]] = f[3] }
}
$1 == "podnet.tcp.accept" && ($2 in ip) { accepted[$2, $5, $6, $3, $4] = 1 }
$1 == "podnet.tcp.connect" && $2 == cu && $5 == sip { conn[++nc] = $0 }
END {
	for (i = 1; i <= nc; i++) {
		split(conn[i], c, "\t")
		if (c[7] != svc) { other++; continue }
		if (c[10] == "-") { nobackend++; continue }
		if (!(c[10] in ip) || c[11] != name[c[10]] || c[8] != ip[c[10]]) {
			if (++wrong <= 3) printf "assert-service: WRONG backend on a connect to %s: pod %s (%s) at %s:%s\n", svc, c[11], c[10], c[8], c[9]
			continue
		}
		named[c[10]]++
		if ((c[10], cip, c[4], c[8], c[9]) in accepted) {
			proven[c[10]]++
			if (!sample) sample = sprintf("%s:%s -> %s:%s = pod %s at %s:%s", c[3], c[4], c[5], c[6], c[11], c[8], c[9])
		}
	}
	printf "assert-service: %d connect(s) of the client to %s: %d name Service %s and a backend pod, %d the Service without a backend, %d not the Service\n", \
		nc, sip, nc - other - nobackend - wrong, svc, nobackend, other
	if (sample) print "assert-service: e.g. " sample
	ok = wrong == 0
	for (u in ip) {
		if (proven[u]) {
			printf "assert-service: ok: backend %s (%s, %s): %d connect(s) name it, %d proven by its own accept record\n", name[u], u, ip[u], named[u], proven[u]
		} else {
			printf "assert-service: MISSING: no connect naming backend %s (%s, %s) proven by its accept record (%d name it)\n", name[u], u, ip[u], named[u]
			ok = 0
		}
	}
	exit !ok
}' <<<"$records"
