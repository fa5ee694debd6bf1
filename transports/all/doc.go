// Package all registers every transport that ships with msgtrans-go: tcp://
// and tls://, ws:// and wss://, quic://, and the in-memory mem://. Import it
// for its side effect when a program should accept any of them by
// configuration alone:
//
//	import _ "github.com/msgtrans/msgtrans-go/transports/all"
package all

import (
	_ "github.com/msgtrans/msgtrans-go/transports/mem"  // mem://
	_ "github.com/msgtrans/msgtrans-go/transports/quic" // quic://
	_ "github.com/msgtrans/msgtrans-go/transports/tcp"  // tcp://, tls://
	_ "github.com/msgtrans/msgtrans-go/transports/ws"   // ws://, wss://
)
