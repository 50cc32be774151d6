package dnsnames

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// Answer is one address a response resolved, named by the question's name.
type Answer struct {
	Addr netip.Addr
	// Name is the queried name (lower case, no trailing dot), whatever CNAMEs led to Addr.
	Name string
	// TTL is how long the answer may be used, in seconds: the least TTL along the chain, since
	// a resolver's cache drops the chain when its first link expires.
	TTL uint32
}

// maxChain bounds how many CNAMEs are followed from the question to an address; resolvers
// themselves give up after 8-16 (a loop is a broken zone, never a valid answer).
const maxChain = 16

var (
	errNotResponse = errors.New("not a successful, whole DNS response")
	errNoQuestion  = errors.New("no question")
	errRDLength    = errors.New("an address record of the wrong length")
)

// Parse reads the answers of one DNS message (without TCP's length prefix). cut says the copy
// ended before the message did (podnet's copy limit, or a TCP message longer than its segment):
// such a message yields the answers before the cut. A whole message that does not parse yields
// none, as a resolver uses none of it. Records whose owner no CNAME chain
// from the question reaches are ignored, so a response can only name addresses for the name it
// answers. A truncated one (TC: the server's answer did not fit a UDP message) names nothing:
// resolvers discard it and ask again over TCP, whose answer is the one they use.
func Parse(msg []byte, cut bool, out []Answer) ([]Answer, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return out, err
	}
	if !h.Response || h.OpCode != 0 || h.RCode != dnsmessage.RCodeSuccess || h.Truncated {
		return out, errNotResponse
	}
	q, err := p.Question()
	if errors.Is(err, dnsmessage.ErrSectionDone) {
		return out, errNoQuestion
	}
	if err != nil {
		return out, err
	}
	if err := p.SkipAllQuestions(); err != nil {
		return out, err
	}
	question := canonical(q.Name)
	if question == "" || !printable(question) {
		return out, errNoQuestion // the root, or no host name: nothing to put on a connection
	}
	type link struct {
		to  string
		ttl uint32
	}
	var cnames map[string]link
	type addrRR struct {
		owner string
		addr  netip.Addr
		ttl   uint32
	}
	var addrs []addrRR
	var parseErr error
answers:
	for {
		rh, err := p.AnswerHeader()
		if err != nil {
			if !errors.Is(err, dnsmessage.ErrSectionDone) {
				parseErr = err
			}
			break
		}
		switch {
		case rh.Class != dnsmessage.ClassINET:
			err = p.SkipAnswer() // CHAOS, Hesiod: no Internet address
		// dnsmessage reads 4 (16) bytes whatever the record's length says: a length of 0 took
		// the next record's first bytes for an address that no record holds, and resolvers
		// refuse the whole answer (found by an independent check).
		case rh.Type == dnsmessage.TypeA && rh.Length != 4, rh.Type == dnsmessage.TypeAAAA && rh.Length != 16:
			err = errRDLength
		case rh.Type == dnsmessage.TypeA:
			var r dnsmessage.AResource
			if r, err = p.AResource(); err == nil {
				addrs = append(addrs, addrRR{canonical(rh.Name), netip.AddrFrom4(r.A), ttlOf(rh.TTL)})
			}
		case rh.Type == dnsmessage.TypeAAAA:
			var r dnsmessage.AAAAResource
			if r, err = p.AAAAResource(); err == nil {
				addrs = append(addrs, addrRR{canonical(rh.Name), netip.AddrFrom16(r.AAAA), ttlOf(rh.TTL)})
			}
		case rh.Type == dnsmessage.TypeCNAME:
			var r dnsmessage.CNAMEResource
			if r, err = p.CNAMEResource(); err == nil {
				if cnames == nil {
					cnames = map[string]link{}
				}
				cnames[canonical(rh.Name)] = link{canonical(r.CNAME), ttlOf(rh.TTL)}
			}
		default:
			err = p.SkipAnswer()
		}
		if err != nil {
			parseErr = err
			break answers
		}
	}
	if parseErr != nil && !cut {
		return out, parseErr // malformed: a resolver discards the whole message
	}
	// The chain from the question: each name on it with the least TTL so far.
	onChain := map[string]uint32{question: ^uint32(0)}
	name, ttl := question, ^uint32(0)
	for range maxChain {
		l, ok := cnames[name]
		if !ok {
			break
		}
		ttl = min(ttl, l.ttl)
		if _, seen := onChain[l.to]; seen {
			break
		}
		name = l.to
		onChain[name] = ttl
	}
	for _, a := range addrs {
		chainTTL, ok := onChain[a.owner]
		if !ok {
			continue
		}
		out = append(out, Answer{Addr: a.addr, Name: question, TTL: min(chainTTL, a.ttl)})
	}
	return out, parseErr
}

// printable is whether a name is made of printable ASCII (host names are letters, digits,
// hyphens and underscores; IDNs travel as punycode): a label of other bytes (controls, a NUL, a
// newline) would go into every record and series it names.
func printable(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] >= 0x7f {
			return false
		}
	}
	return true
}

// canonical is a name as records carry it: lower case, without the root's dot.
func canonical(n dnsmessage.Name) string {
	return strings.ToLower(strings.TrimSuffix(n.String(), "."))
}

