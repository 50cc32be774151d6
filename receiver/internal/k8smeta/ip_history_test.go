package k8smeta

import (
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"k8s.io/apimachinery/pkg/types"
)

func pod(name string) Peer {
	return Peer{Kind: PeerPod, Name: name, Namespace: "shop", UID: "uid-" + name}
}

// An address held by a, then nobody, then b; then b terminating and c taking over: each time
// is named by who held it then (nobody between holders), each answer with how long it holds.
func TestIPHistoryNamesWhoHeldTheAddressThen(t *testing.T) {
	h := newIPHistory()
	const ip = "10.0.0.7"
	h.claim(ip, pod("a"), math.MinInt64, false, 0) // listed at start
	h.release(ip, pod("a"), 100)
	h.claim(ip, pod("b"), 150, false, 160) // created at 150, seen at 160
	h.claim(ip, pod("b"), 150, true, 300)  // terminating
	h.claim(ip, pod("c"), 250, false, 400) // its successor: b's holding ends when c is seen
	h.release(ip, pod("b"), 500)           // b's deletion, after: changes nothing

	for _, tc := range []struct {
		at   int64
		want Peer
		span Span
		ok   bool
	}{
		{50, pod("a"), Span{From: always.From, To: 100}, true},
		{120, Peer{}, Span{From: 100, To: 150}, false}, // a connection to nobody stays nobody's
		{150, pod("b"), Span{From: 150, To: 400}, true},
		{399, pod("b"), Span{From: 150, To: 400}, true},
		{400, pod("c"), Span{From: 400, To: always.To}, true},
	} {
		got, span, ok := h.ownerAt(ip, tc.at)
		assert.Equal(t, tc.ok, ok, "at %d", tc.at)
		assert.Equal(t, tc.want, got, "at %d", tc.at)
		assert.Equal(t, tc.span, span, "at %d", tc.at)
		assert.True(t, span.Holds(tc.at))
	}
	_, span, ok := h.ownerAt("10.0.0.8", 150)
	assert.False(t, ok)
	assert.Equal(t, always, span, "an address nobody held")
}

// A pod that leaves every EndpointSlice and comes back holds the address again: its deletion
// later ends that second holding (a first end must not stand for the last).
func TestIPHistoryHoldingsResume(t *testing.T) {
	h := newIPHistory()
	const ip = "10.0.0.7"
	h.claim(ip, pod("a"), math.MinInt64, false, 0)
	h.release(ip, pod("a"), 100) // its slice deleted
	h.claim(ip, pod("a"), 0, false, 200)
	h.release(ip, pod("a"), 300) // deleted
	h.claim(ip, pod("b"), 350, false, 350)
	for at, want := range map[int64]string{50: "a", 250: "a", 299: "a", 400: "b"} {
		got, _, _ := h.ownerAt(ip, at)
		assert.Equal(t, want, got.Name, "at %d", at)
	}
	_, _, ok := h.ownerAt(ip, 320)
	assert.False(t, ok)
}

