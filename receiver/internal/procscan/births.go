package procscan

import (
	"errors"
	"os"
	"path"
	"strings"
	"sync"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/fifomap"
)

// maxBirths bounds the pod cgroups recorded as they were made: as many as departed keeps, for
// the same reason (a node's pods' containers, with room for a burst of short-lived ones).
const maxBirths = maxDeparted

// births records each pod cgroup's pod when the cgroup is made (inotify on the kubepods tree),
// so that one made and removed between two scans (a Job's pod, a crash-looping container) still
// names its pod at its events, which are read after it is gone: nothing else can tell what a
// removed cgroup was. Watched: the kubepods directories (where pod cgroups are made), each
// pod's directory (where its containers' are) and each container's (crun's sub-cgroup), found by
// the scans' walk of the hierarchy; a watch per living pod and container, so the inotify
// watches stay a few hundred per node. A removed
// directory's watch is removed when its parent's watch reports the removal: cgroupfs (kernfs)
// sends the removed directory's own watch nothing, not even IN_IGNORED, and keeps it.
type births struct {
	fs     *cgroupFS
	fd     int      // the inotify instance (watches are added to it)
	file   *os.File // fd, read through Go's poller: Close ends a read (Fd() would make it blocking)
	logger *zap.Logger
	born   *fifomap.Map[uint64, Ref]
	// podsGone are pods whose own cgroup directory was removed (all their processes gone):
	// their network namespaces' inodes are free for new pods, so a snapshot's namespace entry
	// naming one of them is stale. Pod UIDs are never reused.
	podsGone *fifomap.Map[string, struct{}]
	done     chan struct{}

	mu       sync.Mutex
	watched  map[string]int32 // path from the hierarchy root → watch descriptor
	paths    map[int32]string // watch descriptor → path
	warnFull sync.Once
	warnLost sync.Once
}

// newBirths starts watching for cgroups made below fs, or returns nil (and says why, once)
// when the kernel gives no inotify instance.
func newBirths(fs *cgroupFS, logger *zap.Logger) *births {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		logger.Warn("no inotify instance: a pod cgroup made and removed between two scans leaves its events unattributed", zap.Error(err))
		return nil
	}
	b := &births{
		fs:       fs,
		fd:       fd,
		file:     os.NewFile(uintptr(fd), "inotify"), // non-blocking: Go's poller waits, Close wakes it
		logger:   logger,
		born:     fifomap.New[uint64, Ref](maxBirths),
		podsGone: fifomap.New[string, struct{}](maxBirths),
		done:     make(chan struct{}),
		watched:  map[string]int32{},
		paths:    map[int32]string{},
	}
	go b.read()
	return b
}

// get returns the pod of a cgroup recorded at its making.
func (b *births) get(id uint64) (Ref, bool) {
	if b == nil {
		return Ref{}, false
	}
	return b.born.Get(id)
}

// podGone says whether a pod's own cgroup directory was removed since podnet began watching
// its kubepods directory.
func (b *births) podGone(uid string) bool {
	if b == nil || uid == "" {
		return false
	}
	_, gone := b.podsGone.Get(uid)
	return gone
}

// consider watches dir (a path from the hierarchy root, as the walk visits it, with what
// ParseCgroupPath made of it) if pod cgroups are made in it: a kubepods directory (kubepods,
// kubepods.slice and the QoS levels below it), or a pod's own directory (its containers). The
// walk visits a directory before what is in it, so what was made before the watch began is
// the walk's to see.
func (b *births) consider(dir string, ref Ref) {
	if b != nil && bornIn(dir, ref) && !b.isWatched(dir) {
		b.watch(dir)
	}
}

func (b *births) isWatched(dir string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.watched[dir]
	return ok
}

// bornIn says whether pod or container cgroups are made directly in dir: a pod's directory (or
// one in it that is no container's, which costs a watch and finds nothing), a container's own
// (crun with the systemd driver runs the container's processes in a "container" cgroup in it,
// which ParseCgroupPath names as the container: found by an independent review, a short-lived
// one's events unattributed; a watch that finds nothing under other runtimes), or a kubepods one.
func bornIn(dir string, ref Ref) bool {
	if ref.PodUID != "" {
		if ref.ContainerID == "" {
			return true
		}
		_, _, own := containerSegment(path.Base(dir))
		return own
	}
	parent, last := path.Split(dir)
	if strings.HasPrefix(last, "kubepods") || strings.HasSuffix(last, ".slice") && strings.Contains(last, "kubepods") {
		return true // kubepods.slice, kubepods-burstable.slice, kubepods (cgroupfs driver)
	}
	return (last == "burstable" || last == "besteffort") && path.Base(parent) == "kubepods"
}

