#!/usr/bin/env bash
# Checks the examples against the collector they are for:
#  1. `otelcol-podnet validate` on examples/local, examples/kubernetes, the ConfigMap in
#     examples/kubernetes/daemonset.yaml and examples/gateway (always);
#  2. `helm template` of the upstream opentelemetry-collector chart with examples/helm/values.yaml,
#     then `validate` on the collector config the chart rendered, plus the security settings;
#     then the gateway's values and the agent overlay (gateway.sh).
# The chart is in no registry this project's machines can reach: an unmodified copy sits in
# ../shared/upstream next to the repository (see chart_dir below). helm itself is installed into
# ~/.cache/podnet if absent.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/helm/lib.sh

otelcol=bin/otelcol-podnet
[ -x "$otelcol" ] || { echo "helm-check: $otelcol missing: run make otelcol first" >&2; exit 1; }
# Set by Kubernetes in the pod; validate only needs them to expand.
export K8S_NODE_NAME=node-1 MY_POD_IP=127.0.0.1 OTEL_K8S_NODE_NAME=node-1 OTEL_K8S_NODE_IP=127.0.0.1 \
	OTEL_K8S_NAMESPACE=podnet OTEL_K8S_POD_NAME=podnet-x OTEL_K8S_POD_IP=127.0.0.1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

validate examples/local/config.yaml examples/local/config.yaml
validate examples/kubernetes/collector-config.yaml examples/kubernetes/collector-config.yaml
block config.yaml examples/kubernetes/daemonset.yaml >"$scratch/daemonset-config.yaml"
[ -s "$scratch/daemonset-config.yaml" ] || { echo "helm-check: FAIL: no config.yaml in daemonset.yaml's ConfigMap" >&2; exit 1; }
validate "$scratch/daemonset-config.yaml" "the ConfigMap in examples/kubernetes/daemonset.yaml"

for f in agent-config gateway-config; do
	validate "examples/gateway/$f.yaml" "examples/gateway/$f.yaml"
done
block config.yaml examples/gateway/gateway.yaml | diff -u examples/gateway/gateway-config.yaml - ||
	fail "the ConfigMap in examples/gateway/gateway.yaml is not examples/gateway/gateway-config.yaml"
echo "helm-check: ok: the ConfigMap in examples/gateway/gateway.yaml is gateway-config.yaml"

# Which chart: PODNET_HELM_CHART if set (another version or checkout), else the copy in
# ../shared/upstream. CI runs .ci/run in a fresh clone with a copy of shared/ laid beside it,
# so there the chart is always at ../shared: when it is missing in CI something is wrong with
# the machine, and the render checks must not quietly stop running, so CI fails. No absolute
# fallback (such as this machine's own shared/): it would hide exactly that, and tie the
# project to one machine's layout. Outside CI (a clone elsewhere, a user) a missing chart is
# a loud SKIP of step 2 only.
chart_dir=../shared/upstream/helm-charts/opentelemetry-collector
chart=${PODNET_HELM_CHART:-$chart_dir}
if [ ! -f "$chart/Chart.yaml" ]; then
	[ -z "${PODNET_HELM_CHART:-}" ] || fail "PODNET_HELM_CHART=$PODNET_HELM_CHART holds no Chart.yaml"
	[ -z "${CI:-}" ] || fail "no chart at $chart_dir (CI lays shared/ beside the clone) and PODNET_HELM_CHART unset: the Helm render checks cannot run"
	echo "helm-check: SKIP: ************************************************************************"
	echo "helm-check: SKIP: Helm chart renders NOT checked: no chart at $chart_dir"
	echo "helm-check: SKIP: (from $(pwd)); set PODNET_HELM_CHART to a checkout of"
	echo "helm-check: SKIP:   open-telemetry/opentelemetry-helm-charts/charts/opentelemetry-collector"
	echo "helm-check: SKIP: ************************************************************************"
	exit 0
fi
echo "helm-check: chart $chart"