// The history keeps the most recent maxEndedHoldings ended holdings of the whole cluster; the
// oldest go first, address by address, and connections begun in them are named by nobody.
func TestIPHistoryIsBounded(t *testing.T) {
	h := newIPHistory()
	for i := range maxEndedHoldings + 10 {
		ip := fmt.Sprintf("10.0.%d.%d", i/250, i%250)
		h.claim(ip, pod(strconv.Itoa(i)), math.MinInt64, false, 0)
		h.release(ip, pod(strconv.Itoa(i)), int64(1000+i))
	}
	n := 0
	for _, hs := range h.byKey {
		n += len(hs)
	}
	assert.Equal(t, maxEndedHoldings, n)
	_, _, ok := h.ownerAt("10.0.0.0", 0)
	assert.False(t, ok, "the oldest holding went first")
	got, _, ok := h.ownerAt("10.0.0.10", 0)
	assert.True(t, ok)
	assert.Equal(t, pod("10"), got, "the eleventh stays")

	// Several holdings of one address leave oldest first; a holding not ended stays.
	h = newIPHistory()
	h.claim("10.9.9.9", pod("x"), math.MinInt64, false, 0)
	h.release("10.9.9.9", pod("x"), 1)
	h.claim("10.9.9.9", pod("y"), 1, false, 1)
	h.release("10.9.9.9", pod("y"), 2)
	h.claim("10.9.9.9", pod("z"), 3, false, 3)
	for i := range maxEndedHoldings - 1 {
		ip := fmt.Sprintf("10.1.%d.%d", i/250, i%250)
		h.claim(ip, pod(strconv.Itoa(i)), math.MinInt64, false, 0)
		h.release(ip, pod(strconv.Itoa(i)), int64(10+i))
	}
	_, _, ok = h.ownerAt("10.9.9.9", 0)
	assert.False(t, ok, "x's holding made room")
	got, _, _ = h.ownerAt("10.9.9.9", 1)
	assert.Equal(t, pod("y"), got)
	got, _, _ = h.ownerAt("10.9.9.9", 5)
	assert.Equal(t, pod("z"), got)
}

// Deleted local pods are remembered, the most recent maxGonePods of them.
func TestGonePodsAreBounded(t *testing.T) {
	g := newGonePods()
	for i := range maxGonePods + 1 {
		p := &localPod{}
		p.UID = types.UID(strconv.Itoa(i))
		g.Add(string(p.UID), p)
	}
	assert.Equal(t, maxGonePods, g.Len())
	_, ok := g.Get("0")
	assert.False(t, ok, "the oldest made room")
	_, ok = g.Get(strconv.Itoa(maxGonePods))
	assert.True(t, ok)
}

// A terminating owner updated after its successor took its address over (the kubelet writes its
// containers' terminated states, then its deletion) does not take the address back, before or
// after the successor terminates in turn: a connection to the successor is the successor's.
func TestIPHistoryHandedOverAddressIsNotTakenBack(t *testing.T) {
	h := newIPHistory()
	const ip = "10.0.0.7"
	h.claim(ip, pod("db-2"), 100, false, 100)
	h.claim(ip, pod("db-2"), 100, true, 200)  // terminating
	h.claim(ip, pod("db-3"), 250, false, 300) // its successor: db-2's holding ends at 300
	h.claim(ip, pod("db-2"), 100, true, 400)  // db-2's status updated
	h.claim(ip, pod("db-3"), 250, true, 600)  // db-3 terminating in turn
	h.claim(ip, pod("db-2"), 100, true, 700)  // db-2's final deletion (MODIFIED)
	for _, at := range []int64{350, 500, 650, 800} {
		got, _, ok := h.ownerAt(ip, at)
		assert.True(t, ok)
		assert.Equal(t, pod("db-3"), got, "at %d", at)
	}
	got, _, _ := h.ownerAt(ip, 250)
	assert.Equal(t, pod("db-2"), got, "before the hand-over")
}

// A claim dated from its owner's creation (before the claim is seen) starts no earlier than the
// last holding the history forgot ended: that address may have been the forgotten holding's.
func TestIPHistoryClaimsStartAfterWhatItForgot(t *testing.T) {
	h := newIPHistory()
	for i := range maxEndedHoldings + 1 { // the first one ended is forgotten
		ip := "10.1." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
		h.claim(ip, pod("p"+strconv.Itoa(i)), int64(i), false, int64(i))
		h.release(ip, pod("p"+strconv.Itoa(i)), int64(1000+i))
	}
	const reused = "10.1.0.0" // its holding, ended at 1000, was forgotten
	h.claim(reused, pod("new"), 500, false, 2000000)
	_, _, ok := h.ownerAt(reused, 900)
	assert.False(t, ok, "not named by the new owner before the forgotten holding ended")
	got, _, ok := h.ownerAt(reused, 1500)
	assert.True(t, ok)
	assert.Equal(t, pod("new"), got)
}
