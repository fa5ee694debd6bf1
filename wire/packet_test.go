package wire_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/msgtrans/msgtrans-go/wire"
)

// wireFixture is one conformance vector of the msgtrans family: bin is the
// encoding of the fields of want.
type wireFixture struct {
	name    string
	version uint8
	want    wire.Packet
	bin     []byte
}

// fixtureFields mirrors a fixture's .json file. Every field is a pointer so
// that a missing field is an error rather than a silent zero.
type fixtureFields struct {
	Version      *uint8  `json:"version"`
	Compression  *uint8  `json:"compression"`
	PacketType   *uint8  `json:"packet_type"`
	BizType      *uint8  `json:"biz_type"`
	MessageID    *uint32 `json:"message_id"`
	ExtHeaderHex *string `json:"ext_header_hex"`
	PayloadHex   *string `json:"payload_hex"`
	Reserved     *uint16 `json:"reserved"` // the 16-bit flags field
}

// wireFixturesDir returns testdata/wire-v1 in the module root (the first
// directory above the working directory that holds go.mod), and whether it
// exists. The vectors are part of the repository, so a test that does not
// find them fails rather than skips.
func wireFixturesDir() (string, bool) {
	wd, err := os.Getwd()
	if err != nil {
		return "testdata/wire-v1 (working directory unknown: " + err.Error() + ")", false
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			fx := filepath.Join(dir, "testdata", "wire-v1")
			st, err := os.Stat(fx)
			return fx, err == nil && st.IsDir()
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "testdata/wire-v1 (no go.mod found above " + wd + ")", false
		}
		dir = parent
	}
}

// mustWireFixturesDir is [wireFixturesDir] for tests that need the vectors.
func mustWireFixturesDir(tb testing.TB) string {
	tb.Helper()
	dir, ok := wireFixturesDir()
	if !ok {
		tb.Fatalf("wire fixtures not found at %s: they belong in testdata/wire-v1 of the module root", dir)
	}
	return dir
}

// wireFixtureNames are the conformance vectors the repository must hold,
// each as NAME.bin and NAME.json.
var wireFixtureNames = []string{
	"01_oneway_empty",
	"02_oneway_text",
	"03_request_minimal",
	"04_response_matching",
	"05_with_ext_header",
	"06_max_biz_type",
	"07_high_priority_flag",
	"08_route_tag_flag",
}

// TestWireFixturesPresent fails when a vector file is missing, so that
// TestWireFixtures can never pass by reading fewer vectors than there are.
func TestWireFixturesPresent(t *testing.T) {
	dir := mustWireFixturesDir(t)
	for _, name := range wireFixtureNames {
		for _, ext := range []string{".bin", ".json"} {
			t.Run(name+ext, func(t *testing.T) {
				st, err := os.Stat(filepath.Join(dir, name+ext))
				if err != nil {
					t.Fatalf("vector missing: %v", err)
				}
				if !st.Mode().IsRegular() || st.Size() == 0 {
					t.Errorf("%s: got mode %v size %d, want a non-empty regular file", name+ext, st.Mode(), st.Size())
				}
			})
		}
	}
	for _, pattern := range []string{"*.bin", "*.json"} {
		found, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			t.Fatalf("listing %s: %v", pattern, err)
		}
		if len(found) != len(wireFixtureNames) {
			t.Errorf("%s files in %s: got %d, want %d", pattern, dir, len(found), len(wireFixtureNames))
		}
	}
}

// loadWireFixtures reads every *.json in dir with its .bin, sorted by name.
func loadWireFixtures(tb testing.TB, dir string) []wireFixture {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		tb.Fatalf("listing fixtures: %v", err)
	}
	slices.Sort(names)
	var out []wireFixture
	for _, jsonPath := range names {
		fx, err := readWireFixture(jsonPath)
		if err != nil {
			tb.Fatalf("fixture %s: %v", filepath.Base(jsonPath), err)
		}
		out = append(out, fx)
	}
	return out
}

