package runtime_test

import (
	"bytes"
	"io"
	goruntime "runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestScratchZstdFix(t *testing.T) {
	frames := [][]byte{
		{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x98, 0x09, 0x00, 0x00, 'a'},
		// single segment, FCS 4 bytes = 0x20000000 (512MiB)
		{0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0x00, 0x00, 0x00, 0x20, 0x09, 0x00, 0x00, 'a'},
	}
	for _, frame := range frames {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(8<<20))
		if err != nil {
			t.Fatal(err)
		}
		var ms0, ms1 goruntime.MemStats
		goruntime.ReadMemStats(&ms0)
		d.Reset(bytes.NewReader(frame))
		out, err := io.ReadAll(d)
		goruntime.ReadMemStats(&ms1)
		t.Logf("err=%v out=%q alloc=%d KiB", err, out, (ms1.TotalAlloc-ms0.TotalAlloc)>>10)
		d.Close()
	}
}
