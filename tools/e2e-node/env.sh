# shellcheck shell=bash
# Sourced by run.sh and teardown.sh: every name, address and path the e2e-node cluster uses.
# All host state lives under $E2E_STATE and $E2E_RUN, a bridge named $E2E_BRIDGE, an nft
# table named $E2E_NFT_TABLE and kube-proxy's tables ($E2E_KUBE_PROXY_TABLES), so that teardown
# can remove exactly what the run created.
E2E_STATE=/var/lib/podnet-e2e         # etcd, certs, containerd root, kubelet root, pod logs
E2E_RUN=/run/podnet-e2e               # containerd state and sockets, runc state, pid files
E2E_LOGS=${E2E_LOGS:-$PWD/_build/e2e-node} # daemon logs and the collected output, kept after teardown
E2E_NODE=podnet-e2e
E2E_BRIDGE=podnet-e2e0
E2E_NFT_TABLE=podnet_e2e
# Pods on 10.247.0.0/24 (the host is the bridge's .1); Services on 10.247.128.0/24, DNAT'd by
# kube-proxy, except the .1, the kubernetes Service: it has no endpoints (an EndpointSlice cannot
# name the loopback API server), so $E2E_NFT_TABLE DNATs it to 127.0.0.1 instead.
E2E_POD_SUBNET=10.247.0.0/24
E2E_GATEWAY=10.247.0.1
E2E_SERVICE_RANGE=10.247.128.0/24
E2E_KUBERNETES_SVC=10.247.128.1
# kube-proxy's (nftables mode) names are fixed: one table per family it finds the host supports.
E2E_KUBE_PROXY_TABLES="ip/kube-proxy ip6/kube-proxy"
# Ports on loopback, away from the defaults that other tests of this project use.
E2E_ETCD_PORT=12379
E2E_ETCD_PEER_PORT=12380
E2E_APISERVER_PORT=16443
E2E_KUBELET_PORT=10350
E2E_KUBELET_HEALTHZ_PORT=10348
E2E_KUBE_PROXY_HEALTHZ_PORT=10356
E2E_KUBE_PROXY_METRICS_PORT=10349
E2E_SINK_PORT=4317 # on $E2E_GATEWAY: where the DaemonSet's OTLP exporter sends
E2E_CNI_BIN=/usr/lib/cni # Debian's containernetworking-plugins
E2E_CONTAINERD_SOCK=$E2E_RUN/containerd/containerd.sock
# Host paths that containerd and the kubelet create at fixed places whatever their config
# says; teardown removes each one only if it did not exist before the run (see $E2E_RUN/preexisting).
E2E_FIXED_PATHS="/run/containerd /var/log/containers /var/log/pods /var/lib/kubelet /var/lib/cni /run/netns"

# The cgroup this shell lives in (the first non-root path of /proc/self/cgroup), so that the
# kubelet's cgroupRoot keeps every pod process inside the job that started it.
e2e_own_cgroup() {
	local line path
	while IFS= read -r line; do
		path=${line#*:*:}
		[ "$path" != / ] && { echo "$path"; return; }
	done </proc/self/cgroup
	echo /
}

e2e_ctr() { ctr --address "$E2E_CONTAINERD_SOCK" -n k8s.io "$@"; }
