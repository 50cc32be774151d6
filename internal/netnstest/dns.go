package netnstest

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSZone is the only domain a test DNS server answers for; anything else is refused, so no
// query is ever forwarded anywhere.
const DNSZone = "podnet.test"

// DNSServer is an authoritative-and-recursive-looking DNS server for *.podnet.test, listening
// on UDP and TCP port 53 at a pod's addresses. It answers as a recursive resolver would: a
// name with a CNAME gets the CNAME, then the target's records (the whole chain in one answer).
type DNSServer struct {
	mu      sync.Mutex
	records map[string][]DNSRecord // by lower-case name without the trailing dot
}

// DNSRecord is one record of the zone: an address (A or AAAA by its family) or, with Target
// set, a CNAME.
type DNSRecord struct {
	Addr   netip.Addr
	Target string
	TTL    uint32
}

// StartDNSServer listens on port 53 at the pod's IPv4 and IPv6 addresses until the test ends.
func (p *Pod) StartDNSServer(t testing.TB) *DNSServer {
	t.Helper()
	s := &DNSServer{records: map[string][]DNSRecord{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
		addr := netip.AddrPortFrom(a, 53).String()
		var pc net.PacketConn
		var ln net.Listener
		if err := p.Do(func() (err error) {
			if pc, err = net.ListenPacket("udp", addr); err != nil {
				return err
			}
			ln, err = net.Listen("tcp", addr)
			return err
		}); err != nil {
			t.Fatalf("DNS server at %s in %s: %v", addr, p.Name, err)
		}
		context.AfterFunc(ctx, func() { _ = pc.Close(); _ = ln.Close() })
		wg.Go(func() { s.serveUDP(pc) })
		wg.Go(func() { s.serveTCP(ln, &wg) })
	}
	return s
}

// Set replaces the records of name (relative names get .podnet.test appended).
func (s *DNSServer) Set(name string, records ...DNSRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[fqdn(name)] = records
}

func fqdn(name string) string {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if !strings.HasSuffix(name, "."+DNSZone) {
		name += "." + DNSZone
	}
	return name
}

func (s *DNSServer) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if out, ok := s.answer(buf[:n]); ok {
			_, _ = pc.WriteTo(out, from)
		}
	}
}

func (s *DNSServer) serveTCP(ln net.Listener, wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var n uint16
			for binary.Read(c, binary.BigEndian, &n) == nil {
				msg := make([]byte, n)
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				out, ok := s.answer(msg)
				if !ok {
					return
				}
				if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(out)))); err != nil {
					return
				}
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		})
	}
}

// answer builds the response to one query; false when the query does not parse.
func (s *DNSServer) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	resp := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	if name != DNSZone && !strings.HasSuffix(name, "."+DNSZone) {
		resp.RCode = dnsmessage.RCodeRefused
	}
	b := dnsmessage.NewBuilder(nil, resp)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	if resp.RCode == dnsmessage.RCodeSuccess {
		s.mu.Lock()
		defer s.mu.Unlock()
		for range 16 { // the chain, as a recursive resolver returns it
			var next string
			for _, r := range s.records[name] {
				rh := dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name + "."), Class: dnsmessage.ClassINET, TTL: r.TTL}
				switch {
				case r.Target != "":
					next = fqdn(r.Target)
					err = b.CNAMEResource(rh, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(next + ".")})
				case r.Addr.Is4() && q.Type == dnsmessage.TypeA:
					err = b.AResource(rh, dnsmessage.AResource{A: r.Addr.As4()})
				case r.Addr.Is6() && q.Type == dnsmessage.TypeAAAA:
					err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: r.Addr.As16()})
				}
				if err != nil {
					return nil, false
				}
			}
			if next == "" {
				break
			}
			name = next
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

// Resolver returns a resolver whose queries leave from the pod (their sockets are the pod's, as
// a process of the pod would make them) to the DNS server at server: Go's own resolver, A and
// AAAA queries in parallel, CNAMEs followed, no cache. With overTCP every query goes over TCP
// (as after a truncated answer), otherwise over UDP.
func (p *Pod) Resolver(server netip.Addr, overTCP bool) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if overTCP {
			network = "tcp"
		}
		var c net.Conn
		err := p.Do(func() (err error) {
			c, err = (&net.Dialer{}).DialContext(ctx, network, netip.AddrPortFrom(server, 53).String())
			return err
		})
		return c, err
	}}
}

// Resolve looks name up from the pod over UDP (A and AAAA), failing the test when it does not
// resolve.
func (p *Pod) Resolve(t testing.TB, server netip.Addr, name string) []netip.Addr {
	t.Helper()
	return p.resolve(t, server, name, false)
}

// ResolveTCP is Resolve over TCP.
func (p *Pod) ResolveTCP(t testing.TB, server netip.Addr, name string) []netip.Addr {
	t.Helper()
	return p.resolve(t, server, name, true)
}

func (p *Pod) resolve(t testing.TB, server netip.Addr, name string, overTCP bool) []netip.Addr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := p.Resolver(server, overTCP).LookupNetIP(ctx, "ip", fqdn(name)+".")
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			t.Fatalf("resolving %s from %s: %v", name, p.Name, dnsErr)
		}
		t.Fatalf("resolving %s from %s: %v", name, p.Name, err)
	}
	return addrs
}
