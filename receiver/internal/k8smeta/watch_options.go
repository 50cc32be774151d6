package k8smeta

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// What the API server is asked to send, kept to what the Store keeps. Every node runs a Store,
// so each byte here is sent once per node per change: see bench/results/*-issue17-apiserver-load.md.
const (
	// peerPodSelector leaves out, on the API server, the pods transformPeerPod would keep no
	// address of: finished pods (their IP may be reused), and pods with no IP yet (pending: the
	// watch sends them once they have one, as an ADDED event). A pod leaving the selection
	// (finishing) arrives as a DELETED event. hostNetwork pods are sent, though their IP is the
	// node's and names no pod: they tell the node's address (NodeAddress) where they are all a
	// node runs (a kubeadm control plane's static pods, kube-proxy, the CNI's agent), a few per
	// node.
	peerPodSelector = "status.phase!=Succeeded,status.phase!=Failed,status.podIP!="
	// serviceSelector leaves out headless and ExternalName Services: they have no ClusterIP.
	serviceSelector = "spec.clusterIP!=None,spec.type!=ExternalName"
)

// protobufConfig returns a copy of cfg that speaks protobuf, as kubelets and kube-proxy do:
// pods, Services and EndpointSlices are built-in types, served as protobuf by every API
// server; JSON stays accepted as a fallback (an aggregated or proxying server that only speaks
// JSON). client-go's default is JSON, which is larger on the wire and costs the API server
// more to encode for each watcher.
func protobufConfig(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.ContentType = runtime.ContentTypeProtobuf
	out.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return out
}
