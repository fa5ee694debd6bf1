// Command server runs the msgtrans-go chat example's server: one server for
// TCP, WebSocket and QUIC (and TLS and WSS) clients at once.
//
//	go run ./examples/chat/server
//	go run ./examples/chat/server -listen tcp://0.0.0.0:7001,wss://0.0.0.0:7443/ws -tls-cert cert.pem -tls-key key.pem
//
// Without -tls-cert and -tls-key it makes a self-signed development
// certificate (clients then need -insecure). Ctrl-C shuts it down
// gracefully: clients are told the server is going away and reconnect by
// themselves when it is back. Bad flags exit with status 2, other failures
// with status 1.
package main