// ParseTCP reads the answers of one TCP segment's payload (payload: what was copied of it;
// length: the whole payload's size). DNS over TCP prefixes each message with its length; servers
// mostly write both at once, so a segment starts a message, but some write the prefix alone
// first, and the next segment then holds the bare message. A segment whose prefix covers exactly
// the rest is a whole message, unless it does not parse as one and the whole segment does: a
// bare message whose ID reads as that prefix; a segment of 2 bytes holds only a prefix (nothing
// to read); a segment whose prefixes chain to its end holds several messages (answers written
// together, as resolvers pipelining A and AAAA get them, or segments merged by GRO), each read;
// anything else is read as a bare message, or failing that, as the start of a message longer
// than the segment (parsed as far as it goes), or as whole messages whose last one goes on in the
// next segment (answers written together, cut by the segment's size): the first must be a whole
// response. A continuation of a long message fails them all and is an error.
func ParseTCP(payload []byte, length int, out []Answer) ([]Answer, error) {
	if length == 2 {
		return out, nil
	}
	copiedAll := len(payload) >= length
	prefixed := len(payload) >= 2 && int(binary.BigEndian.Uint16(payload)) >= length-2
	n := len(out)
	if prefixed && int(binary.BigEndian.Uint16(payload)) == length-2 {
		got, err := Parse(payload[2:], !copiedAll, out)
		if err == nil {
			return got, nil
		}
		if bare, bareErr := Parse(payload, !copiedAll, out[:n]); bareErr == nil {
			return bare, nil
		}
		return Parse(payload[2:], !copiedAll, out[:n]) // again: the bare attempt wrote over its answers
	}
	if msgs, cutLast, ok := prefixedMessages(payload, length, false); ok {
		return parseEach(msgs, cutLast, out)
	}
	// A bare message may itself be longer than its segment: as far as it goes. Its answers before
	// the cut are kept also when its ID reads as a prefix (an ID of at least its segment's length
	// less 2: most of them for a full segment): the message from byte 2 is no response, and its
	// answers were lost uncounted (found by an independent check).
	out, err := Parse(payload, true, out)
	if err == nil || len(out) > n {
		return out, err
	}
	if prefixed {
		// Its prefix says it goes on past the segment (equal to the rest, it was read above): an
		// error after answers is the cut's, as for a copy cut short (Names.add counts neither).
		got, err := Parse(payload[2:], true, out[:n])
		if len(got) > n {
			err = nil
		}
		return got, err
	}
	// Whole messages and the start of the next, which goes on in the next segment: a server
	// answering pipelined queries (a resolver's A and AAAA on one connection) writes them
	// together, and they are cut where a segment ends (found by an independent check: none of
	// them was read, nor counted). A whole first response tells it from a bare message.
	if msgs, cutLast, ok := prefixedMessages(payload, length, true); ok {
		if got, firstErr := Parse(msgs[0], false, out[:n]); firstErr == nil {
			last := len(msgs)
			if cutLast {
				last--
			}
			got, err = parseEach(msgs[1:last], false, got)
			if cutLast {
				// As far as it goes: an error there is the cut's, the rest is the next segment's.
				got, _ = Parse(msgs[last], true, got)
			}
			return got, err
		}
	}
	return out, err
}

// parseEach reads each of msgs, the last cut short when cutLast; the error is the first one.
func parseEach(msgs [][]byte, cutLast bool, out []Answer) ([]Answer, error) {
	var first error
	for i, m := range msgs {
		var err error
		if out, err = Parse(m, cutLast && i == len(msgs)-1, out); err != nil && first == nil {
			first = err
		}
	}
	return out, first
}

// prefixedMessages splits a segment into length-prefixed messages when its prefixes chain
// exactly to its end (length), as far as payload holds of it (the last message may be cut
// there: cutLast); ok only for two or more messages, each non-empty. With pastSegment the last
// prefix may reach past the segment's end (its message goes on in the next segment): ok for one
// whole message before it, the last one then cut where the segment ends, or left out when only
// its prefix is here.
func prefixedMessages(payload []byte, length int, pastSegment bool) (msgs [][]byte, cutLast, ok bool) {
	off := 0
	for off < length {
		if off+2 > len(payload) {
			return msgs, cutLast, len(msgs) >= 2 // the rest was not copied: as far as it goes
		}
		l := int(binary.BigEndian.Uint16(payload[off:]))
		next := off + 2 + l
		if l == 0 || next > length && !pastSegment {
			return nil, false, false
		}
		if next > length {
			if off+2 < min(length, len(payload)) {
				msgs = append(msgs, payload[off+2:min(length, len(payload))])
				cutLast = true
			}
			return msgs, cutLast, off > 0 // a whole message before it
		}
		msgs = append(msgs, payload[off+2:min(next, len(payload))])
		cutLast = next > len(payload)
		off = next
	}
	return msgs, cutLast, len(msgs) >= 2
}

// ttlOf is a record's TTL as RFC 2181 §8 reads it: one with its high bit set is 0. Per record,
// so that a CNAME's such TTL bounds its chain (found by an independent check: the chain took
// the address record's 300 s).
func ttlOf(ttl uint32) uint32 {
	if ttl > math.MaxInt32 {
		return 0
	}
	return ttl
}