func readWireFixture(jsonPath string) (wireFixture, error) {
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		return wireFixture{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a field we do not compare would be a silent gap
	var f fixtureFields
	if err := dec.Decode(&f); err != nil {
		return wireFixture{}, fmt.Errorf("parsing json: %w", err)
	}
	if f.Version == nil || f.Compression == nil || f.PacketType == nil || f.BizType == nil ||
		f.MessageID == nil || f.ExtHeaderHex == nil || f.PayloadHex == nil || f.Reserved == nil {
		return wireFixture{}, fmt.Errorf("json lacks a field: %s", raw)
	}
	ext, err := hex.DecodeString(*f.ExtHeaderHex)
	if err != nil {
		return wireFixture{}, fmt.Errorf("ext_header_hex: %w", err)
	}
	payload, err := hex.DecodeString(*f.PayloadHex)
	if err != nil {
		return wireFixture{}, fmt.Errorf("payload_hex: %w", err)
	}
	bin, err := os.ReadFile(strings.TrimSuffix(jsonPath, ".json") + ".bin")
	if err != nil {
		return wireFixture{}, err
	}
	return wireFixture{
		name:    strings.TrimSuffix(filepath.Base(jsonPath), ".json"),
		version: *f.Version,
		bin:     bin,
		want: wire.Packet{
			Type:        wire.PacketType(*f.PacketType),
			Compression: wire.Compression(*f.Compression),
			BizType:     *f.BizType,
			MessageID:   *f.MessageID,
			Flags:       wire.Flags(*f.Reserved),
			Ext:         ext,
			Payload:     payload,
		},
	}, nil
}

// packetDiff describes every field in which got differs from want, or
// returns "" when they are equal. Nil and empty slices are equal.
func packetDiff(got, want wire.Packet) string {
	var d []string
	if got.Type != want.Type {
		d = append(d, fmt.Sprintf("packet_type: got %v, want %v", got.Type, want.Type))
	}
	if got.Compression != want.Compression {
		d = append(d, fmt.Sprintf("compression: got %v, want %v", got.Compression, want.Compression))
	}
	if got.BizType != want.BizType {
		d = append(d, fmt.Sprintf("biz_type: got %d, want %d", got.BizType, want.BizType))
	}
	if got.MessageID != want.MessageID {
		d = append(d, fmt.Sprintf("message_id: got %d, want %d", got.MessageID, want.MessageID))
	}
	if got.Flags != want.Flags {
		d = append(d, fmt.Sprintf("flags: got %#04x, want %#04x", uint16(got.Flags), uint16(want.Flags)))
	}
	if !bytes.Equal(got.Ext, want.Ext) {
		d = append(d, fmt.Sprintf("ext: got %s, want %s", shortHex(got.Ext), shortHex(want.Ext)))
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		d = append(d, fmt.Sprintf("payload: got %s, want %s", shortHex(got.Payload), shortHex(want.Payload)))
	}
	return strings.Join(d, "; ")
}

func shortHex(b []byte) string {
	if len(b) > 32 {
		return fmt.Sprintf("%x… (%d bytes)", b[:32], len(b))
	}
	return fmt.Sprintf("%x (%d bytes)", b, len(b))
}

func mustAppend(tb testing.TB, dst []byte, p *wire.Packet) []byte {
	tb.Helper()
	out, err := wire.AppendPacket(dst, p)
	if err != nil {
		tb.Fatalf("AppendPacket(%v): %v", p, err)
	}
	return out
}

func TestWireFixtures(t *testing.T) {
	dir := mustWireFixturesDir(t)
	fixtures := loadWireFixtures(t, dir)
	if len(fixtures) != len(wireFixtureNames) {
		t.Fatalf("found %d fixtures in %s, want %d", len(fixtures), dir, len(wireFixtureNames))
	}
	var stream []byte
	for _, fx := range fixtures {
		stream = append(stream, fx.bin...)
		t.Run(fx.name, func(t *testing.T) {
			if fx.version != wire.Version {
				t.Errorf("json version: got %d, want %d", fx.version, wire.Version)
			}
			if len(fx.bin) == 0 || fx.bin[0] != fx.version {
				t.Errorf("bin version byte: got % x, want %d", fx.bin[:min(1, len(fx.bin))], fx.version)
			}

			// Decode in one piece.
			h, err := wire.ParseHeader(fx.bin, wire.Limits{})
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			if int(h.ExtLen) != len(fx.want.Ext) || int(h.PayloadLen) != len(fx.want.Payload) {
				t.Errorf("ParseHeader lengths: got ext %d payload %d, want ext %d payload %d",
					h.ExtLen, h.PayloadLen, len(fx.want.Ext), len(fx.want.Payload))
			}
			got, n, err := wire.ParsePacket(fx.bin, wire.Limits{})
			if err != nil {
				t.Fatalf("ParsePacket: %v", err)
			}
			if n != len(fx.bin) {
				t.Errorf("ParsePacket consumed %d bytes, want %d", n, len(fx.bin))
			}
			if d := packetDiff(got, fx.want); d != "" {
				t.Errorf("ParsePacket: %s", d)
			}

			// Decode as a stream, in one read and one byte per read.
			for _, r := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", bytes.NewReader(fx.bin)},
				{"one_byte", iotest.OneByteReader(bytes.NewReader(fx.bin))},
			} {
				dec := wire.NewDecoder(r.r, wire.Limits{})
				got, err := dec.Next()
				if err != nil {
					t.Fatalf("Decoder(%s).Next: %v", r.name, err)
				}
				if d := packetDiff(got, fx.want); d != "" {
					t.Errorf("Decoder(%s): %s", r.name, d)
				}
				if _, err := dec.Next(); err != io.EOF {
					t.Errorf("Decoder(%s).Next after the packet: got %v, want io.EOF", r.name, err)
				}
			}

			// Encode.
			enc, err := wire.AppendPacket(nil, &fx.want)
			if err != nil {
				t.Fatalf("AppendPacket: %v", err)
			}
			if !bytes.Equal(enc, fx.bin) {
				t.Errorf("AppendPacket:\n got % x\nwant % x", enc, fx.bin)
			}
			if got := fx.want.EncodedLen(); got != len(fx.bin) {
				t.Errorf("EncodedLen: got %d, want %d", got, len(fx.bin))
			}
		})
	}
	t.Run("all_in_one_stream", func(t *testing.T) {
		dec := wire.NewDecoder(iotest.HalfReader(bytes.NewReader(stream)), wire.Limits{})
		for _, fx := range fixtures {
			got, err := dec.Next()
			if err != nil {
				t.Fatalf("Next for %s: %v", fx.name, err)
			}
			if d := packetDiff(got, fx.want); d != "" {
				t.Errorf("%s: %s", fx.name, d)
			}
		}
		if _, err := dec.Next(); err != io.EOF {
			t.Errorf("Next at the end: got %v, want io.EOF", err)
		}
	})
}

