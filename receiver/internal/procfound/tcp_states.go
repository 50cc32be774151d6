package procfound

// TCP states as /proc/net/tcp prints them (include/net/tcp_states.h).
const (
	stateEstablished uint8 = 0x01
	stateFinWait1    uint8 = 0x04
	stateFinWait2    uint8 = 0x05
	stateCloseWait   uint8 = 0x08
	stateLastAck     uint8 = 0x09
	stateListen      uint8 = 0x0A
	stateClosing     uint8 = 0x0B
)

// openState reports whether a socket in state s is a connection the start-up scan reports:
// established, or closing but not yet TIME_WAIT (a minisocket no process holds). Handshakes
// in progress (SYN_*) are left out, as the BPF side leaves them out.
func openState(s uint8) bool {
	switch s {
	case stateEstablished, stateFinWait1, stateFinWait2, stateCloseWait, stateClosing, stateLastAck:
		return true
	}
	return false
}
