#!/usr/bin/env bash
# make e2e-node: a real single-node Kubernetes cluster on this machine (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd, kubelet, kube-proxy in nftables mode,
# bridge CNI), podnet installed from examples/kubernetes/daemonset.yaml, two pods talking HTTP,
# and a check that podnet's records name both pods; then podnet with service_backends
# (examples/kubernetes/service-backends.patch.yaml) and a client of a two-backend Service, whose
# records must name the Service and the backend pod that served each connection. Opt-in (root;
# changes host state until its teardown, which the EXIT trap always runs and which verifies the
# host afterwards). Not part of the default test run.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "e2e-node: needs root" >&2; exit 1; }
. tools/e2e-node/env.sh
. tools/e2e-node/cluster.sh
. tools/e2e-node/helm.sh
. tools/e2e-node/service.sh

phase() { echo "e2e-node: == $* (+${SECONDS}s)"; }
if [ -e "$E2E_RUN" ] || [ -e "$E2E_STATE" ]; then
	echo "e2e-node: $E2E_RUN or $E2E_STATE exists (an earlier run?): run tools/e2e-node/teardown.sh" >&2
	exit 1
fi

phase "host packages"
need=()
for pair in containerd:containerd runc:runc ctr:containerd etcd:etcd-server jq:jq nft:nftables openssl:openssl; do
	command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[ -x "$E2E_CNI_BIN/bridge" ] || need+=(containernetworking-plugins)