// roundTripLimits admits everything the wire format can express in an ext
// header, so round trips can use the largest one.
var roundTripLimits = wire.Limits{MaxExtHeader: 0xFFFF}

func TestPacketRoundTrip(t *testing.T) {
	bigExt := bytes.Repeat([]byte{0xE7}, 0xFFFF)
	tests := []struct {
		name string
		p    wire.Packet
	}{
		{"empty_oneway", wire.Packet{}},
		{"oneway", wire.Packet{Type: wire.OneWay, BizType: 7, MessageID: 1, Payload: []byte("hi")}},
		{"request", wire.Packet{Type: wire.Request, BizType: 10, MessageID: 100, Payload: []byte("ping")}},
		{"response", wire.Packet{Type: wire.Response, BizType: 10, MessageID: 100, Payload: []byte("pong")}},
		{"max_biz_type", wire.Packet{BizType: 255, Payload: []byte{1}}},
		{"max_message_id", wire.Packet{Type: wire.Request, MessageID: 0xFFFFFFFF}},
		{"flag_high_priority", wire.Packet{Flags: wire.FlagHighPriority, Payload: []byte("x")}},
		{"flag_route_tag", wire.Packet{Flags: wire.FlagHasRouteTag, Ext: []byte("route"), Payload: []byte("x")}},
		{"flag_fragmented", wire.Packet{Flags: wire.FlagFragmented}},
		{"unknown_flag_bits_kept", wire.Packet{Flags: 0x8000 | 0x0100 | 0x0008}},
		{"all_flag_bits", wire.Packet{Flags: 0xFFFF}},
		{"ext_only", wire.Packet{Ext: []byte{0, 1, 2, 3}}},
		{"ext_and_payload", wire.Packet{Ext: []byte("ext"), Payload: []byte("payload")}},
		{"compression_zstd_passthrough", wire.Packet{Compression: wire.CompressionZstd, Payload: []byte{0xde, 0xad}}},
		{"compression_zlib_passthrough", wire.Packet{Compression: wire.CompressionZlib, Payload: []byte{0xbe, 0xef}}},
		{"max_ext_header", wire.Packet{Ext: bigExt, Payload: []byte("p")}},
		{"everything", wire.Packet{
			Type: wire.Response, Compression: wire.CompressionZlib, BizType: 0xAB,
			MessageID: 0xFFFFFFFF, Flags: 0xFFFF, Ext: []byte{9, 8, 7}, Payload: []byte("body"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := mustAppend(t, nil, &tt.p)
			if len(enc) != tt.p.EncodedLen() {
				t.Errorf("encoded length: got %d, want EncodedLen %d", len(enc), tt.p.EncodedLen())
			}
			if enc[0] != wire.Version {
				t.Errorf("version byte: got %d, want %d", enc[0], wire.Version)
			}
			// Trailing bytes belong to the next packet and must be left alone.
			withTail := append(slices.Clip(enc), 0xFF, 0xFF, 0xFF)
			got, n, err := wire.ParsePacket(withTail, roundTripLimits)
			if err != nil {
				t.Fatalf("ParsePacket: %v", err)
			}
			if n != len(enc) {
				t.Errorf("ParsePacket consumed %d bytes, want %d", n, len(enc))
			}
			if d := packetDiff(got, tt.p); d != "" {
				t.Errorf("ParsePacket: %s", d)
			}
			if cap(got.Ext) != len(got.Ext) {
				t.Errorf("cap(Ext) = %d, want %d: appending to Ext would overwrite the payload", cap(got.Ext), len(got.Ext))
			}
			if again := mustAppend(t, nil, &got); !bytes.Equal(again, enc) {
				t.Errorf("re-encoding the parsed packet:\n got % x\nwant % x", again, enc)
			}

			dec := wire.NewDecoder(bytes.NewReader(enc), roundTripLimits)
			got, err = dec.Next()
			if err != nil {
				t.Fatalf("Decoder.Next: %v", err)
			}
			if d := packetDiff(got, tt.p); d != "" {
				t.Errorf("Decoder: %s", d)
			}
		})
	}
}

func TestPacketHeaderLayout(t *testing.T) {
	p := wire.Packet{
		Type:        wire.Request,
		Compression: wire.CompressionZlib,
		BizType:     0xAB,
		MessageID:   0x01020304,
		Flags:       0xF00D,
		Ext:         []byte{0xE1, 0xE2, 0xE3},
		Payload:     []byte{0xD1, 0xD2, 0xD3, 0xD4, 0xD5},
	}
	want := []byte{
		0x01,                   // version
		0x02,                   // compression: zlib
		0x01,                   // packet_type: request
		0xAB,                   // biz_type
		0x01, 0x02, 0x03, 0x04, // message_id
		0x00, 0x03, // ext_header_len
		0x00, 0x00, 0x00, 0x05, // payload_len
		0xF0, 0x0D, // flags
		0xE1, 0xE2, 0xE3, // ext header
		0xD1, 0xD2, 0xD3, 0xD4, 0xD5, // payload
	}
	if got := mustAppend(t, nil, &p); !bytes.Equal(got, want) {
		t.Errorf("AppendPacket:\n got % x\nwant % x", got, want)
	}
	h, err := wire.ParseHeader(want, wire.Limits{})
	if err != nil {
		t.Fatalf("ParseHeader: %v", err)
	}
	wantHeader := wire.Header{
		Type: wire.Request, Compression: wire.CompressionZlib, BizType: 0xAB,
		MessageID: 0x01020304, ExtLen: 3, PayloadLen: 5, Flags: 0xF00D,
	}
	if h != wantHeader {
		t.Errorf("ParseHeader: got %+v, want %+v", h, wantHeader)
	}
	if got := h.BodyLen(); got != 8 {
		t.Errorf("BodyLen: got %d, want 8", got)
	}
	if d := packetDiff(h.Packet(want[wire.HeaderSize:]), p); d != "" {
		t.Errorf("Header.Packet: %s", d)
	}
	// ParseHeader needs only the fixed header.
	if _, err := wire.ParseHeader(want[:wire.HeaderSize], wire.Limits{}); err != nil {
		t.Errorf("ParseHeader of the bare header: %v", err)
	}
}

func TestAppendPacketAppendsToPrefix(t *testing.T) {
	p := wire.Packet{Type: wire.Request, BizType: 3, MessageID: 9, Ext: []byte("e"), Payload: []byte("payload")}
	alone := mustAppend(t, nil, &p)
	for _, tt := range []struct {
		name  string
		extra int // spare capacity beyond the prefix
	}{
		{"no_spare_capacity", 0},
		{"some_spare_capacity", 5},
		{"enough_capacity", 1024},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			dst := make([]byte, len(prefix), len(prefix)+tt.extra)
			copy(dst, prefix)
			out := mustAppend(t, dst, &p)
			if !bytes.Equal(out[:len(prefix)], prefix) {
				t.Errorf("prefix: got %q, want %q", out[:len(prefix)], prefix)
			}
			if !bytes.Equal(out[len(prefix):], alone) {
				t.Errorf("appended bytes:\n got % x\nwant % x", out[len(prefix):], alone)
			}
			if fits := tt.extra >= len(alone); fits && &out[0] != &dst[0] {
				t.Errorf("AppendPacket reallocated although dst had capacity %d for %d bytes", cap(dst), len(out))
			}
		})
	}
}

