package examples

import "github.com/podnet/podnet/internal/netnstest"

// expected derives, from what curl and the pods say, every log record and metric value podnet
// must report for the test's traffic: per fetch a connect, an accept and two closes whose
// byte counts mirror curl's; one refused connect; cumulative sums of all that.
func expected(client, server *netnstest.Pod, serverPid int, fetches []netnstest.CurlResult, refused netnstest.CurlResult) ([]connRecord, map[string]int64) {
	ci, si := int64(client.NetnsInode()), int64(server.NetnsInode())
	cIP, sIP := client.IPv4.String(), server.IPv4.String()
	records := []connRecord{{
		Inode: ci, Event: "podnet.tcp.connect", Severity: "Warn", Role: "client", Local: cIP, Peer: sIP,
		PeerPort: closedPort, Pid: int64(refused.Pid), Executable: "curl", Error: "ECONNREFUSED",
		LocalPort: -1, // curl cannot tell this port; the test accepts any ephemeral one
	}}
	sums := map[string]int64{
		seriesKey(ci, "podnet.tcp.connections", "client", sIP, closedPort, "ECONNREFUSED"): 1,
		seriesKey(ci, "podnet.tcp.retransmits", "client", sIP, httpPort, ""):               0,
		seriesKey(si, "podnet.tcp.retransmits", "server", cIP, httpPort, ""):               0,
	}
	for _, f := range fetches {
		connect := connRecord{
			Inode: ci, Severity: "Info", Role: "client", Local: cIP, LocalPort: f.LocalPort,
			Peer: sIP, PeerPort: httpPort, Pid: int64(f.Pid), Executable: "curl",
		}
		accept := connRecord{
			Inode: si, Severity: "Info", Role: "server", Local: sIP, LocalPort: httpPort,
			Peer: cIP, PeerPort: f.LocalPort, Pid: int64(serverPid), Executable: "python3",
		}
		clientClose, serverClose := connect, accept
		clientClose.Sent, clientClose.Received = f.RequestBytes, f.ResponseBytes
		serverClose.Sent, serverClose.Received = f.ResponseBytes, f.RequestBytes
		connect.Event, accept.Event = "podnet.tcp.connect", "podnet.tcp.accept"
		clientClose.Event, serverClose.Event = "podnet.tcp.close", "podnet.tcp.close"
		records = append(records, connect, accept, clientClose, serverClose)

		for _, side := range []struct {
			inode      int64
			role, peer string
			sent, recv int64
		}{{ci, "client", sIP, f.RequestBytes, f.ResponseBytes}, {si, "server", cIP, f.ResponseBytes, f.RequestBytes}} {
			sums[seriesKey(side.inode, "podnet.tcp.connections", side.role, side.peer, httpPort, "")]++
			sums[seriesKey(side.inode, "podnet.tcp.connections.closed", side.role, side.peer, httpPort, "")]++
			sums[seriesKey(side.inode, "podnet.tcp.bytes_sent", side.role, side.peer, httpPort, "")] += side.sent
			sums[seriesKey(side.inode, "podnet.tcp.bytes_received", side.role, side.peer, httpPort, "")] += side.recv
		}
	}

	return records, sums
}
