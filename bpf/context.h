/* SPDX-License-Identifier: Apache-2.0 */
/* Which of the two state programs a run belongs to.
 *
 * The kernel skips a tp_btf program's run when the same program is already running on that CPU
 * (its per-program recursion guard; the skip is counted as a recursion miss). That happens when
 * a TCP state change in softirq (packet receive, timers) interrupts one made in process context
 * (connect, close). So two instances of the state program are attached, and every run is the job
 * of exactly one of them, by where it runs:
 *   - state_tp_btf:     runs on the current task's stack (process context, and softirqs that
 *                       ksoftirqd runs as a task). Nothing else interrupts it but interrupts.
 *   - state_tp_btf_irq: runs on an interrupt stack (softirq after a hardware interrupt, or after
 *                       local_bh_enable, on kernels that switch stacks for it: x86-64 5.12+,
 *                       arm64). Softirqs do not nest and hardware interrupts change no TCP state,
 *                       so it never interrupts itself.
 * A run of the first one that the kernel skips is therefore always the second one's job, which it
 * does: such a skip loses nothing. Where softirqs run on the task's stack (other architectures,
 * PREEMPT_RT) both see "task" and a skip is a loss again, still counted. */
#ifndef PODNET_CONTEXT_H
#define PODNET_CONTEXT_H

/* Smallest kernel stack (THREAD_SIZE) on x86-64 and arm64. A larger one (KASAN) can only make
 * a deep process-context run look like an interrupt one: then the other program does it, and a
 * skip becomes a counted loss, never a double report. */
#define PODNET_TASK_STACK_SIZE (16 << 10)

/* Whether this program runs on the current task's stack. Compares the BPF frame pointer with the
 * task's stack: pointer comparisons need CAP_PERFMON, which podnet needs anyway. */
static __always_inline bool on_task_stack(void)
{
	struct task_struct *task;
	__u64 fp, stack;

	asm volatile("%0 = r10" : "=r"(fp));
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)) {
		task = bpf_get_current_task_btf();
		stack = (__u64)task->stack;
	} else {
		task = (struct task_struct *)bpf_get_current_task();
		stack = (__u64)BPF_CORE_READ(task, stack);
	}
	return fp > stack && fp <= stack + PODNET_TASK_STACK_SIZE;
}

#endif
