// Package fifomap is a map that keeps only its most recent entries: for what must outlive its
// source for a while (a deleted pod's names, a departed cgroup's pod) and stay bounded.
package fifomap // import "github.com/podnet/podnet/internal/fifomap"

import "sync"

// Map keeps at most max entries; adding one more drops the oldest. Safe for concurrent use.
type Map[K comparable, V any] struct {
	mu    sync.RWMutex
	byKey map[K]V
	order []K // a ring of the keys in the order they were added, the oldest at next once full
	next  int
	max   int
}

// New returns an empty Map of at most size entries (at least one).
func New[K comparable, V any](size int) *Map[K, V] {
	return &Map[K, V]{byKey: map[K]V{}, max: max(size, 1)}
}

// Add keeps v for k, unless k is kept already (the first value stays).
func (m *Map[K, V]) Add(k K, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byKey[k]; !ok {
		m.addLocked(k, v)
	}
}

func (m *Map[K, V]) addLocked(k K, v V) {
	if len(m.order) == m.max {
		delete(m.byKey, m.order[m.next])
		m.order[m.next] = k
	} else {
		m.order = append(m.order, k)
	}
	m.next = (m.next + 1) % m.max
	m.byKey[k] = v
}

// Put keeps v for k, replacing the value kept for k if there is one (which keeps its place
// among the oldest); for keys that are reused, where the latest value is the one to name.
func (m *Map[K, V]) Put(k K, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byKey[k]; ok {
		m.byKey[k] = v
		return
	}
	m.addLocked(k, v)
}

// Get returns the value kept for k.
func (m *Map[K, V]) Get(k K) (V, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v, ok := m.byKey[k]
	return v, ok
}

// Len is how many entries are kept.
func (m *Map[K, V]) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.byKey)
}
