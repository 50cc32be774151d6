package main

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// Another podnet attached only between the first and the last sample is seen.
func TestWatchObserversMidRun(t *testing.T) {
	var calls atomic.Int32
	sampled := make(chan int32, 1)
	count := func() int {
		n := calls.Add(1)
		select {
		case sampled <- n:
		default:
		}
		if n == 3 { // attached for the third sample only
			return 1
		}
		return 0
	}
	stop := watchObservers(count, time.Millisecond)
	for n := range sampled {
		if n >= 4 {
			break
		}
	}
	assert.Equal(t, 1, stop())
	assert.Equal(t, 1, stop(), "a second stop returns the same")
}
