//go:build linux && (amd64 || arm64)

package kernel

import (
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	ebpffeatures "github.com/cilium/ebpf/features"

	"github.com/podnet/podnet/bpf"
)

// taskStorageForTracing says whether tracepoint programs may keep data in a task's own storage
// (bpf_task_storage_get with bpf_get_current_task_btf: 5.12+). Probed once: the answer does not
// change while podnet runs.
var taskStorageForTracing = sync.OnceValue(func() bool {
	return ebpffeatures.HaveMapType(ebpf.TaskStorage) == nil &&
		ebpffeatures.HaveProgramHelper(ebpf.TracePoint, asm.FnTaskStorageGet) == nil &&
		ebpffeatures.HaveProgramHelper(ebpf.TracePoint, asm.FnGetCurrentTaskBtf) == nil
})

// setConnectCalls chooses where a connect() in flight is kept (bpf/calls.h): the thread's own
// storage, which costs a connect() no map insert and delete, where the kernel has it; otherwise
// the pid_tgid-keyed hash, with connect_tasks a one-entry placeholder of a type every kernel can
// create (the programs' code that names it is then dead, and never verified).
func setConnectCalls(spec *ebpf.CollectionSpec, opts Options) error {
	inTask := taskStorageForTracing() && !opts.noTaskCalls
	if err := spec.Variables[bpf.PodnetVarTaskCalls].Set(inTask); err != nil {
		return err
	}
	if !inTask {
		m := spec.Maps[bpf.PodnetMapConnectTasks]
		m.Type, m.Flags, m.MaxEntries = ebpf.Hash, 0, 1
	}
	return nil
}
