package procscan

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Config configures a Scanner. Zero values select the defaults.
type Config struct {
	// ProcRoot is the host's procfs: /proc on the node, /hostfs/proc in a container that
	// mounts the host's root at /hostfs (with hostPID, so that pid 1 is the host's init).
	ProcRoot string
	// CgroupRoot is where the host's cgroup2 hierarchy is mounted, as seen by this process.
	// Empty: detected from pid 1's mount table and translated under the host root that
	// ProcRoot sits in (/hostfs/proc → /hostfs/sys/fs/cgroup).
	CgroupRoot string
	// RefreshInterval is the period of full rescans, which also retire exited processes.
	RefreshInterval time.Duration
	// MinRescanInterval bounds how often lookups of unknown keys can trigger a rescan.
	MinRescanInterval time.Duration
	// Logger receives one warning per degraded condition, never one per process or lookup.
	Logger *zap.Logger
}

const (
	defaultProcRoot          = "/proc"
	defaultRefreshInterval   = 10 * time.Second
	defaultMinRescanInterval = time.Second
)

// Scanner maps sockets' network namespaces and cgroups to pods. Lookup is safe for
// concurrent use and never waits for a scan; misses on unknown keys schedule a rescan instead,
// because a scan takes milliseconds and Lookup runs on the event read loop, where stalling
// means losing kernel events. A cgroup newer than the snapshot is opened by id on the spot (a
// few system calls), so a new pod's first connection is attributed; an unknown namespace
// alone leaves its event unattributed, and later events of the same socket find it.
type Scanner struct {
	cfg    Config
	walker walker
	logger *zap.Logger
	snap   atomic.Pointer[snapshot]
	stats  counters
	// resolve names cgroups newer than snap between scans.
	resolve resolver
	// gone names pod cgroups older than snap: their processes left.
	gone departed
	// births names pod cgroups made since snap, also once removed (nil: no cgroup2, no inotify).
	births *births

	rescan chan struct{} // capacity 1: concurrent misses coalesce into one rescan
	misses misses        // which unknown keys asked for it
	// ctx lives from New to Stop: it ends the refresh loop and interrupts its scans.
	ctx        context.Context
	cancel     context.CancelFunc
	startOnce  sync.Once
	wg         sync.WaitGroup
	warnDenied sync.Once
}

