// Command server runs the msgtrans-go chat example's server: one server for
// TCP, WebSocket and QUIC (and TLS and WSS) clients at once.
//
//	go run ./examples/chat/server
//	go run ./examples/chat/server -listen tcp://0.0.0.0:7001,wss://0.0.0.0:7443/ws -tls-cert cert.pem -tls-key key.pem
//
// It also serves the chat's web page (package web) on -http, by default
// http://127.0.0.1:7080, over HTTPS when -tls-cert is given.
//
// Without -tls-cert and -tls-key it makes a self-signed development
// certificate (clients then need -insecure). Ctrl-C shuts it down
// gracefully: clients are told the server is going away and reconnect by
// themselves when it is back. Bad flags exit with status 2, other failures
// with status 1.
package main
