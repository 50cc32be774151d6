// Package kubetest runs a real etcd and kube-apiserver on loopback for tests that need the
// Kubernetes API: informers, field selectors, RBAC and API-server outages are exercised
// against the real thing instead of a fake clientset, which implements none of them.
//
// There is no kubelet, scheduler or controller-manager: pods are bound by setting
// spec.nodeName, their IPs are written through the status subresource, and Service
// ClusterIPs are only API objects. Import this package from _test.go files only.
package kubetest
