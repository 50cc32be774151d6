package receiver

import (
	"context"

	"go.opentelemetry.io/collector/component"

	"github.com/podnet/podnet/receiver/internal/attribution"
	"github.com/podnet/podnet/receiver/internal/procscan"
)

// startAttribution starts what names the local end of each socket (a scan of the node's
// /proc and cgroups) and, when configured, the Kubernetes metadata that names pods and peers.
func (r *podnetReceiver) startAttribution(_ component.Host) error {
	scanner, err := procscan.New(procscan.Config{
		ProcRoot:        r.cfg.ProcRoot,
		CgroupRoot:      r.cfg.CgroupRoot,
		RefreshInterval: r.cfg.AttributionRefresh,
		Logger:          r.set.Logger,
	})
	if err != nil {
		return err
	}
	if err := scanner.Start(context.Background()); err != nil {
		scanner.Stop()
		return err
	}
	r.attributor = attribution.NewNode(scanner, nil)
	r.stopAttr = scanner.Stop
	return nil
}
