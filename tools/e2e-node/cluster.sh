# shellcheck shell=bash
# Sourced by run.sh: brings up the single-node cluster, one function per piece. Every daemon
# is a child of run.sh (so it stays in the job's cgroup) and its pid goes to $E2E_RUN/pids/.

start_daemon() { # name command...
	local name=$1
	shift
	"$@" >"$E2E_LOGS/$name.log" 2>&1 &
	echo $! >"$E2E_RUN/pids/$name"
}

wait_for() { # description timeout-seconds command...
	local what=$1 timeout=$2 start=$SECONDS
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS - start > timeout)); then
			echo "e2e-node: timed out after ${timeout}s waiting for $what" >&2
			return 1
		fi
		sleep 1
	done
	echo "e2e-node: $what ($((SECONDS - start))s)"
}

# Self-signed CA, the API server's serving cert (loopback and the kubernetes Service IP, which
# pods reach through the DNAT), service-account keys, one admin token for every component.
make_credentials() {
	local d=$E2E_STATE/pki
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 2 \
		-subj /CN=podnet-e2e-ca 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout "$d/apiserver.key" -out "$d/apiserver.csr" \
		-subj /CN=kube-apiserver 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,IP:%s,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n' \
		"$E2E_KUBERNETES_SVC" >"$d/san.ext"
	openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
		-out "$d/apiserver.crt" -days 2 -extfile "$d/san.ext" 2>/dev/null
	openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
	openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
	local token
	token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	echo "$token,admin,admin,system:masters" >"$d/tokens.csv"
	cat >"$E2E_STATE/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster: { server: "https://127.0.0.1:$E2E_APISERVER_PORT", certificate-authority: "$d/ca.crt" }
users:
  - name: admin
    user: { token: "$token" }
contexts:
  - name: e2e
    context: { cluster: e2e, user: admin }
current-context: e2e
KC
}

start_etcd() {
	start_daemon etcd etcd --name "$E2E_NODE" --data-dir "$E2E_STATE/etcd" \
		--listen-client-urls "http://127.0.0.1:$E2E_ETCD_PORT" \
		--advertise-client-urls "http://127.0.0.1:$E2E_ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$E2E_ETCD_PEER_PORT" \
		--initial-advertise-peer-urls "http://127.0.0.1:$E2E_ETCD_PEER_PORT" \
		--initial-cluster "$E2E_NODE=http://127.0.0.1:$E2E_ETCD_PEER_PORT"
}

start_apiserver() {
	local d=$E2E_STATE/pki
	# --endpoint-reconciler-type=none: on loopback the default reconciler refuses 127.0.0.1.
	start_daemon kube-apiserver "$KUBE_BIN/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$E2E_ETCD_PORT" \
		--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$E2E_APISERVER_PORT" \
		--endpoint-reconciler-type none --service-cluster-ip-range "$E2E_SERVICE_RANGE" \
		--tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key" \
		--client-ca-file "$d/ca.crt" --token-auth-file "$d/tokens.csv" \
		--service-account-issuer https://kubernetes.default.svc \
		--service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
		--authorization-mode Node,RBAC --allow-privileged
}

start_controllers() {
	start_daemon kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
		--kubeconfig "$E2E_STATE/kubeconfig" --leader-elect=false --secure-port 0 \
		--service-account-private-key-file "$E2E_STATE/pki/sa.key" \
		--root-ca-file "$E2E_STATE/pki/ca.crt" --service-cluster-ip-range "$E2E_SERVICE_RANGE"
	start_daemon kube-scheduler "$KUBE_BIN/kube-scheduler" \
		--kubeconfig "$E2E_STATE/kubeconfig" --leader-elect=false --secure-port 0
}

# The pod bridge exists before any pod, so that the host's address on it can serve the OTLP
# sink and the kubernetes Service DNAT; the bridge CNI plugin adopts it.
make_pod_network() {
	ip link add "$E2E_BRIDGE" type bridge
	ip addr add "$E2E_GATEWAY/24" dev "$E2E_BRIDGE"
	ip link set "$E2E_BRIDGE" up
	# Lets the DNAT below reach the API server on 127.0.0.1 (this interface only).
	sysctl -qw "net.ipv4.conf.$E2E_BRIDGE.route_localnet=1"
	# The output chain serves hostNetwork pods (podnet with service_backends). Priority -100 is
	# dstnat, which nft 1.0.6 names in prerouting only. Both DNATs come before kube-proxy's filter
	# chains (priority 0), which would reject the Service for having no endpoints.
	nft -f - <<NFT
table ip $E2E_NFT_TABLE {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "$E2E_BRIDGE" ip daddr $E2E_KUBERNETES_SVC tcp dport 443 dnat to 127.0.0.1:$E2E_APISERVER_PORT
	}
	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr $E2E_KUBERNETES_SVC tcp dport 443 dnat to 127.0.0.1:$E2E_APISERVER_PORT
	}
}
NFT
	mkdir -p "$E2E_STATE/cni"
	cat >"$E2E_STATE/cni/10-podnet-e2e.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "podnet-e2e",
  "plugins": [{
    "type": "bridge", "bridge": "$E2E_BRIDGE", "isGateway": true, "ipMasq": false,
    "ipam": {
      "type": "host-local", "dataDir": "$E2E_STATE/cni-ipam",
      "ranges": [[{ "subnet": "$E2E_POD_SUBNET", "gateway": "$E2E_GATEWAY" }]],
      "routes": [{ "dst": "0.0.0.0/0" }]
    }
  }]
}
CNI
}

