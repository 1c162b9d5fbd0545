package main

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestChatDataIsExactValidVariedJSON(t *testing.T) {
	for _, size := range []int{64, 100, 1 << 10, 4 << 10, maxBcastSize} {
		a := appendChatData(nil, 7, 1_700_000_000_123_456_789, size)
		b := appendChatData(nil, 8, 1_700_000_000_123_456_789, size)
		var v struct {
			Seq  uint64            `json:"dxseq"`
			TS   int64             `json:"dxts"`
			Msgs []json.RawMessage `json:"msgs"`
		}
		if err := json.Unmarshal(a, &v); err != nil || v.Seq != 7 || v.TS != 1_700_000_000_123_456_789 {
			t.Fatalf("size %d: %s: %v", size, a, err)
		}
		if len(a) != size || len(b) != size {
			t.Fatalf("size %d: got %d and %d bytes", size, len(a), len(b))
		}
		if size >= 1<<10 && bytes.Equal(a[30:], b[30:]) {
			t.Fatalf("size %d: publications 7 and 8 carry the same messages", size)
		}
	}
	// Chat-like: compressible, but not to nothing as padding is.
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestSpeed)
	_, _ = w.Write(appendChatData(nil, 1, 1, 1<<10))
	_ = w.Close()
	if ratio := float64(z.Len()) / 1024; ratio < 0.25 || ratio > 0.7 {
		t.Fatalf("1 KiB of chat data deflates to %.2f of its size", ratio)
	}
}

// With -deflate, the tool negotiates permessage-deflate and reads the
// compressed frames; the same run plain costs more bytes per delivery.
func TestBroadcastDeflateCountsWireBytes(t *testing.T) {
	perDelivery := map[bool]float64{}
	for _, deflate := range []bool{false, true} {
		f := startFakeWith(t, targetDuplex, "k", true)
		cfg := testBroadcastConfig(f)
		cfg.Deflate, cfg.Payload, cfg.Size = deflate, payloadChat, 1<<10
		res, err := runBroadcast(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Lost != 0 || res.DeliveriesTotal == 0 || res.Deflate != deflate || res.WireBytes <= 0 {
			t.Fatalf("deflate %v: lost %d, deliveries %d, wire %d: %v", deflate, res.Lost, res.DeliveriesTotal, res.WireBytes, res.ErrorSamples)
		}
		perDelivery[deflate] = res.WireBytesPerDelivery
	}
	if !(perDelivery[true] < 0.7*perDelivery[false]) || perDelivery[false] < 1<<10 {
		t.Fatalf("bytes per delivery: %.0f with deflate, %.0f without", perDelivery[true], perDelivery[false])
	}
}

func TestDeflateDeclinedFailsTheDial(t *testing.T) {
	f := startFakeWith(t, targetDuplex, "k", false)
	cfg := testBroadcastConfig(f)
	cfg.Deflate = true
	_, err := runBroadcast(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), errDeflateDeclined.Error()) {
		t.Fatalf("got %v, want %v", err, errDeflateDeclined)
	}
}