// New checks the proc root and locates the cgroup2 hierarchy. Without a cgroup2 mount (a
// cgroup v1-only host) it attributes by network namespace only, and says so once.
func New(cfg Config) (*Scanner, error) {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = defaultProcRoot
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = defaultRefreshInterval
	}
	if cfg.MinRescanInterval <= 0 {
		cfg.MinRescanInterval = defaultMinRescanInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := CheckProcRoot(cfg.ProcRoot); err != nil {
		return nil, err
	}
	fs, err := detectCgroupFS(cfg.ProcRoot, cfg.CgroupRoot)
	if err != nil && !errors.Is(err, errNoCgroup2) {
		return nil, err
	}
	s := &Scanner{
		cfg:    cfg,
		walker: walker{procRoot: cfg.ProcRoot},
		logger: cfg.Logger,
		rescan: make(chan struct{}, 1),
		gone:   newDeparted(),
	}
	if err != nil {
		s.logger.Warn("no cgroup2 hierarchy: sockets are attributed by network namespace only, hostNetwork pods not at all", zap.Error(err))
	} else {
		s.walker.cgroups = &fs
		s.resolve.fs = &fs
		if fs.belowRoot() {
			s.logger.Warn("the cgroup root is a cgroup below its hierarchy's root (it has cgroup.type, which the root has not): "+
				"pods whose cgroups are outside it are not attributed by cgroup; set cgroup_root to the host's cgroup2 mount "+
				"(e.g. /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host), or mount the host's / at /hostfs",
				zap.String("cgroup_root", fs.dir))
		}
	}
	s.resolve.logger = s.logger
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start scans once, so that attribution works from the first event, then refreshes in the
// background until Stop. ctx bounds the first scan only.
func (s *Scanner) Start(ctx context.Context) error {
	err := errors.New("procscan: Start called twice")
	s.startOnce.Do(func() {
		if s.resolve.fs != nil {
			s.births = newBirths(s.resolve.fs, s.logger)
			s.walker.births = s.births
		}
		if err = s.scan(ctx); err != nil {
			return
		}
		s.wg.Add(1)
		go s.loop()
	})
	return err
}

// Stop ends the refresh loop and waits for it. It is safe before Start and more than once.
func (s *Scanner) Stop() {
	s.cancel()
	s.wg.Wait()
	s.births.stop()
}

// Lookup returns the workload owning a socket from its network-namespace inode and cgroup v2
// id, as the BPF side reads them; zero means unread. A cgroup the snapshot knows costs no
// allocation; a newer one is opened by id once (a new pod's first connection), bounded by
// maxResolved until the next scan.
func (s *Scanner) Lookup(netnsIno uint32, cgroupID uint64) (Ref, bool) {
	snap := s.snap.Load()
	if snap == nil {
		return Ref{}, false
	}
	if _, seen := snap.cgroups[cgroupID]; !seen && cgroupID != 0 {
		if ref, ok := s.gone.Get(cgroupID); ok {
			return ref, true // not by its namespace: a new pod may have its inode
		}
		if ref, ok := s.births.get(cgroupID); ok {
			return ref, true // made and removed between two scans: as recorded when made
		}
	}
	ref, ok, unknown, byNetns := snap.lookup(netnsIno, cgroupID)
	if byNetns && s.births.podGone(ref.PodUID) {
		// Its pod's cgroup was removed since the scan: the namespace's inode, freed with it,
		// may be a new pod's already (busy nodes reuse inodes at once). Unnamed rather than
		// misnamed, and the rescan this asks for learns who has it now.
		ref, ok, unknown = Ref{}, false, true
	}
	if unknown {
		if _, seen := snap.cgroups[cgroupID]; cgroupID != 0 && snap.cgroupsResolvable && !seen {
			r, resolved, removed := s.resolve.lookup(cgroupID)
			switch {
			case resolved && r.PodUID != "":
				ref, ok = r, true
			case removed:
				// Removed before any scan or lookup saw it (a short-lived pod): not named by its
				// network namespace, whose inode may be the next pod's already (or was the
				// last one's when the snapshot was taken). Unnamed rather than misnamed.
				ref, ok = Ref{}, false
			}
		}
		if s.misses.ask(snap, key{netnsIno, cgroupID}) {
			select {
			case s.rescan <- struct{}{}:
			default:
			}
		}
	}
	return ref, ok
}

func (s *Scanner) loop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.RefreshInterval)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		case <-s.rescan:
			if !s.sleep(s.cfg.MinRescanInterval - time.Since(last)) {
				return
			}
			s.stats.rescans.Add(1)
		}
		last = time.Now()
		// A failed refresh keeps the previous snapshot; it is counted for telemetry and the
		// next tick retries. s.ctx makes Stop interrupt a scan of a slow /proc.
		_ = s.scan(s.ctx)
	}
}

// sleep waits d, or returns false when stopped first.
func (s *Scanner) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Scanner) scan(ctx context.Context) error {
	asked := s.misses.take()
	begin := time.Now()
	res, err := s.walker.scan(ctx, s.snap.Load())
	s.stats.observe(time.Since(begin), err, res.denied)
	if err != nil {
		return fmt.Errorf("scanning %s: %w", s.cfg.ProcRoot, err)
	}
	if res.denied > 0 {
		s.warnDenied.Do(func() {
			s.logger.Warn("some processes' network namespaces are unreadable; their sockets stay unattributed",
				zap.Int("processes", res.denied), zap.String("why", ptraceAdvice()), zap.Error(res.firstDenied))
		})
	}
	settle(asked, s.snap.Load(), res.snap)
	s.gone.keep(s.snap.Load(), res.snap, s.resolve.take())
	s.snap.Store(res.snap)
	return nil
}