start_containerd() {
	mkdir -p "$E2E_RUN/containerd"
	cat >"$E2E_STATE/containerd.toml" <<TOML
version = 2
root = "$E2E_STATE/containerd"
state = "$E2E_RUN/containerd"
[grpc]
  address = "$E2E_CONTAINERD_SOCK"
[ttrpc]
  address = "$E2E_CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  # The workload image's "pause" command: nothing can be pulled here.
  sandbox_image = "$E2E_PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE in this VM: containerd must not lower oom_score_adj below its own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$E2E_CNI_BIN"
    conf_dir = "$E2E_STATE/cni"
  # A map entry replaces containerd's default one whole: spell out the runtime type too.
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    Root = "$E2E_RUN/runc"
TOML
	start_daemon containerd containerd --config "$E2E_STATE/containerd.toml"
}

# The node's address is the host's on the pod bridge (the kubelet refuses a loopback node IP);
# the kubelet itself listens on loopback only, so `kubectl logs` does not work: pod logs are
# files under $E2E_STATE/pod-logs, copied to $E2E_LOGS at teardown.
start_kubelet() {
	mkdir -p "$E2E_STATE/kubelet" "$E2E_STATE/pod-logs"
	cat >"$E2E_STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This VM's hybrid cgroup v1 host: the kubelet otherwise refuses to start.
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
# Inside the job's own cgroup: pod processes stay tracked and die with the job.
cgroupRoot: $E2E_CGROUP_ROOT
address: 127.0.0.1
port: $E2E_KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $E2E_KUBELET_HEALTHZ_PORT
authentication: { anonymous: { enabled: true }, webhook: { enabled: false } }
authorization: { mode: AlwaysAllow }
containerRuntimeEndpoint: unix://$E2E_CONTAINERD_SOCK
podLogsDir: $E2E_STATE/pod-logs
resolvConf: /etc/resolv.conf
# A busy shared disk must not evict the test's pods.
evictionHard: { memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%" }
imageGCHighThresholdPercent: 100
# kube-proxy runs in nftables mode, which needs none of the kubelet's iptables chains.
makeIPTablesUtilChains: false
YAML
	start_daemon kubelet "$KUBE_BIN/kubelet" --config "$E2E_STATE/kubelet.yaml" \
		--kubeconfig "$E2E_STATE/kubeconfig" --root-dir "$E2E_STATE/kubelet" \
		--hostname-override "$E2E_NODE" --node-ip "$E2E_GATEWAY"
}

# kube-proxy in nftables mode, for the DNAT of Services that podnet's service_backends reads.
# The conntrack sysctls stay as the host has them (0 = leave as is: kube-proxy would otherwise
# raise nf_conntrack_max and the TCP timeouts for good), and both its listeners stay on loopback.
# Pod-to-Service-to-pod on one bridge relies on bridged replies reaching the host's conntrack
# (br_netfilter, net.bridge.bridge-nf-call-iptables=1), which this kernel has built in and on.
start_kube_proxy() {
	cat >"$E2E_STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: { kubeconfig: "$E2E_STATE/kubeconfig" }
hostnameOverride: $E2E_NODE
clusterCIDR: $E2E_POD_SUBNET
healthzBindAddress: 127.0.0.1:$E2E_KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$E2E_KUBE_PROXY_METRICS_PORT
conntrack: { maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
YAML
	start_daemon kube-proxy "$KUBE_BIN/kube-proxy" --config "$E2E_STATE/kube-proxy.yaml"
}

# One cgroup per hierarchy at $E2E_CGROUP_ROOT: the kubelet checks that its cgroupRoot exists.
make_cgroup_root() {
	local h
	for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
		[ -e "$h/cgroup.procs" ] || continue
		mkdir -p "$h$E2E_CGROUP_ROOT"
	done
}
