package procscan

import "sync"

// maxFruitless bounds the keys remembered as not found by a scan: past it, further misses
// trigger rescans as before (rate-limited), so the bound costs time, never memory.
const maxFruitless = 1024

// key is what a socket is looked up by.
type key struct {
	netns  uint32
	cgroup uint64
}

// misses remembers the unknown keys that asked for a rescan, so that a scan can tell which
// of them it did not find either: a namespace with no process in it (its last process gone,
// its sockets still closing) or a cgroup no process is in is never found by a scan, and
// without this every event of it asks for another scan of the whole node, at most once per
// MinRescanInterval (what such a scan costs on a busy node: README, Scale, "A busy node").
// Such a key asks no more until a scan finds it or the bound is reached; the periodic
// refresh still finds it when a process appears.
type misses struct {
	mu    sync.Mutex
	asked map[key]struct{} // since the last scan
}

// ask records that k missed and says whether it may trigger a rescan: not when the current
// snapshot's scan already looked for it in vain.
func (m *misses) ask(snap *snapshot, k key) bool {
	if _, vain := snap.fruitless[k]; vain {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.asked == nil {
		m.asked = map[key]struct{}{}
	}
	if len(m.asked) < maxFruitless {
		m.asked[k] = struct{}{}
	}
	return true
}

// take returns the keys asked since the last take: a scan takes them before it walks /proc, so
// that a key first asked while it walks (a process it may have passed already) is settled by
// the next scan, not marked as not found by this one.
func (m *misses) take() map[key]struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	asked := m.asked
	m.asked = nil
	return asked
}

// settle gives a new snapshot the keys it did not find: those asked before its scan began and
// those the last scan did not find, still unknown now.
func settle(asked map[key]struct{}, prev, next *snapshot) {
	next.fruitless = map[key]struct{}{}
	add := func(k key) {
		if _, _, unknown, _ := next.lookup(k.netns, k.cgroup); unknown && len(next.fruitless) < maxFruitless {
			next.fruitless[k] = struct{}{}
		}
	}
	for k := range asked {
		add(k)
	}
	if prev != nil {
		for k := range prev.fruitless {
			add(k)
		}
	}
}