// watch adds dir's inotify watch; it says whether the watch is on.
func (b *births) watch(dir string) bool {
	wd, err := unix.InotifyAddWatch(b.fd, b.fs.dir+dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_ONLYDIR)
	if err != nil {
		if errors.Is(err, unix.ENOSPC) {
			b.warnFull.Do(func() {
				b.logger.Warn("inotify watch limit reached (fs.inotify.max_user_watches): pod cgroups made and removed between two scans may leave their events unattributed", zap.Error(err))
			})
		}
		return false // removed meanwhile, or no room: the scans still see what lives long enough
	}
	b.mu.Lock()
	b.watched[dir] = int32(wd)
	b.paths[int32(wd)] = dir
	b.mu.Unlock()
	return true
}

// made records a new cgroup's pod (its id is its directory's inode) and watches it when pods'
// or containers' cgroups are made in it.
func (b *births) made(dir string) {
	var st unix.Stat_t
	if unix.Stat(b.fs.dir+dir, &st) != nil {
		return // removed already: too short-lived to be seen
	}
	ref, _ := ParseCgroupPath(dir)
	if ref.PodUID != "" {
		b.born.Add(st.Ino, ref)
	}
	if !bornIn(dir, ref) || b.isWatched(dir) || !b.watch(dir) {
		return
	}
	// What was made in it before its watch began (a container right after its pod).
	entries, err := os.ReadDir(b.fs.dir + dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			b.made(path.Join(dir, e.Name()))
		}
	}
}

// read handles the instance's events until the file is closed.
func (b *births) read() {
	defer close(b.done)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := b.file.Read(buf)
		if err != nil {
			return // closed (stop)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			b.handle(ev.Wd, ev.Mask, strings.TrimRight(string(name), "\x00"))
		}
	}
}

func (b *births) handle(wd int32, mask uint32, name string) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		b.warnLost.Do(func() {
			b.logger.Warn("inotify queue overflowed (fs.inotify.max_queued_events): some pod cgroups made meanwhile were not recorded; those removed before a scan leave their events unattributed")
		})
		return
	}
	b.mu.Lock()
	dir, ok := b.paths[wd]
	if ok && mask&unix.IN_IGNORED != 0 { // the watch is gone (removed below, or its directory elsewhere)
		b.forget(wd, dir)
	}
	if ok && mask&unix.IN_DELETE != 0 && mask&unix.IN_ISDIR != 0 {
		// A directory in a watched one was removed: its own watch, if any, goes too.
		child := path.Join(dir, name)
		// Only the pod's own directory (a child whose pod is not its parent's) says the pod
		// is gone, not a non-container directory in it (CRI-O's crio-conmon-<id>.scope).
		if ref, _ := ParseCgroupPath(child); ref.PodUID != "" && ref.ContainerID == "" && podOf(dir) != ref.PodUID {
			b.podsGone.Add(ref.PodUID, struct{}{})
		}
		if cwd, watched := b.watched[child]; watched {
			_, _ = unix.InotifyRmWatch(b.fd, uint32(cwd))
			b.forget(cwd, child)
		}
	}
	b.mu.Unlock()
	if ok && mask&unix.IN_CREATE != 0 && mask&unix.IN_ISDIR != 0 {
		b.made(path.Join(dir, name))
	}
}

// forget drops a watch from the maps; b.mu is held.
func (b *births) forget(wd int32, dir string) {
	delete(b.paths, wd)
	delete(b.watched, dir)
}

// stop ends the watching and waits for the reader.
func (b *births) stop() {
	if b == nil {
		return
	}
	_ = b.file.Close()
	<-b.done
}

func podOf(dir string) string {
	ref, _ := ParseCgroupPath(dir)
	return ref.PodUID
}