helm_version=v3.22.0
cache=${PODNET_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podnet}
helm=$cache/bin/helm-$helm_version
if [ ! -x "$helm" ]; then
	echo "helm-check: installing helm $helm_version into $cache/bin"
	mkdir -p "$cache/gobin"
	GOBIN=$cache/gobin go install "helm.sh/helm/v3/cmd/helm@$helm_version"
	install -D "$cache/gobin/helm" "$helm"
fi

"$helm" template podnet "$chart" --namespace podnet -f examples/helm/values.yaml >"$scratch/rendered.yaml"
echo "helm-check: ok: chart $(awk '/^version:/ {print $2}' "$chart/Chart.yaml") renders with examples/helm/values.yaml"
block relay "$scratch/rendered.yaml" >"$scratch/relay.yaml"
[ -s "$scratch/relay.yaml" ] || { echo "helm-check: FAIL: no relay config in the rendered chart" >&2; exit 1; }
validate "$scratch/relay.yaml" "the collector config rendered by the chart"

# The settings the values exist for must survive the chart's templates.
for want in 'hostPID: true' 'readOnlyRootFilesystem: true' 'privileged: false' '- ALL' \
	'- BPF' '- PERFMON' 'mountPath: /hostfs/proc' 'kind: DaemonSet' 'serviceAccountName: podnet' \
	'app.kubernetes.io/name: podnet' '- operator: Exists'; do
	grep -qF -- "$want" "$scratch/rendered.yaml" || { echo "helm-check: FAIL: rendered chart lacks '$want'" >&2; exit 1; }
done
! grep -q 'privileged: true' "$scratch/rendered.yaml" || { echo "helm-check: FAIL: rendered chart is privileged" >&2; exit 1; }
echo "helm-check: ok: rendered DaemonSet has hostPID, read-only root, dropped capabilities, no privileged"

# GC settings (see the comment in examples/kubernetes/daemonset.yaml): the chart must render
# GOGC and GOMEMLIMIT from the values (not the chart's useGOMEMLIMIT: 80% leaves no room for
# the BPF maps), equal to the plain manifests' so both deployments behave the same.
env_value() { grep -A1 -E "^ *- name: $1\$" "$2" | sed -n 's/^ *value: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' | head -1; }
for var in GOGC GOMEMLIMIT; do
	rendered=$(env_value "$var" "$scratch/rendered.yaml")
	plain=$(env_value "$var" examples/kubernetes/daemonset.yaml)
	[ -n "$rendered" ] || { echo "helm-check: FAIL: rendered chart sets no $var" >&2; exit 1; }
	[ "$rendered" = "$plain" ] || { echo "helm-check: FAIL: $var is '$rendered' in the chart, '$plain' in examples/kubernetes/daemonset.yaml" >&2; exit 1; }
done
echo "helm-check: ok: GOGC and GOMEMLIMIT render as in the plain manifests"

# The service_backends overlay adds host networking and NET_ADMIN and keeps everything else.
"$helm" template podnet "$chart" --namespace podnet -f examples/helm/values.yaml \
	-f examples/helm/values-service-backends.yaml >"$scratch/backends.yaml"
for want in 'hostNetwork: true' 'dnsPolicy: ClusterFirstWithHostNet' '- NET_ADMIN' 'hostPID: true' \
	'readOnlyRootFilesystem: true' '- ALL' '- BPF' '- PERFMON'; do
	grep -qF -- "$want" "$scratch/backends.yaml" || { echo "helm-check: FAIL: chart with values-service-backends.yaml lacks '$want'" >&2; exit 1; }
done
! grep -q 'NET_ADMIN' "$scratch/rendered.yaml" || { echo "helm-check: FAIL: the default values grant NET_ADMIN" >&2; exit 1; }
echo "helm-check: ok: values-service-backends.yaml adds hostNetwork and NET_ADMIN, the default values neither"

. tools/helm/gateway.sh
