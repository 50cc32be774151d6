package kernel

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podnet/podnet/internal/netnstest"
)

// The alternative to bpf/nat.h that issue 14 asked to compare: asking the node's conntrack over
// netlink for each connection to a Service (a user-space lookup at ingest). It needs the same
// privilege (CAP_NET_ADMIN in the node's namespace) and costs one request and reply per lookup;
// this measures that round trip for an entry that exists (ns/op is its CPU: both syscalls run
// on the calling thread). Compare with the in-kernel cost per Service connection in
// BenchmarkKernelCostPerConnection and bench/'s loadgen-service.
func BenchmarkConntrackNetlinkLookup(b *testing.B) {
	node := netnstest.NewNode(b, 130)
	client, backend := node.AddPod(), node.AddPod()
	vip, target := netip.MustParseAddrPort("10.96.0.50:80"), netip.AddrPortFrom(backend.IPv4, 8080)
	node.Nft(netnstest.KubeProxyRules(netnstest.Service{Name: "web", VIP: vip, Backends: []netip.AddrPort{target}}))
	var ln net.Listener
	if err := backend.Do(func() (err error) { ln, err = net.Listen("tcp", target.String()); return err }); err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var conn net.Conn
	if err := client.Do(func() (err error) { conn, err = net.Dial("tcp", vip.String()); return err }); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.TCPAddr).AddrPort()

	err := node.Do(func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		req := conntrackGet(local, vip)
		reply := make([]byte, 8192)
		b.ResetTimer()
		for range b.N {
			if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
				return err
			}
			n, _, err := unix.Recvfrom(fd, reply, 0)
			if err != nil {
				return err
			}
			// A conntrack entry (IPCTNL_MSG_CT_NEW), not an error: the lookup found it.
			if n < unix.NLMSG_HDRLEN || binary.NativeEndian.Uint16(reply[4:6]) != unix.NFNL_SUBSYS_CTNETLINK<<8 {
				b.Fatalf("conntrack lookup: message type %#x", binary.NativeEndian.Uint16(reply[4:6]))
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// linux/netfilter/nfnetlink_conntrack.h (not in x/sys).
const (
	ipctnlMsgCtGet  = 1
	ctaTupleOrig    = 1
	ctaTupleIP      = 1
	ctaTupleProto   = 2
	ctaIPv4Src      = 1
	ctaIPv4Dst      = 2
	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3
)

// conntrackGet is an IPCTNL_MSG_CT_GET request for the IPv4 TCP entry whose original tuple is
// src → dst.
func conntrackGet(src, dst netip.AddrPort) []byte {
	attr := func(typ uint16, data []byte) []byte {
		a := binary.NativeEndian.AppendUint16(nil, uint16(4+len(data)))
		a = binary.NativeEndian.AppendUint16(a, typ)
		a = append(a, data...)
		for len(a)%4 != 0 {
			a = append(a, 0)
		}
		return a
	}
	const nested = unix.NLA_F_NESTED
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	ip := append(attr(ctaIPv4Src, s4[:]), attr(ctaIPv4Dst, d4[:])...)
	proto := append(attr(ctaProtoNum, []byte{unix.IPPROTO_TCP}),
		attr(ctaProtoSrcPort, binary.BigEndian.AppendUint16(nil, src.Port()))...)
	proto = append(proto, attr(ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, dst.Port()))...)
	tuple := attr(ctaTupleOrig|nested, append(attr(ctaTupleIP|nested, ip), attr(ctaTupleProto|nested, proto)...))
	body := append([]byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0}, tuple...) // nfgenmsg, then the tuple
	msg := binary.NativeEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+len(body)))
	msg = binary.NativeEndian.AppendUint16(msg, unix.NFNL_SUBSYS_CTNETLINK<<8|ipctnlMsgCtGet)
	msg = binary.NativeEndian.AppendUint16(msg, unix.NLM_F_REQUEST)
	msg = binary.NativeEndian.AppendUint32(msg, 1) // sequence
	msg = binary.NativeEndian.AppendUint32(msg, 0) // port: the kernel
	return append(msg, body...)
}