if ((${#need[@]})); then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	# Debian's postinst would start containerd under systemd; there is none here, but be sure.
	if command -v systemctl >/dev/null; then systemctl disable --now containerd 2>/dev/null || true; fi
fi

phase "binaries and images"
KUBE_BIN=$(tools/e2e-node/kube/build.sh | tail -1)
nice make -s otelcol
mkdir -p "$E2E_LOGS/bin" "$E2E_LOGS/images"
(cd tools/e2e-node && CGO_ENABLED=0 nice go build -trimpath -o "$E2E_LOGS/bin/podnet-e2e-workload" ./workload &&
	CGO_ENABLED=0 nice go build -trimpath -o "$E2E_LOGS/bin/mkimage" ./mkimage)
E2E_PAUSE_IMAGE=localhost/podnet-e2e/pause:e2e
PODNET_IMAGE=localhost/podnet/otelcol-podnet:e2e
mkimage() { "$E2E_LOGS/bin/mkimage" "$@"; }
mkimage -binary bin/otelcol-podnet -name "$PODNET_IMAGE" -out "$E2E_LOGS/images/otelcol-podnet.tar"
mkimage -binary "$E2E_LOGS/bin/podnet-e2e-workload" -name localhost/podnet-e2e/workload:e2e \
	-out "$E2E_LOGS/images/workload.tar"
# The pod sandbox (pause) image is the same binary, run as "podnet-e2e-workload pause".
mkimage -binary "$E2E_LOGS/bin/podnet-e2e-workload" -name "$E2E_PAUSE_IMAGE" \
	-out "$E2E_LOGS/images/pause.tar" -args pause

# From here on the host changes: the trap undoes it whatever happens.
mkdir -p "$E2E_RUN/pids" "$E2E_STATE"
{
	for p in $E2E_FIXED_PATHS; do [ -e "$p" ] && echo "$p"; done
	for n in /run/netns/*; do [ -e "$n" ] && echo "netns:${n#/run/netns/}"; done
	nft list tables | awk '{print "nfttable:"$2" "$3}'
	nft list ruleset | awk '/^table /{t=$2" "$3} /^\tchain KUBE-/{print "nft:"t" "$2}'
	echo "sysctl:net.ipv4.ip_forward=$(sysctl -n net.ipv4.ip_forward)"
} >"$E2E_RUN/preexisting"
echo "$KUBE_BIN/kubectl" >"$E2E_RUN/kubectl"
E2E_CGROUP_ROOT=$(e2e_own_cgroup)
E2E_CGROUP_ROOT=${E2E_CGROUP_ROOT%/}/podnet-e2e
echo "$E2E_CGROUP_ROOT" >"$E2E_RUN/cgroup-root"
# The trap can fire inside a command whose output goes to /dev/null (wait_for's probes):
# teardown reports on the run's own stdout/stderr, saved here.
exec 3>&1 4>&2
on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	exec 1>&3 2>&4
	((rc)) && echo "e2e-node: FAILED (exit $rc); logs in $E2E_LOGS" >&2
	phase "teardown"
	rm -rf "$E2E_LOGS/pod-logs"
	cp -r "$E2E_STATE/pod-logs" "$E2E_LOGS/" 2>/dev/null || true
	tools/e2e-node/teardown.sh || rc=1
	phase "done, exit $rc"
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM
if ! mountpoint -q /sys/kernel/tracing; then
	mount -t tracefs nodev /sys/kernel/tracing && touch "$E2E_RUN/tracefs-mounted"
fi
kubectl() { "$KUBE_BIN/kubectl" --kubeconfig "$E2E_STATE/kubeconfig" "$@"; }

phase "control plane"
make_credentials
start_etcd
wait_for "etcd" 60 curl -fs "http://127.0.0.1:$E2E_ETCD_PORT/health"
start_apiserver
wait_for "kube-apiserver /readyz" 120 kubectl get --raw /readyz
start_controllers

phase "node"
make_cgroup_root
make_pod_network
start_containerd
wait_for "containerd" 60 e2e_ctr version
for image in pause workload otelcol-podnet; do
	e2e_ctr images import "$E2E_LOGS/images/$image.tar" >/dev/null
done
start_kubelet
wait_for "node $E2E_NODE Ready" 180 kubectl wait --for=condition=Ready "node/$E2E_NODE" --timeout=5s
# After the Node exists: kube-proxy takes the node's IP from it. Healthy once it has synced.
start_kube_proxy
if ! wait_for "kube-proxy (nftables) synced" 60 curl -fs "http://127.0.0.1:$E2E_KUBE_PROXY_HEALTHZ_PORT/healthz"; then
	tail -n 30 "$E2E_LOGS/kube-proxy.log"
	exit 1
fi

phase "OTLP sink on $E2E_GATEWAY:$E2E_SINK_PORT"
output=$E2E_LOGS/podnet-output.jsonl
rm -f "${output%.jsonl}"*.jsonl
sed -e "s#@ENDPOINT@#$E2E_GATEWAY:$E2E_SINK_PORT#" -e "s#@OUTPUT@#$output#" \
	tools/e2e-node/sink-config.yaml >"$E2E_STATE/sink.yaml"
start_daemon sink bin/otelcol-podnet --config "$E2E_STATE/sink.yaml"
wait_for "sink" 60 bash -c "exec 3<>/dev/tcp/$E2E_GATEWAY/$E2E_SINK_PORT"

phase "podnet DaemonSet"
kubectl create namespace podnet
rbac=examples/rbac.yaml
[ -f "$rbac" ] || rbac=tools/e2e-node/manifests/rbac.yaml
kubectl apply -f "$rbac"
# The example as shipped, with two substitutions: the locally built image, and the exporter's
# placeholder backend replaced by the sink on the host's bridge address.
sed -e "s#ghcr.io/podnet/otelcol-podnet:0.1.0#$PODNET_IMAGE#" \
	-e "s#otel-backend.observability.svc.cluster.local:4317#$E2E_GATEWAY:$E2E_SINK_PORT#" \
	examples/kubernetes/daemonset.yaml >"$E2E_STATE/daemonset.yaml"
[ "$(diff examples/kubernetes/daemonset.yaml "$E2E_STATE/daemonset.yaml" | grep -c '^>')" = 2 ] ||
	{ echo "e2e-node: examples/kubernetes/daemonset.yaml changed: the image/endpoint substitution no longer applies" >&2; exit 1; }
kubectl apply -f "$E2E_STATE/daemonset.yaml"
wait_for "podnet DaemonSet ready" 180 kubectl -n podnet rollout status daemonset/podnet --timeout=5s

phase "workload pods"
kubectl create namespace podnet-e2e
wait_for "default ServiceAccount" 60 kubectl -n podnet-e2e get serviceaccount default
kubectl apply -f <(sed -n '1,/^---$/p' tools/e2e-node/manifests/workloads.yaml)
wait_for "server pod Ready" 120 kubectl -n podnet-e2e wait --for=condition=Ready pod/e2e-server --timeout=5s
server_ip=$(kubectl -n podnet-e2e get pod e2e-server -o jsonpath='{.status.podIP}')
kubectl apply -f <(sed -n '/^---$/,$p' tools/e2e-node/manifests/workloads.yaml | sed "s#SERVER_IP#$server_ip#")
wait_for "client pod Ready" 120 kubectl -n podnet-e2e wait --for=condition=Ready pod/e2e-client --timeout=5s
uid() { kubectl -n podnet-e2e get pod "$1" -o jsonpath='{.metadata.uid}'; }
client_uid=$(uid e2e-client) server_uid=$(uid e2e-server)
echo "e2e-node: client e2e-client $client_uid -> server e2e-server $server_uid at $server_ip:8080"

phase "assertion"
if ! wait_for "podnet records naming both pods" 120 \
	tools/e2e-node/assert.sh "$output" "$client_uid" e2e-client "$server_uid" e2e-server; then
	tools/e2e-node/assert.sh "$output" "$client_uid" e2e-client "$server_uid" e2e-server || true
	tail -n 30 "$E2E_STATE"/pod-logs/podnet_*/*/*.log || true
	exit 1
fi
tools/e2e-node/assert.sh "$output" "$client_uid" e2e-client "$server_uid" e2e-server

phase "Service -> backend pod: kube-proxy (nftables) and podnet with service_backends"
service_phase "$output"

if [ -n "${PODNET_HELM_CHART:-}" ]; then
	phase "Helm: upstream chart at $PODNET_HELM_CHART with examples/helm/values.yaml"
	helm_phase "$output" "$client_uid" "$server_uid"
else
	echo "e2e-node: SKIP: Helm install not tested: set PODNET_HELM_CHART to a checkout of"
	echo "e2e-node: SKIP:   open-telemetry/opentelemetry-helm-charts/charts/opentelemetry-collector"
fi
phase "PASS"
