# shellcheck shell=bash
# Sourced by run.sh: the Service check, on the cluster's kube-proxy (nftables mode). Turns on
# service_backends with examples/kubernetes/service-backends.patch.yaml, runs two backend pods
# behind a ClusterIP Service and a client of that ClusterIP (manifests/service*.yaml), then
# asserts with assert-service.sh that the client's records name the Service and the backend pod
# that served each connection.
service_phase() { # output
	local output=$1 service_ip client_uid client_ip backends check
	# This VM's pid 1 (its guest agent) keeps /proc/1/ns unreadable even to root, so the default
	# node_netns (<proc_root>/1/ns/net) cannot be opened here; with hostNetwork, podnet's own
	# netns is the node's: name that instead. Elsewhere the ConfigMap stays as shipped.
	if ! readlink /proc/1/ns/net >/dev/null 2>&1; then
		echo "e2e-node: /proc/1/ns/net unreadable: service_backends.node_netns = /hostfs/proc/self/ns/net"
		sed -n '1,/^---$/p' "$E2E_STATE/daemonset.yaml" |
			sed '/^        proc_root: /a\        service_backends: { node_netns: /hostfs/proc/self/ns/net }' |
			kubectl apply -f -
	fi
	# As the patch's own header tells users; service_backends stays at its default (auto), so the
	# example as shipped is what turns it on.
	kubectl -n podnet patch daemonset podnet --patch-file examples/kubernetes/service-backends.patch.yaml
	wait_for "podnet DaemonSet rolled out with hostNetwork" 180 \
		kubectl -n podnet rollout status daemonset/podnet --timeout=5s
	kubectl apply -f tools/e2e-node/manifests/service.yaml
	wait_for "e2e-backend Deployment available" 120 \
		kubectl -n podnet-e2e rollout status deployment/e2e-backend --timeout=5s
	service_ip=$(kubectl -n podnet-e2e get service e2e-backend -o jsonpath='{.spec.clusterIP}')
	kubectl apply -f <(sed "s#SERVICE_IP#$service_ip#" tools/e2e-node/manifests/service-client.yaml)
	wait_for "Service client pod Ready" 120 \
		kubectl -n podnet-e2e wait --for=condition=Ready pod/e2e-service-client --timeout=5s
	client_uid=$(uid e2e-service-client)
	client_ip=$(kubectl -n podnet-e2e get pod e2e-service-client -o jsonpath='{.status.podIP}')
	# uid,name,IP of each backend pod, as assert-service.sh takes them.
	read -ra backends <<<"$(kubectl -n podnet-e2e get pods -l app.kubernetes.io/name=e2e-backend \
		-o jsonpath='{range .items[*]}{.metadata.uid},{.metadata.name},{.status.podIP} {end}')"
	echo "e2e-node: e2e-service-client $client_ip -> Service e2e-backend $service_ip:80 -> ${backends[*]}"
	echo "e2e-node: kube-proxy's map: $(nft list map ip kube-proxy service-ips | grep -o "$service_ip [^,}]*")"
	check=(tools/e2e-node/assert-service.sh "$output" "$client_uid" "$client_ip" e2e-backend "$service_ip" "${backends[@]}")
	if ! wait_for "records naming the Service and the backend pod that served each connection" 120 "${check[@]}"; then
		"${check[@]}" || true
		tail -n 30 "$E2E_LOGS/kube-proxy.log" "$E2E_STATE"/pod-logs/podnet_*/*/*.log || true
		exit 1
	fi
	"${check[@]}"
}
