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

// Against a server that compresses with context takeover (as duplex
// answers Chrome's offer), -deflate inflates every publication against the
// previous ones: nothing is lost, the report says so, and a publication
// costs fewer bytes than against the same server compressing each alone.
func TestBroadcastDeflateContextTakeover(t *testing.T) {
	perDelivery := map[bool]float64{}
	for _, takeover := range []bool{false, true} {
		f := startFakeWith(t, targetDuplex, "k", true)
		f.takeover = takeover
		cfg := testBroadcastConfig(f)
		cfg.Deflate, cfg.Payload, cfg.Size = true, payloadChat, 1<<10
		res, err := runBroadcast(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Lost != 0 || res.Disconnects != 0 || res.DeliveriesTotal == 0 || res.DeflateContext != takeover {
			t.Fatalf("takeover %v: lost %d, disconnects %d, deliveries %d, deflate_context %v: %v",
				takeover, res.Lost, res.Disconnects, res.DeliveriesTotal, res.DeflateContext, res.ErrorSamples)
		}
		perDelivery[takeover] = res.WireBytesPerDelivery
		var text, js bytes.Buffer
		if err := writeBroadcastReport(&text, res, false); err != nil {
			t.Fatal(err)
		}
		if err := writeBroadcastReport(&js, res, true); err != nil {
			t.Fatal(err)
		}
		wantText, wantJSON := "every message alone", `"deflate_context":false`
		if takeover {
			wantText, wantJSON = "with context takeover", `"deflate_context":true`
		}
		if !strings.Contains(text.String(), wantText) || !strings.Contains(js.String(), wantJSON) {
			t.Fatalf("takeover %v: the report does not say %q / %q:\n%s\n%s", takeover, wantText, wantJSON, text.String(), js.String())
		}
	}
	t.Logf("bytes per delivery: %.0f with context takeover, %.0f compressed alone", perDelivery[true], perDelivery[false])
	if !(perDelivery[true] < 0.85*perDelivery[false]) {
		t.Fatalf("bytes per delivery: %.0f with context takeover, %.0f compressed alone", perDelivery[true], perDelivery[false])
	}
}

// Without -deflate nothing changes: the plain run against the takeover
// server reads uncompressed frames.
func TestBroadcastPlainAgainstTakeoverServer(t *testing.T) {
	f := startFakeWith(t, targetDuplex, "k", true)
	f.takeover = true
	cfg := testBroadcastConfig(f)
	res, err := runBroadcast(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 0 || res.DeliveriesTotal == 0 || res.Deflate || res.DeflateContext {
		t.Fatalf("lost %d, deliveries %d, deflate %v/%v: %v", res.Lost, res.DeliveriesTotal, res.Deflate, res.DeflateContext, res.ErrorSamples)
	}
}

// idle -deflate reports the context takeover its connections negotiated.
func TestIdleDeflateContextTakeover(t *testing.T) {
	f := startFakeWith(t, targetDuplex, "k", true)
	f.takeover = true
	cfg := testIdleConfig(f, 5)
	cfg.Deflate = true
	res, err := runIdle(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.ConnsAlive != 5 || !res.Deflate || !res.DeflateContext {
		t.Fatalf("alive %d, deflate %v, context takeover %v: %v", res.ConnsAlive, res.Deflate, res.DeflateContext, res.ErrorSamples)
	}
	var text bytes.Buffer
	if err := writeIdleReport(&text, res, false); err != nil || !strings.Contains(text.String(), "context takeover true") {
		t.Fatalf("text: %v\n%s", err, text.String())
	}
}
