/* SPDX-License-Identifier: Apache-2.0 */
/* How a connection ended (podnet.tcp.close.reason), and whether it ended abnormally (what
 * failure-biased sampling keeps), read at its CLOSE. */
#ifndef PODNET_CLOSE_REASON_H
#define PODNET_CLOSE_REASON_H

#include "podnet.h"
#include "sock.h"

/* Whether a connection leaving FIN_WAIT2 for CLOSE ended its FIN exchange: the peer's FIN came
 * (tcp_fin marks the socket SOCK_DONE, then hands it to a time-wait socket), or its application
 * had closed it (orphaned: SOCK_DEAD) and the kernel handed it to a time-wait socket to wait for
 * that FIN. Not so (found by an independent check: reported normal, the RST on the wire) the
 * application's abort of a socket it still holds after shutdown(SHUT_WR) — close() with unread
 * data or SO_LINGER 0 (both before close() orphans it), connect(AF_UNSPEC) — the kernel's
 * SOCK_DESTROY (ss -K, ECONNABORTED), or an orphan whose TCP_LINGER2 is negative: each sends a
 * reset. (An orphan's abort for data that came after its close is noted as a reset received,
 * on_reset_received: the kernel reports it through the same hook.) */
static __always_inline bool fin_wait2_ended_normally(struct sock *sk, int err, enum sock_read rd)
{
	unsigned long flags = sock_flags(sk, rd);
	int linger2;

	if (flags & SOCK_FLAG(SOCK_DONE)) /* fin_received */
		return true;
	if (err == ECONNABORTED || !(flags & SOCK_FLAG(SOCK_DEAD)))
		return false;
	if (rd) {
		struct tcp_sock *tp = tcp_sock_of(sk, rd);

		linger2 = tp ? tp->linger2 : 0;
	} else {
		linger2 = BPF_CORE_READ((struct tcp_sock *)sk, linger2);
	}
	return linger2 >= 0;
}

/* How an established connection ended (enum close_reason), at its CLOSE. A reset received is
 * noted before the close (on_reset_received), and also leaves sk_err ECONNRESET (EPIPE in
 * CLOSE_WAIT); a timeout leaves ETIMEDOUT. Otherwise the state it left says: the FIN exchange
 * ends in FIN_WAIT2, CLOSING or LAST_ACK, and a connection this end closes from ESTABLISHED,
 * CLOSE_WAIT or FIN_WAIT1 is reset by the kernel (it sends the RST right after the state change,
 * which is why the send is not watched); from FIN_WAIT2, fin_wait2_ended_normally tells. */
static __always_inline __u8 close_reason_of(struct sock *sk, int oldstate, const struct conn_info *ci, enum sock_read rd)
{
	int err = rd ? sk->sk_err : BPF_CORE_READ(sk, sk_err);

	if (ci->reset_received || err == ECONNRESET || err == EPIPE)
		return CLOSE_RESET_RECEIVED;
	/* A connection the kernel gave up on (retransmissions, keepalive, TCP_USER_TIMEOUT) has
	 * ETIMEDOUT, or the last ICMP error its retransmissions met instead (tcp_write_err takes
	 * sk_err_soft first): an unreachable peer timed out, it sent no reset. An ICMP error alone
	 * is no timeout: with IP_RECVERR it is put in sk_err at once and stays there until the
	 * application's next socket call, also when the connection recovered and ended with a FIN
	 * exchange (found by an independent check: reported a timeout). Nor is the application's
	 * abort (SO_LINGER 0, unread data) while retransmissions meet such errors (found by one: a
	 * reset sent reported a timeout): close() marks the socket shut down before it changes
	 * the state, the kernel's give-up (tcp_done) after; shutdown(SHUT_WR) would have left
	 * ESTABLISHED or CLOSE_WAIT. The give-up also copies sk_err_soft into sk_err. Read only when
	 * sk_err holds such an error. */
	if (err == ETIMEDOUT)
		return CLOSE_TIMEOUT;
	if ((err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN || err == ENONET) && giving_up(sk, rd) &&
	    err == (rd ? sk->sk_err_soft : BPF_CORE_READ(sk, sk_err_soft)) &&
	    !((oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT) && send_shut_down(sk, rd)))
		return CLOSE_TIMEOUT;
	if (oldstate == TCP_FIN_WAIT2)
		return fin_wait2_ended_normally(sk, err, rd) ? CLOSE_NORMAL : CLOSE_RESET_SENT;
	if (oldstate == TCP_CLOSING || oldstate == TCP_LAST_ACK)
		return CLOSE_NORMAL;
	return CLOSE_RESET_SENT;
}

/* Whether a connection ended abnormally (what failure-biased sampling keeps): its close reason
 * is not the FIN exchange, or it met a socket error or retransmitted on the way. Only read when
 * sampling is on. */
static __always_inline bool ended_abnormally(struct sock *sk, __u8 close_reason, enum sock_read rd)
{
	__u32 srtt, retrans;

	if (close_reason != CLOSE_NORMAL || (rd ? sk->sk_err : BPF_CORE_READ(sk, sk_err)))
		return true;
	tcp_rtt_retrans(sk, rd, &srtt, &retrans);
	return retrans > 0;
}

#endif /* PODNET_CLOSE_REASON_H */