func TestAppendPacketAllocs(t *testing.T) {
	p := &wire.Packet{
		Type: wire.Request, BizType: 1, MessageID: 42, Flags: wire.FlagHasRouteTag,
		Ext: make([]byte, 12), Payload: make([]byte, 64),
	}
	buf := make([]byte, 0, 256)
	var out []byte
	var err error
	allocs := testing.AllocsPerRun(100, func() {
		out, err = wire.AppendPacket(buf[:0], p)
	})
	if err != nil {
		t.Fatalf("AppendPacket: %v", err)
	}
	if len(out) != p.EncodedLen() {
		t.Errorf("len: got %d, want %d", len(out), p.EncodedLen())
	}
	if allocs != 0 {
		t.Errorf("AppendPacket with enough capacity: got %v allocations per run, want 0", allocs)
	}
}

func TestAppendPacketRejects(t *testing.T) {
	tests := []struct {
		name string
		p    wire.Packet
		want error
	}{
		{"packet_type_3", wire.Packet{Type: 3}, wire.ErrProtocol},
		{"packet_type_255", wire.Packet{Type: 255}, wire.ErrProtocol},
		{"compression_3", wire.Packet{Compression: 3}, wire.ErrProtocol},
		{"compression_255", wire.Packet{Compression: 255}, wire.ErrProtocol},
		{"ext_over_65535", wire.Packet{Ext: make([]byte, 0x10000)}, wire.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := wire.AppendPacket(dst, &tt.p)
			if !errors.Is(err, tt.want) {
				t.Errorf("error: got %v, want one wrapping %v", err, tt.want)
			}
			if !bytes.Equal(out, dst) {
				t.Errorf("dst after a failed append: got %q, want %q", out, dst)
			}
		})
	}
}

