package kernel

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podnet/podnet/internal/netnstest"
)

// memoryLimitChild is the environment variable that makes this test binary load podnet in the
// hook mode it names and exit (TestMain; in the memory cgroup its parent put it in).
const memoryLimitChild = "PODNET_TEST_MEMORY_LIMIT_HOOKS"

// A collector whose memory limit cannot hold podnet's maps (charged to its memory cgroup) fails
// Start with an error that says to raise the limit or lower the setting, in the default hook
// mode too. It used to load the classic tracepoints instead, which need less memory, without a
// word but a skipped mode at Start (found by an independent review: they lose what tp_btf
// keeps), and to load everything again without the iterators after any failure, which the OOM
// killer ended. Limit: what the tracepoint mode takes, plus a little: tp_btf needs ~35 MB more
// for a table of 1M connections here.
func TestTooSmallAMemoryLimitFailsStart(t *testing.T) {
	netnstest.RequireRoot(t)
	peak := func(hooks HookMode, limit int64) (string, int64) {
		cg := newMemoryCgroup(t, limit)
		cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$0" && exec "$@"`, cg.procs, os.Args[0])
		cmd.Env = append(os.Environ(), memoryLimitChild+"="+string(hooks), "GOGC=20")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "the child ran to its end (not killed): %s", out)
		return string(out), cg.peak()
	}
	out, tracepoint := peak(HooksTracepoint, 0)
	require.Contains(t, out, "RESULT loaded", "the tracepoint mode loads without a limit")
	out, _ = peak(HooksAuto, tracepoint+5<<20)
	t.Logf("tracepoint mode's peak %d MiB; auto under %d MiB: %s", tracepoint>>20, (tracepoint+5<<20)>>20, result(out))
	assert.Contains(t, out, "RESULT error", "Start fails instead of loading the tracepoint mode")
	assert.Contains(t, out, "raise the collector's memory limit")
}

// memoryLimitChildRun is TestTooSmallAMemoryLimitFailsStart's child process (from TestMain):
// one Open in hooks, a table of 1M connections, with its result on stdout.
func memoryLimitChildRun(hooks string) {
	tr, err := Open(Options{Hooks: HookMode(hooks), RingBufferSize: 1 << 16, MaxTrackedConnections: 1 << 20, MaxAggregates: 1024, AggregateInKernel: true})
	if err != nil {
		fmt.Printf("RESULT error: %v\n", err)
		return
	}
	fmt.Printf("RESULT loaded: hooks %s\n", tr.Mode())
	_ = tr.Close()
}

func result(out string) string {
	if i := strings.Index(out, "RESULT"); i >= 0 {
		out = out[i:]
	}
	if i := strings.IndexByte(out, '\n'); i >= 0 {
		out = out[:i]
	}
	return out
}

// memoryCgroup is a memory cgroup of the test's (v2, or v1's memory controller), removed at
// its end.
type memoryCgroup struct {
	dir, procs, peakFile string
}

var memoryCgroups int // made so far: each its own name

func newMemoryCgroup(t *testing.T, limit int64) memoryCgroup {
	t.Helper()
	memoryCgroups++
	name := fmt.Sprintf("podnet-memtest-%d-%d", os.Getpid(), memoryCgroups)
	var cg memoryCgroup
	limitFile := ""
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		cg.dir = filepath.Join("/sys/fs/cgroup/memory", name)
		limitFile, cg.peakFile = "memory.limit_in_bytes", "memory.max_usage_in_bytes"
	} else {
		root, err := netnstest.Cgroup2Mount()
		require.NoError(t, err)
		cg.dir = filepath.Join(root, name)
		limitFile, cg.peakFile = "memory.max", "memory.peak"
	}
	require.NoError(t, os.Mkdir(cg.dir, 0o755))
	t.Cleanup(func() { _ = os.Remove(cg.dir) })
	cg.procs = filepath.Join(cg.dir, "cgroup.procs")
	if limit > 0 {
		require.NoError(t, os.WriteFile(filepath.Join(cg.dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644))
	}
	return cg
}

func (cg memoryCgroup) peak() int64 {
	b, err := os.ReadFile(filepath.Join(cg.dir, cg.peakFile))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}
