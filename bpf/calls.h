/* SPDX-License-Identifier: Apache-2.0 */
/* A thread's connect() in flight (struct connect_call): kept in the thread's own storage
 * (connect_tasks) where the kernel allows it, else in connect_calls keyed by pid_tgid. Every
 * hook that asks runs in the calling thread: sys_enter_connect, sys_exit_connect, and the state
 * and error hooks inside that call. */
#ifndef PODNET_CALLS_H
#define PODNET_CALLS_H

#include "podnet.h"
#include "maps.h"

/* Set by the loader: connect_tasks works here (probed); connect_calls otherwise. */
const volatile bool task_calls = false;

/* sys_enter_connect: a new call on this thread, with its arguments. */
static __always_inline void connect_call_begin(__u64 uaddr, __s32 fd, __u32 addrlen)
{
	struct connect_call call = { .uaddr = uaddr, .fd = fd, .addrlen = addrlen, .active = 1 };
	struct connect_call *slot;
	__u64 id;

	if (task_calls) {
		slot = bpf_task_storage_get(&connect_tasks, bpf_get_current_task_btf(), 0,
					    BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (slot)
			*slot = call;
		return;
	}
	id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&connect_calls, &id, &call, BPF_ANY);
}

/* This thread's connect() in progress, or NULL. */
static __always_inline struct connect_call *this_threads_connect(void)
{
	struct connect_call *call;
	__u64 id;

	if (task_calls) {
		call = bpf_task_storage_get(&connect_tasks, bpf_get_current_task_btf(), 0, 0);
		return call && call->active ? call : NULL;
	}
	id = bpf_get_current_pid_tgid();
	return bpf_map_lookup_elem(&connect_calls, &id);
}

/* sys_exit_connect: the call is over (call is this_threads_connect()'s). */
static __always_inline void connect_call_end(struct connect_call *call)
{
	__u64 id;

	if (task_calls) {
		call->active = 0;
		return;
	}
	id = bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&connect_calls, &id);
}

#endif
