package wire

import "hash/fnv"

// RouteID returns the route id of a method with the given protobuf full name
// ("chat.v1.Chat.Join"): the 32-bit FNV-1a hash of the name's bytes. It is
// stable across builds and languages. The generator refuses an id of 0
// (reserved for control packets) or two methods with one id; a method option
// can then set the id explicitly.
func RouteID(fullMethod string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(fullMethod))
	return h.Sum32()
}
