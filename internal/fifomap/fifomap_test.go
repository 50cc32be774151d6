package fifomap

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestKeepsTheMostRecent(t *testing.T) {
	m := New[int, string](3)
	for i := range 5 {
		m.Add(i, "v")
	}
	m.Add(4, "again") // kept already: no room taken, the first value stays
	assert.Equal(t, 3, m.Len())
	for i, want := range []bool{false, false, true, true, true} {
		_, ok := m.Get(i)
		assert.Equal(t, want, ok, i)
	}
	v, _ := m.Get(4)
	assert.Equal(t, "v", v)
}

// Put replaces what Add keeps: the latest value of a reused key.
func TestPutReplaces(t *testing.T) {
	m := New[string, int](2)
	m.Add("a", 1)
	m.Add("a", 2)
	v, _ := m.Get("a")
	assert.Equal(t, 1, v, "Add keeps the first")
	m.Put("a", 3)
	v, _ = m.Get("a")
	assert.Equal(t, 3, v, "Put the latest")
	m.Put("b", 4)
	m.Put("c", 5) // a, the oldest, goes
	_, ok := m.Get("a")
	assert.False(t, ok)
	assert.Equal(t, 2, m.Len())
}
