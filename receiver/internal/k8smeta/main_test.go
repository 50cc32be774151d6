package k8smeta

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must leave no informer, reflector or connection goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
