package k8smeta

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"k8s.io/apimachinery/pkg/types"
)

func pod(name string) Peer {
	return Peer{Kind: PeerPod, Name: name, Namespace: "shop", UID: "uid-" + name}
}

// An address held by a, then b, now by whoever the informers say: each time is named by who
// held it then, and each answer says how long it holds.
func TestIPHistoryNamesWhoHeldTheAddressThen(t *testing.T) {
	h := newIPHistory()
	h.end("10.0.0.7", pod("a"), 100)
	h.end("10.0.0.7", pod("b"), 200)
	h.end("10.0.0.7", pod("a"), 300) // a's deletion, after its successor took the address: ignored

	for _, tc := range []struct {
		at   int64
		want Peer
		span Span
		ok   bool
	}{
		{50, pod("a"), Span{always.From, 100}, true},
		{99, pod("a"), Span{always.From, 100}, true},
		{100, pod("b"), Span{100, 200}, true},
		{199, pod("b"), Span{100, 200}, true},
		{200, Peer{}, Span{200, always.To}, false}, // the current owner's, from the last hand-over
	} {
		got, span, ok := h.ownerAt("10.0.0.7", tc.at)
		assert.Equal(t, tc.ok, ok, "at %d", tc.at)
		assert.Equal(t, tc.want, got, "at %d", tc.at)
		assert.Equal(t, tc.span, span, "at %d", tc.at)
		assert.True(t, span.Holds(tc.at))
	}
	_, span, ok := h.ownerAt("10.0.0.8", 150)
	assert.False(t, ok)
	assert.Equal(t, always, span, "an address that never changed hands")
}

// The history keeps the most recent maxEndedHoldings hand-overs of the whole cluster; the
// oldest go first, address by address.
func TestIPHistoryIsBounded(t *testing.T) {
	h := newIPHistory()
	for i := range maxEndedHoldings + 10 {
		h.end(fmt.Sprintf("10.0.%d.%d", i/250, i%250), pod(fmt.Sprint(i)), int64(1000+i))
	}
	n := 0
	for _, hs := range h.ended {
		n += len(hs)
	}
	assert.Equal(t, maxEndedHoldings, n)
	_, _, ok := h.ownerAt("10.0.0.0", 0)
	assert.False(t, ok, "the oldest hand-over went first")
	got, _, ok := h.ownerAt("10.0.0.10", 0)
	assert.True(t, ok)
	assert.Equal(t, pod("10"), got, "the eleventh stays")

	// Several holdings of one address leave oldest first.
	h = newIPHistory()
	h.end("10.9.9.9", pod("x"), 1)
	h.end("10.9.9.9", pod("y"), 2)
	for i := range maxEndedHoldings - 1 {
		h.end(fmt.Sprintf("10.1.%d.%d", i/250, i%250), pod(fmt.Sprint(i)), int64(10+i))
	}
	got, span, ok := h.ownerAt("10.9.9.9", 0)
	assert.True(t, ok)
	assert.Equal(t, pod("y"), got, "x's holding made room; y's is the one left")
	assert.Equal(t, Span{always.From, 2}, span)
}

// Deleted local pods are remembered, the most recent maxGonePods of them.
func TestGonePodsAreBounded(t *testing.T) {
	g := newGonePods()
	for i := range maxGonePods + 1 {
		p := &localPod{}
		p.UID = types.UID(fmt.Sprint(i))
		g.add(p)
	}
	assert.Len(t, g.byUID, maxGonePods)
	_, ok := g.get("0")
	assert.False(t, ok, "the oldest made room")
	_, ok = g.get(fmt.Sprint(maxGonePods))
	assert.True(t, ok)
}