// validPacketBytes returns the encoding of a well-formed request with an ext
// header of ext bytes and a payload of payload bytes.
func validPacketBytes(ext, payload int) []byte {
	p := wire.Packet{Type: wire.Request, BizType: 5, MessageID: 77,
		Ext: bytes.Repeat([]byte{'e'}, ext), Payload: bytes.Repeat([]byte{'p'}, payload)}
	b, err := wire.AppendPacket(nil, &p)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseHeaderRejects(t *testing.T) {
	type rejectCase struct {
		name   string
		mutate func(b []byte)
		lim    wire.Limits
		want   error
	}
	setExtLen := func(n uint16) func([]byte) {
		return func(b []byte) { binary.BigEndian.PutUint16(b[8:10], n) }
	}
	setPayloadLen := func(n uint32) func([]byte) {
		return func(b []byte) { binary.BigEndian.PutUint32(b[10:14], n) }
	}
	tests := []rejectCase{
		{name: "version_0", mutate: func(b []byte) { b[0] = 0 }, want: wire.ErrProtocol},
		{name: "version_2", mutate: func(b []byte) { b[0] = 2 }, want: wire.ErrProtocol},
		{name: "version_255", mutate: func(b []byte) { b[0] = 255 }, want: wire.ErrProtocol},
		{name: "ext_over_default_limit", mutate: setExtLen(wire.DefaultMaxExtHeader + 1), want: wire.ErrTooLarge},
		{name: "ext_max_u16_default_limit", mutate: setExtLen(0xFFFF), want: wire.ErrTooLarge},
		{name: "ext_over_custom_limit", mutate: setExtLen(101), lim: wire.Limits{MaxExtHeader: 100}, want: wire.ErrTooLarge},
		{name: "payload_over_default_limit", mutate: setPayloadLen(wire.DefaultMaxPayload + 1), want: wire.ErrTooLarge},
		{name: "payload_4GiB", mutate: setPayloadLen(0xFFFFFFFF), want: wire.ErrTooLarge},
		{name: "payload_over_custom_limit", mutate: setPayloadLen(1001), lim: wire.Limits{MaxPayload: 1000}, want: wire.ErrTooLarge},
	}
	for pt := 3; pt <= 255; pt++ {
		tests = append(tests, rejectCase{
			name:   fmt.Sprintf("packet_type_%d", pt),
			mutate: func(b []byte) { b[2] = byte(pt) },
			want:   wire.ErrProtocol,
		})
	}
	for c := 3; c <= 255; c++ {
		tests = append(tests, rejectCase{
			name:   fmt.Sprintf("compression_%d", c),
			mutate: func(b []byte) { b[1] = byte(c) },
			want:   wire.ErrProtocol,
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := validPacketBytes(3, 4)
			tt.mutate(b)
			if _, err := wire.ParseHeader(b, tt.lim); !errors.Is(err, tt.want) {
				t.Errorf("ParseHeader: got %v, want an error wrapping %v", err, tt.want)
			}
			p, n, err := wire.ParsePacket(b, tt.lim)
			if !errors.Is(err, tt.want) {
				t.Errorf("ParsePacket: got %v, want an error wrapping %v", err, tt.want)
			}
			if n != 0 || packetDiff(p, wire.Packet{}) != "" {
				t.Errorf("ParsePacket on error: got n=%d packet %v, want 0 and the zero packet", n, &p)
			}
		})
	}
}

func TestParseHeaderTruncated(t *testing.T) {
	b := validPacketBytes(2, 2)
	for k := 0; k < wire.HeaderSize; k++ {
		t.Run(fmt.Sprintf("%d_bytes", k), func(t *testing.T) {
			if _, err := wire.ParseHeader(b[:k], wire.Limits{}); !errors.Is(err, wire.ErrTruncated) {
				t.Errorf("ParseHeader: got %v, want an error wrapping ErrTruncated", err)
			}
			if _, n, err := wire.ParsePacket(b[:k], wire.Limits{}); !errors.Is(err, wire.ErrTruncated) || n != 0 {
				t.Errorf("ParsePacket: got n=%d err=%v, want 0 and an error wrapping ErrTruncated", n, err)
			}
		})
	}
	// A short buffer whose first byte is already wrong is still reported as
	// truncated: the caller must wait for the whole header.
	if _, err := wire.ParseHeader([]byte{2, 0, 0}, wire.Limits{}); !errors.Is(err, wire.ErrTruncated) {
		t.Errorf("ParseHeader of 3 bytes with version 2: got %v, want an error wrapping ErrTruncated", err)
	}
}

func TestParsePacketTruncated(t *testing.T) {
	b := validPacketBytes(5, 9)
	for cut := wire.HeaderSize; cut < len(b); cut++ {
		t.Run(fmt.Sprintf("%d_of_%d_bytes", cut, len(b)), func(t *testing.T) {
			if _, err := wire.ParseHeader(b[:cut], wire.Limits{}); err != nil {
				t.Errorf("ParseHeader of a complete header: %v", err)
			}
			p, n, err := wire.ParsePacket(b[:cut], wire.Limits{})
			if !errors.Is(err, wire.ErrTruncated) {
				t.Errorf("ParsePacket: got %v, want an error wrapping ErrTruncated", err)
			}
			if n != 0 || packetDiff(p, wire.Packet{}) != "" {
				t.Errorf("ParsePacket: got n=%d packet %v, want 0 and the zero packet", n, &p)
			}
		})
	}
}

func TestLimitsDefaults(t *testing.T) {
	if wire.DefaultMaxPayload != 1<<20 {
		t.Errorf("DefaultMaxPayload: got %d, want %d", wire.DefaultMaxPayload, 1<<20)
	}
	if wire.DefaultMaxExtHeader != 4<<10 {
		t.Errorf("DefaultMaxExtHeader: got %d, want %d", wire.DefaultMaxExtHeader, 4<<10)
	}
	if wire.DefaultMaxDecompressed != 10<<20 {
		t.Errorf("DefaultMaxDecompressed: got %d, want %d", wire.DefaultMaxDecompressed, 10<<20)
	}
	if wire.DefaultPacketReadTimeout != 30*time.Second {
		t.Errorf("DefaultPacketReadTimeout: got %v, want 30s", wire.DefaultPacketReadTimeout)
	}
	header := func(extLen uint16, payloadLen uint32) []byte {
		b := validPacketBytes(0, 0)
		binary.BigEndian.PutUint16(b[8:10], extLen)
		binary.BigEndian.PutUint32(b[10:14], payloadLen)
		return b
	}
	tests := []struct {
		name       string
		lim        wire.Limits
		extLen     uint16
		payloadLen uint32
		want       error
	}{
		{"zero_limits_payload_1MiB", wire.Limits{}, 0, 1 << 20, nil},
		{"zero_limits_payload_1MiB_plus_1", wire.Limits{}, 0, 1<<20 + 1, wire.ErrTooLarge},
		{"zero_limits_ext_4KiB", wire.Limits{}, 4 << 10, 0, nil},
		{"zero_limits_ext_4KiB_plus_1", wire.Limits{}, 4<<10 + 1, 0, wire.ErrTooLarge},
		{"negative_limits_are_defaults_payload", wire.Limits{MaxPayload: -1}, 0, 1<<20 + 1, wire.ErrTooLarge},
		{"negative_limits_are_defaults_ext", wire.Limits{MaxExtHeader: -1}, 4<<10 + 1, 0, wire.ErrTooLarge},
		{"custom_payload_at_limit", wire.Limits{MaxPayload: 10}, 0, 10, nil},
		{"custom_payload_over_limit", wire.Limits{MaxPayload: 10}, 0, 11, wire.ErrTooLarge},
		{"custom_payload_above_default", wire.Limits{MaxPayload: 8 << 20}, 0, 8 << 20, nil},
		{"custom_ext_at_limit", wire.Limits{MaxExtHeader: 10}, 10, 0, nil},
		{"custom_ext_over_limit", wire.Limits{MaxExtHeader: 10}, 11, 0, wire.ErrTooLarge},
		{"ext_limit_above_u16_admits_65535", wire.Limits{MaxExtHeader: 1 << 20}, 0xFFFF, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wire.ParseHeader(header(tt.extLen, tt.payloadLen), tt.lim)
			if tt.want == nil && err != nil {
				t.Errorf("ParseHeader(ext=%d payload=%d): got %v, want nil", tt.extLen, tt.payloadLen, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("ParseHeader(ext=%d payload=%d): got %v, want an error wrapping %v", tt.extLen, tt.payloadLen, err, tt.want)
			}
		})
	}
}

func TestPacketConstructors(t *testing.T) {
	payload := []byte("data")
	req := &wire.Packet{
		Type: wire.Request, Compression: wire.CompressionZstd, BizType: 9, MessageID: 1234,
		Flags: wire.FlagHasRouteTag | wire.FlagHighPriority, Ext: []byte("route"), Payload: payload,
	}
	tests := []struct {
		name string
		got  *wire.Packet
		want wire.Packet
	}{
		{"NewOneWay", wire.NewOneWay(3, payload), wire.Packet{Type: wire.OneWay, BizType: 3, Payload: payload}},
		{"NewRequest", wire.NewRequest(4, payload), wire.Packet{Type: wire.Request, BizType: 4, Payload: payload}},
		{"NewResponse", wire.NewResponse(0xFFFFFFFF, 5, payload), wire.Packet{Type: wire.Response, BizType: 5, MessageID: 0xFFFFFFFF, Payload: payload}},
		{"NewText", wire.NewText(6, "héllo"), wire.Packet{Type: wire.OneWay, BizType: 6, Payload: []byte("héllo")}},
		{"Reply", req.Reply([]byte("answer")), wire.Packet{Type: wire.Response, BizType: 9, MessageID: 1234, Payload: []byte("answer")}},
		{"Echo", req.Echo(), wire.Packet{
			Type: wire.Response, Compression: wire.CompressionZstd, BizType: 9, MessageID: 1234,
			Flags: wire.FlagHasRouteTag | wire.FlagHighPriority, Ext: []byte("route"), Payload: payload,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := packetDiff(*tt.got, tt.want); d != "" {
				t.Error(d)
			}
			// Every constructed packet must be encodable and survive a round trip.
			got, _, err := wire.ParsePacket(mustAppend(t, nil, tt.got), wire.Limits{})
			if err != nil {
				t.Fatalf("ParsePacket: %v", err)
			}
			if d := packetDiff(got, tt.want); d != "" {
				t.Errorf("after a round trip: %s", d)
			}
		})
	}
	if got := wire.NewText(0, "héllo").Text(); got != "héllo" {
		t.Errorf("Text: got %q, want %q", got, "héllo")
	}
	if req.Type != wire.Request || req.MessageID != 1234 {
		t.Errorf("Reply/Echo modified the request: %v", req)
	}
}

func TestPacketStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{wire.OneWay.String(), "oneway"},
		{wire.Request.String(), "request"},
		{wire.Response.String(), "response"},
		{wire.PacketType(7).String(), "packet_type(7)"},
		{wire.CompressionNone.String(), "none"},
		{wire.CompressionZstd.String(), "zstd"},
		{wire.CompressionZlib.String(), "zlib"},
		{wire.Compression(9).String(), "compression(9)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	s := (&wire.Packet{Type: wire.Request, MessageID: 5, BizType: 2, Payload: []byte("abc")}).String()
	for _, part := range []string{"request", "id=5", "biz=2", "payload=3B"} {
		if !strings.Contains(s, part) {
			t.Errorf("Packet.String() = %q, want it to contain %q", s, part)
		}
	}
}

func TestParsePacketPayloadCapacity(t *testing.T) {
	two := append(validPacketBytes(2, 3), validPacketBytes(2, 3)...)
	p, n, err := wire.ParsePacket(two, wire.Limits{})
	if err != nil {
		t.Fatalf("ParsePacket: %v", err)
	}
	if cap(p.Payload) != len(p.Payload) {
		t.Errorf("cap(Payload) = %d, want %d: appending to the payload would overwrite the bytes after the packet",
			cap(p.Payload), len(p.Payload))
	}
	_ = append(p.Payload, 0xEE)
	if two[n] != wire.Version {
		t.Errorf("appending to the payload changed the next packet's first byte to %#x", two[n])
	}
}
