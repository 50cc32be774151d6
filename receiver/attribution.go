//go:build linux && (amd64 || arm64)

package podnetreceiver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"

	"github.com/podnet/podnet/internal/metadata"
	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/k8smeta"
	"github.com/podnet/podnet/receiver/internal/procscan"
)

// startedAttribution is what startAttribution started: the attributor, how to stop it, and,
// with Kubernetes, how to wait (bounded) for the metadata's first listing, which Start does once
// the programs are attached, so that connections during the wait are recorded and the first
// records named (nil: nothing to wait for). It returns ctx's error when Start's context ended
// the wait.
type startedAttribution struct {
	attr       attribution.Attributor
	stop       func()
	awaitNames func(ctx context.Context) error
}

// startNodeAttribution starts what names the local end of each socket (a scan of the node's
// /proc and cgroups) and, when configured, the Kubernetes metadata that names pods and peers.
func (r *podnetReceiver) startNodeAttribution(host component.Host, tb *metadata.TelemetryBuilder) (startedAttribution, error) {
	scanner, err := procscan.New(procscan.Config{
		ProcRoot:        r.cfg.ProcRoot,
		CgroupRoot:      r.cfg.CgroupRoot,
		RefreshInterval: r.cfg.AttributionRefresh,
		Logger:          r.set.Logger,
	})
	if err != nil {
		return startedAttribution{}, err
	}
	if err := scanner.Start(context.Background()); err != nil {
		scanner.Stop()
		return startedAttribution{}, err
	}
	store, awaitNames, err := r.startKubernetes(host, tb)
	if err != nil {
		scanner.Stop()
		return startedAttribution{}, err
	}
	if store == nil {
		return startedAttribution{attr: attribution.NewNode(scanner, nil), stop: scanner.Stop}, nil
	}
	return startedAttribution{
		attr: attribution.NewNode(scanner, kubeMetadata{Store: store, nodes: r.cfg.serviceGraphOn()}), stop: func() { store.Stop(); scanner.Stop() },
		awaitNames: awaitNames,
	}, nil
}

// startKubernetes starts the metadata store's informers, or returns nil when auth_type is
// none, and how to wait (bounded) for their first listing. An API server that is down
// is not an error: podnet keeps emitting without names, reports a
// recoverable status, and names again once the informers catch up.
func (r *podnetReceiver) startKubernetes(host component.Host, tb *metadata.TelemetryBuilder) (*k8smeta.Store, func(context.Context) error, error) {
	api := r.cfg.Kubernetes
	if api.AuthType == k8smeta.AuthTypeNone {
		return nil, nil, nil
	}
	rc, err := api.RESTConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes (auth_type %s): %w", api.AuthType, err)
	}
	store, err := k8smeta.NewStore(rc, k8smeta.Options{
		NodeName:    r.cfg.NodeName,
		PeerPods:    api.PeerPods,
		SyncTimeout: r.kubeSyncTimeout,
		UserAgent:   fmt.Sprintf("podnet/%s (%s/%s) node/%s", r.set.BuildInfo.Version, runtime.GOOS, runtime.GOARCH, r.cfg.NodeName),
		OnStatus: func(err error) {
			if err != nil {
				r.set.Logger.Warn("podnet: Kubernetes metadata unavailable (the API server is away, or refuses the collector's account); events keep flowing with the names already known", zap.Error(err))
				componentstatus.ReportStatus(host, componentstatus.NewRecoverableErrorEvent(err))
				return
			}
			r.set.Logger.Info("podnet: Kubernetes API reachable again")
			componentstatus.ReportStatus(host, componentstatus.NewEvent(componentstatus.StatusOK))
		},
		// Once: failed connects to a Service then never say "no ready endpoints".
		OnCallFailed: func() { tb.PodnetKubernetesAPIErrors.Add(context.Background(), 1) },
		OnOptionalDenied: func(err error) {
			r.set.Logger.Warn("podnet: cannot read EndpointSlices, so failed connects to a Service without ready endpoints "+
				"are not marked podnet.peer.k8s.service.no_ready_endpoints", zap.Error(err))
		},
	})
	if err != nil {
		return nil, nil, errors.Join(errors.New("kubernetes metadata"), err)
	}
	tb.PodnetKubernetesAPIErrors.Add(context.Background(), 0) // exists from Start, for alerts on its rate
	// Only the informers start here: Start attaches the kernel programs before it waits for
	// their first listing, so that connections during the wait are recorded.
	store.Run()
	return store, func(ctx context.Context) error {
		if store.WaitSynced(ctx) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Named, as what is listed already names (found by an independent check: an account
		// without Services said "without pod names" and named pods).
		r.set.Logger.Warn("podnet: Kubernetes metadata not synced yet; starting with what is listed, the rest names once the API server lists it",
			zap.Strings("not_listed", store.Unlisted()))
		return nil
	}, nil
}

// kubeMetadata adapts the informer store to what attribution asks. nodes: whether anything
// reads Peer.Node (the service graph alone), which costs an index lookup per unnamed address.
type kubeMetadata struct {
	*k8smeta.Store
	nodes bool
}

func (m kubeMetadata) Pod(cgroupUID string) (attribution.PodID, bool) {
	p, ok := m.PodByUID(cgroupUID)
	return attribution.PodID{UID: p.UID, Name: p.Name, Namespace: p.Namespace, Workload: p.Workload}, ok
}

// Peer names addr's pod or Service, or (when the service graph asks) says that it is a node's
// (a hostNetwork pod's, a node process's, or a pod's masqueraded to its node's address).
func (m kubeMetadata) Peer(addr netip.Addr, at int64) (attribution.Peer, attribution.Span, bool) {
	p, span, ok := m.PeerAt(addr, at)
	if !ok {
		return attribution.Peer{Node: m.nodes && m.NodeAddress(addr)}, span, false
	}
	if p.Kind == k8smeta.PeerService {
		return attribution.Peer{ServiceName: p.Name, Namespace: p.Namespace}, span, true
	}
	return attribution.Peer{PodName: p.Name, PodUID: p.UID, Namespace: p.Namespace, Workload: p.Workload}, span, true
}
