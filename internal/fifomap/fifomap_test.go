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
