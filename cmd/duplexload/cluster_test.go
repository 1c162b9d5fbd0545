package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/duplex/duplex/internal/wstest"
)

// relay is a second "node" in front of the same fake server: a TCP
// forwarder on its own port, counting the connections it carried. Its
// connections are closed at cleanup.
func relay(t *testing.T, to string) (addr string, conns *atomic.Int64) {
	return wstest.Relay(t, to, nil)
}

func TestBroadcastSeveralNodes(t *testing.T) {
	f := startFake(t, targetDuplex, "k")
	host := strings.TrimPrefix(f.apiURL, "http://")
	raddr, relayed := relay(t, host)
	cfg := testBroadcastConfig(f)
	cfg.Subs = 7
	cfg.nodeURLs = []string{f.wsURL, "ws://" + raddr + "/ws"}
	cfg.ServerPID = os.Getpid()
	cfg.ExtraPIDs = pidList{{"self", os.Getpid()}}
	res, err := runBroadcast(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.SubsOpen != 7 || res.Lost != 0 || res.Duplicated != 0 || res.PublishErrors != 0 {
		t.Fatalf("open %d lost %d dup %d errors %d: %v", res.SubsOpen, res.Lost, res.Duplicated, res.PublishErrors, res.ErrorSamples)
	}
	// Round robin: subscribers 1, 3, 5 went through the relay.
	if got := relayed.Load(); got != 3 {
		t.Fatalf("relayed %d connections, want 3", got)
	}
	if res.PublishNode != 0 || len(res.Nodes) != 2 || !res.Nodes[0].Publishing || res.Nodes[1].Publishing {
		t.Fatalf("nodes: publishing %d, %+v", res.PublishNode, res.Nodes)
	}
	n0, n1 := res.Nodes[0], res.Nodes[1]
	if n0.SubsOpen != 4 || n1.SubsOpen != 3 || n0.Deliveries+n1.Deliveries != res.Deliveries ||
		n1.Deliveries != res.PublishedWindow*3 || res.CrossNodeDeliveries != n1.Deliveries {
		t.Fatalf("per node %+v / %+v, cross %d, window deliveries %d", n0, n1, res.CrossNodeDeliveries, res.Deliveries)
	}
	l := res.CrossNodeLatencyUS
	if l == nil || !(l.Min > 0 && l.P50 <= l.P99 && l.P99 <= l.Max) || n1.LatencyUS != *l {
		t.Fatalf("cross-node latency %+v, node 2 %+v", l, n1.LatencyUS)
	}
	if len(res.Processes) != 1 || res.Processes[0].Label != "self" || res.Processes[0].CPUS < 0 || res.Processes[0].RSSKB <= 0 {
		t.Fatalf("processes %+v (%v)", res.Processes, res.ErrorSamples)
	}
	var text bytes.Buffer
	if err := writeBroadcastReport(&text, res, false); err != nil ||
		!strings.Contains(text.String(), "cross-node") || !strings.Contains(text.String(), "(publishing)") || !strings.Contains(text.String(), "all procs") {
		t.Fatalf("text report: %v\n%s", err, text.String())
	}
	var js bytes.Buffer
	if err := writeBroadcastReport(&js, res, true); err != nil {
		t.Fatal(err)
	}
	var back BroadcastResult
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Nodes) != 2 || back.CrossNodeLatencyUS == nil {
		t.Fatalf("JSON round trip: %v\n%s", err, js.String())
	}

	// Publishing through the relay: node 2 publishes, node 1 is cross-node.
	cfg.APIURL = "http://" + raddr
	res, err = runBroadcast(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.PublishNode != 1 || res.CrossNodeDeliveries != res.Nodes[0].Deliveries || res.Lost != 0 {
		t.Fatalf("via the relay: publishing %d, cross %d, nodes %+v", res.PublishNode, res.CrossNodeDeliveries, res.Nodes)
	}
}

func TestBroadcastOneNodeReportsNoCluster(t *testing.T) {
	f := startFake(t, targetDuplex, "k")
	res, err := runBroadcast(context.Background(), testBroadcastConfig(f))
	if err != nil {
		t.Fatal(err)
	}
	if res.PublishNode != 0 || res.Nodes != nil || res.CrossNodeLatencyUS != nil || res.Processes != nil {
		t.Fatalf("one node: %+v %+v %+v", res.Nodes, res.CrossNodeLatencyUS, res.Processes)
	}
	var js bytes.Buffer
	_ = writeBroadcastReport(&js, res, true)
	for _, k := range []string{`"nodes"`, `"cross_node`, `"processes"`} {
		if strings.Contains(js.String(), k) {
			t.Errorf("one-node JSON has %s", k)
		}
	}
}

func TestClusterFlags(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	cfg, err := parseBroadcastFlags([]string{"-url", "ws://127.0.0.1:9021/realtime, ws://127.0.0.1:9022/realtime,ws://127.0.0.1:9023/realtime",
		"-api", "http://127.0.0.1:9022", "-pids", "node2=" + pid + "," + pid}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "ws://127.0.0.1:9021/realtime" || len(cfg.nodeURLs) != 3 || cfg.nodeURLs[1] != "ws://127.0.0.1:9022/realtime" {
		t.Fatalf("urls %q %q", cfg.URL, cfg.nodeURLs)
	}
	if len(cfg.ExtraPIDs) != 2 || cfg.ExtraPIDs[0].Label != "node2" || cfg.ExtraPIDs[1].Label != pid {
		t.Fatalf("pids %+v", cfg.ExtraPIDs)
	}
	if got := publishingNode(cfg.nodeURLs, cfg.APIURL); got != 1 {
		t.Fatalf("publishing node %d, want 1", got)
	}
	if got := publishingNode(cfg.nodeURLs, "http://127.0.0.1:8088"); got != -1 {
		t.Fatalf("publishing node %d, want -1", got)
	}
	// One URL: unchanged behaviour, the API defaults to its host.
	cfg, err = parseBroadcastFlags([]string{"-url", "ws://127.0.0.1:9021/realtime"}, io.Discard)
	if err != nil || cfg.nodeURLs != nil || cfg.APIURL != "http://127.0.0.1:9021" {
		t.Fatalf("%v %q %q", err, cfg.nodeURLs, cfg.APIURL)
	}
	// Several: the API defaults to the first.
	cfg, err = parseBroadcastFlags([]string{"-url", "ws://127.0.0.1:9021/realtime,ws://127.0.0.1:9022/realtime"}, io.Discard)
	if err != nil || cfg.APIURL != "http://127.0.0.1:9021" {
		t.Fatalf("%v %q", err, cfg.APIURL)
	}
	for _, args := range [][]string{
		{"-url", "ws://127.0.0.1:1/x,http://127.0.0.1:2/x"}, {"-url", ","}, {"-url", strings.Repeat("ws://127.0.0.1:1/x,", 33)},
		{"-pids", "a=0"}, {"-pids", "a=x"}, {"-pids", "=12"}, {"-pids", "n=999999999"},
	} {
		if _, err := parseBroadcastFlags(args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
