#!/usr/bin/env bash
# Checks the DaemonSet's output (OTLP JSON lines written by the sink's file exporter): a
# podnet.tcp.connect record on the client pod's resource and a podnet.tcp.accept record on the
# server pod's, each pod named by the k8s.pod.uid the API reports (and by k8s.pod.name when
# the record carries one, which must then match). Prints what it found; exits 1 when lacking.
# With SINCE (seconds since the epoch), only records of events from then on count: records of
# the Helm-installed DaemonSet, not of the manifest's one deleted before it (the client
# connects every 500 ms; host.name names the node, not the collector pod).
# usage: assert.sh OUTPUT CLIENT_UID CLIENT_NAME SERVER_UID SERVER_NAME [SINCE]
set -euo pipefail
out=$1 client_uid=$2 client_name=$3 server_uid=$4 server_name=$5 since=${6:-0}
[ -s "$out" ] || { echo "assert: no output yet in $out"; exit 1; }
# The file and the sink's rotated backups ($out minus .jsonl, then a timestamp), only the
# export requests that mention either pod; a line still being written is skipped (fromjson?).
lines() { grep -h -F -e "$client_uid" -e "$server_uid" "${out%.jsonl}"*.jsonl || true; }

# One line per (resource, event name): uid, pod name ("-" when absent), event, count, and how
# many of those records name the other pod as peer.
summary=$(lines | jq -rR --arg c "$client_uid" --arg s "$server_uid" --argjson since "$since" '
	fromjson? | .resourceLogs[]?
	| ([.resource.attributes[]? | {(.key): (.value.stringValue // (.value.intValue|tostring))}] | add // {}) as $r
	| [.scopeLogs[]?.logRecords[]? | select(((.timeUnixNano // "0") | tonumber) >= $since * 1e9)]
	| select(length > 0) | group_by(.eventName)[]
	| [ ($r["k8s.pod.uid"] // "-"), ($r["k8s.pod.name"] // "-"), .[0].eventName, length,
	    ([.[] | select(any(.attributes[]?; .key == "podnet.peer.k8s.pod.uid" and (.value.stringValue == $c or .value.stringValue == $s)))] | length) ]
	| @tsv' | awk -F'\t' '{k=$1"\t"$2"\t"$3; n[k]+=$4; p[k]+=$5} END {for (k in n) print k"\t"n[k]"\t"p[k]}' | sort)

ok=1
check() { # uid name event
	local line
	line=$(awk -F'\t' -v u="$1" -v e="$3" '$1 == u && $3 == e' <<<"$summary")
	if [ -z "$line" ]; then
		echo "assert: MISSING $3 on k8s.pod.uid=$1 ($2)"
		ok=0
		return
	fi
	while IFS=$'\t' read -r _ name _ n peers; do
		if [ "$name" != - ] && [ "$name" != "$2" ]; then
			echo "assert: WRONG k8s.pod.name $name on k8s.pod.uid=$1 (want $2)"
			ok=0
			continue
		fi
		echo "assert: ok: $n $3 record(s) on pod $2 (k8s.pod.uid=$1, k8s.pod.name=$name; $peers name the other pod as peer)"
	done <<<"$line"
}
check "$client_uid" "$client_name" podnet.tcp.connect
check "$server_uid" "$server_name" podnet.tcp.accept
((ok)) || { echo "assert: records by resource (uid, name, event, count, peer-named):"; sed 's/^/  /' <<<"$summary" | head -30; exit 1; }
