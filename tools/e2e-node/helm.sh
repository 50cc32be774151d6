# shellcheck shell=bash
# Sourced by run.sh when PODNET_HELM_CHART names a checkout of the upstream
# opentelemetry-collector chart: replaces the manifest's DaemonSet with the chart's, installed
# with examples/helm/values.yaml and the same two substitutions as the manifest (the local
# image, the sink as OTLP endpoint), then asserts again on that DaemonSet's records only.
helm_phase() { # output client-uid server-uid
	local output=$1 cache helm release=podnet
	shift
	cache=${PODNET_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podnet}
	helm=$cache/bin/helm-v3.22.0 # installed by tools/helm/check.sh (make helm-check)
	[ -x "$helm" ] || tools/helm/check.sh >/dev/null
	kubectl -n podnet delete daemonset podnet --cascade=foreground --timeout=60s
	wait_for "manifest DaemonSet's pod gone" 60 \
		bash -c "[ -z \"\$('$KUBE_BIN/kubectl' --kubeconfig '$E2E_STATE/kubeconfig' -n podnet get pods -o name)\" ]"
	local since
	since=$(date +%s) # records of events from here on are the Helm DaemonSet's alone
	"$helm" --kubeconfig "$E2E_STATE/kubeconfig" install "$release" "$PODNET_HELM_CHART" -n podnet \
		-f examples/helm/values.yaml \
		--set image.repository="${PODNET_IMAGE%:*}" --set image.tag="${PODNET_IMAGE##*:}" \
		--set config.exporters.otlp_grpc.endpoint="$E2E_GATEWAY:$E2E_SINK_PORT"
	local ds
	ds=$(kubectl -n podnet get daemonset -l "app.kubernetes.io/instance=$release" -o name)
	wait_for "Helm DaemonSet ready" 180 kubectl -n podnet rollout status "$ds" --timeout=5s
	wait_for "Helm DaemonSet's records naming both pods" 120 \
		tools/e2e-node/assert.sh "$output" "$1" e2e-client "$2" e2e-server "$since"
	tools/e2e-node/assert.sh "$output" "$1" e2e-client "$2" e2e-server "$since"
}
