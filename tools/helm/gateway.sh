# Sourced by check.sh once helm and the chart are there ($helm, $chart, $scratch, lib.sh):
# the chart as the gateway (examples/helm/values-gateway.yaml) and as agents sending to it
# (values.yaml + values-agent-to-gateway.yaml). The point of checking the two together: the
# agents' endpoint must be the Service the gateway release really renders.

gw=$scratch/gateway.yaml
"$helm" template podnet-gateway "$chart" --namespace podnet -f examples/helm/values-gateway.yaml >"$gw"
block relay "$gw" >"$scratch/gateway-relay.yaml"
[ -s "$scratch/gateway-relay.yaml" ] || fail "no relay config in the chart rendered with values-gateway.yaml"
validate "$scratch/gateway-relay.yaml" "the gateway config rendered by the chart"
require "$gw" "chart with values-gateway.yaml" 'kind: Deployment' 'replicas: 2' \
	'serviceAccountName: podnet-gateway' 'readOnlyRootFilesystem: true' 'runAsNonRoot: true' '- ALL' \
	'- pods' '- namespaces'
for bad in 'kind: DaemonSet' 'hostPID: true' 'hostNetwork: true' 'privileged: true'; do
	! grep -qF -- "$bad" "$gw" || fail "chart with values-gateway.yaml renders '$bad'"
done
# k8s_attributes must find pods by what podnet sets, never by the sender's address (the agent).
require "$scratch/gateway-relay.yaml" "gateway config" 'name: k8s.pod.uid' '- k8s_attributes'
! grep -q 'from: connection' "$scratch/gateway-relay.yaml" || fail "gateway associates pods by connection"
echo "helm-check: ok: values-gateway.yaml renders an unprivileged Deployment with k8s_attributes by k8s.pod.uid"

# The plain manifest and the chart give the gateway the same GOMEMLIMIT (80% of 512Mi).
[ "$(env_value GOMEMLIMIT "$gw")" = "$(env_value GOMEMLIMIT examples/gateway/gateway.yaml)" ] ||
	fail "GOMEMLIMIT differs between the chart with values-gateway.yaml and examples/gateway/gateway.yaml"

svc=$scratch/gateway-service.yaml
"$helm" template podnet-gateway "$chart" --namespace podnet -f examples/helm/values-gateway.yaml \
	--show-only templates/service.yaml >"$svc"
svc_name=$(awk '/^metadata:/ { m = 1 } m && /^  name:/ { print $2; exit }' "$svc")
svc_port=$(awk '/- name: otlp$/ { o = 1 } o && /^ *port:/ { print $2; exit }' "$svc")
[ -n "$svc_name" ] && [ -n "$svc_port" ] || fail "no otlp port in the gateway's rendered Service"
want_endpoint="$svc_name.podnet.svc.cluster.local:$svc_port"
# The plain manifests name the same Service.
require examples/gateway/gateway.yaml examples/gateway/gateway.yaml "name: $svc_name" "port: $svc_port"
require examples/gateway/agent-config.yaml examples/gateway/agent-config.yaml "endpoint: $want_endpoint"

agent=$scratch/agent.yaml
"$helm" template podnet "$chart" --namespace podnet -f examples/helm/values.yaml \
	-f examples/helm/values-agent-to-gateway.yaml >"$agent"
block relay "$agent" >"$scratch/agent-relay.yaml"
validate "$scratch/agent-relay.yaml" "the agent config rendered with values-agent-to-gateway.yaml"
require "$agent" "chart with values-agent-to-gateway.yaml" 'kind: DaemonSet' 'hostPID: true' '- BPF'
require "$scratch/agent-relay.yaml" "agent config" "endpoint: $want_endpoint" 'sending_queue:' 'retry_on_failure:'
! grep -qF -- '- k8s_attributes' "$scratch/agent-relay.yaml" || fail "the agent still runs k8s_attributes (the gateway does)"
! grep -qF -- '- prometheus' "$scratch/agent-relay.yaml" || fail "the agent still exports to prometheus (the gateway's remote write does)"
! grep -q 'containerPort: 9464' "$agent" || fail "the agent still opens the prometheus exporter's port"
echo "helm-check: ok: values-agent-to-gateway.yaml sends to the gateway's Service $want_endpoint, with a queue and retries, and no prometheus exporter"
