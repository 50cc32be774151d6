package agentproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// EnableBPFStats turns on the kernel's per-program run statistics (run_time_ns, run_cnt) until
// the returned closer is closed. It is the BPF_ENABLE_STATS counterpart of writing 1 to
// /proc/sys/kernel/bpf_stats_enabled: the kernel counts the holders and returns to the
// previous setting when the last one closes, also when the harness dies without cleaning up.
// While on, every BPF program run on the machine also reads the clock twice.
func EnableBPFStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enabling BPF run statistics: %w", err)
	}
	return c, nil
}

// BPFProgram is one BPF program's run statistics so far.
type BPFProgram struct {
	Name    string // as the kernel keeps it (15 bytes)
	RunTime time.Duration
	Runs    uint64
}

// BPF returns the run statistics of every BPF program the agent holds (a program fd, or a
// link fd whose fdinfo names its program): podnet-agent runs nothing but podnet, so these are
// podnet's programs. They count only while statistics are enabled (EnableBPFStats).
func (a *Proc) BPF() (map[ebpf.ProgramID]BPFProgram, error) {
	dir := filepath.Join("/proc", strconv.Itoa(a.cmd.Process.Pid), "fdinfo")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	held := map[ebpf.ProgramID]BPFProgram{}
	for _, e := range entries {
		id, ok := heldProgram(filepath.Join(dir, e.Name()))
		if !ok {
			continue
		}
		if _, seen := held[id]; seen {
			continue
		}
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		info, infoErr := p.Info()
		stats, statsErr := p.Stats()
		_ = p.Close()
		if infoErr != nil || statsErr != nil {
			return nil, fmt.Errorf("BPF program %d: %w", id, errors.Join(infoErr, statsErr))
		}
		held[id] = BPFProgram{Name: info.Name, RunTime: stats.Runtime, Runs: stats.RunCount}
	}
	return held, nil
}

// heldProgram is the program id in one fdinfo file ("prog_id:"), if the fd refers to one.
func heldProgram(fdinfo string) (ebpf.ProgramID, bool) {
	f, err := os.Open(fdinfo)
	if err != nil {
		return 0, false // closed meanwhile
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "prog_id:"); ok {
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			return ebpf.ProgramID(id), err == nil
		}
	}
	return 0, false
}
