package main

// Several nodes in broadcast mode: -url takes a comma-separated list of
// node URLs and subscriber i connects to node i % len(list); the publisher
// targets -api (by default the first node). Deliveries to subscribers on a
// node other than the publishing one are timed apart (cross-node latency),
// per node too, and -pids measures further processes (the other nodes, the
// NATS server) over the same window as -server-pid.

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits of the cluster options.
const (
	maxNodes     = 32
	maxExtraPIDs = 32
	nodeShards   = 16 // histogram shards per node
)

// splitNodeURLs splits a comma-separated -url into its node URLs, each
// validated like a single -url.
func splitNodeURLs(s string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		cc := commonConfig{URL: u, Conns: 1, Duration: time.Second, Timeout: time.Second}
		if err := cc.validate(); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	switch {
	case len(out) == 0:
		return nil, errors.New("-url: no URL")
	case len(out) > maxNodes:
		return nil, fmt.Errorf("-url: at most %d node URLs, got %d", maxNodes, len(out))
	}
	return out, nil
}

// publishingNode is the index of the node URL whose host:port is the API's,
// or -1 when the API is none of them (then every subscriber is cross-node).
func publishingNode(nodes []string, apiURL string) int {
	a, err := url.Parse(apiURL)
	if err != nil {
		return -1
	}
	for i, n := range nodes {
		if u, err := url.Parse(n); err == nil && u.Host == a.Host {
			return i
		}
	}
	return -1
}

// procSpec is one -pids entry.
type procSpec struct {
	Label string
	PID   int
}

// pidList is the -pids flag: label=PID,label=PID,… (a bare PID is labelled
// with itself).
type pidList []procSpec

func (l *pidList) String() string {
	parts := make([]string, len(*l))
	for i, p := range *l {
		parts[i] = p.Label + "=" + strconv.Itoa(p.PID)
	}
	return strings.Join(parts, ",")
}

func (l *pidList) Set(s string) error {
	*l = (*l)[:0]
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		label, num, ok := strings.Cut(item, "=")
		if !ok {
			num = label
		}
		pid, err := strconv.Atoi(num)
		if err != nil || pid <= 0 {
			return fmt.Errorf("bad PID in %q", item)
		}
		if label == "" || strings.ContainsAny(label, " \t\"") {
			return fmt.Errorf("bad label in %q", item)
		}
		*l = append(*l, procSpec{label, pid})
	}
	if len(*l) > maxExtraPIDs {
		return fmt.Errorf("at most %d PIDs", maxExtraPIDs)
	}
	return nil
}

// ProcCPU is the CPU time of one -pids process over the server's window.
type ProcCPU struct {
	Label string  `json:"label"`
	PID   int     `json:"pid"`
	CPUS  float64 `json:"cpu_s"`
	RSSKB int64   `json:"rss_kb"` // at the end
}

// NodeResult is what the subscribers of one node received.
type NodeResult struct {
	URL        string  `json:"url"`
	Publishing bool    `json:"publishing"` // the -api node
	SubsOpen   int     `json:"subs_open"`
	Deliveries uint64  `json:"deliveries"` // first deliveries, measured window
	Lost       uint64  `json:"lost"`
	Duplicated uint64  `json:"duplicated"`
	LatencyUS  Latency `json:"latency_us"`
}

// clusterRun holds the per-node and cross-node tallies of one run. Its
// record method is called from the subscribers' readers.
type clusterRun struct {
	nodes    []string
	pubNode  int
	nodeHist []*shardedHistogram
	cross    *shardedHistogram
	procs    []procSpec
	cpu0     []time.Duration
	procErr  []error
}

func newClusterRun(cfg *broadcastConfig) *clusterRun {
	nodes := cfg.nodeURLs
	if len(nodes) == 0 {
		nodes = []string{cfg.URL}
	}
	c := &clusterRun{
		nodes: nodes, pubNode: publishingNode(nodes, cfg.APIURL),
		cross: newShardedHistogram(64), procs: cfg.ExtraPIDs,
		cpu0: make([]time.Duration, len(cfg.ExtraPIDs)), procErr: make([]error, len(cfg.ExtraPIDs)),
	}
	if len(nodes) > 1 {
		c.nodeHist = make([]*shardedHistogram, len(nodes))
		for i := range c.nodeHist {
			c.nodeHist[i] = newShardedHistogram(nodeShards)
		}
	}
	return c
}

func (c *clusterRun) node(sub int) int { return sub % len(c.nodes) }

// record files the latency of a measured-window delivery to subscriber sub.
func (c *clusterRun) record(sub int, d time.Duration) {
	n := c.node(sub)
	if c.nodeHist != nil {
		c.nodeHist[n].Record(sub/len(c.nodes), d)
	}
	if n != c.pubNode {
		c.cross.Record(sub, d)
	}
}

// startProcs and endProcs bracket the measured window for the -pids
// processes (with the server's own readings).
func (c *clusterRun) startProcs() {
	for i, p := range c.procs {
		c.cpu0[i], c.procErr[i] = readProcCPU(p.PID)
	}
}

func (c *clusterRun) endProcs() []ProcCPU {
	var out []ProcCPU
	for i, p := range c.procs {
		if c.procErr[i] != nil {
			continue
		}
		cpu1, err := readProcCPU(p.PID)
		if err != nil {
			c.procErr[i] = err
			continue
		}
		st, _ := readProcStatus(p.PID)
		out = append(out, ProcCPU{Label: p.Label, PID: p.PID, CPUS: (cpu1 - c.cpu0[i]).Seconds(), RSSKB: st.RSSKB})
	}
	return out
}

// procErrors lists the -pids processes that could not be read.
func (c *clusterRun) procErrors() []string {
	var out []string
	for i, err := range c.procErr {
		if err != nil {
			out = append(out, fmt.Sprintf("pid %s=%d: %v", c.procs[i].Label, c.procs[i].PID, err))
		}
	}
	return out
}

// fill adds the per-node and cross-node figures to res. lost and dups are
// per subscriber (index = subscriber id); window their measured deliveries.
func (c *clusterRun) fill(res *BroadcastResult, subs []*bsub, lost []uint64) {
	if c.nodeHist == nil && c.pubNode == 0 {
		return // one node, publishing on it: nothing to add
	}
	res.PublishNode = c.pubNode
	nodes := make([]NodeResult, len(c.nodes))
	for i, u := range c.nodes {
		nodes[i] = NodeResult{URL: u, Publishing: i == c.pubNode}
	}
	for _, s := range subs {
		if s == nil {
			continue
		}
		n := &nodes[c.node(s.id)]
		n.SubsOpen++
		n.Deliveries += s.window
		n.Duplicated += s.dups
		n.Lost += lost[s.id]
		if c.node(s.id) != c.pubNode {
			res.CrossNodeDeliveries += s.window
		}
	}
	if c.nodeHist != nil {
		for i := range nodes {
			nodes[i].LatencyUS = latencySummary(c.nodeHist[i].Merged())
		}
		res.Nodes = nodes
	}
	if res.CrossNodeDeliveries > 0 {
		l := latencySummary(c.cross.Merged())
		res.CrossNodeLatencyUS = &l
	}
}

// writeClusterReport adds the cluster lines to the text report.
func writeClusterReport(p func(string, ...any), r BroadcastResult) {
	for i, n := range r.Nodes {
		tag := ""
		if n.Publishing {
			tag = " (publishing)"
		}
		p("node %-2d    %s%s: %d subs, %d deliveries, lost %d, dup %d, latency us p50 %.0f p99 %.0f max %.0f\n",
			i+1, n.URL, tag, n.SubsOpen, n.Deliveries, n.Lost, n.Duplicated, n.LatencyUS.P50, n.LatencyUS.P99, n.LatencyUS.Max)
	}
	if l := r.CrossNodeLatencyUS; l != nil {
		p("cross-node %d deliveries to subscribers not on the publishing node: latency us p50 %.0f  p99 %.0f  max %.0f\n",
			r.CrossNodeDeliveries, l.P50, l.P99, l.Max)
	}
	var sum float64
	for _, pr := range r.Processes {
		p("process    %s pid %d: cpu %.2fs; rss %d kB\n", pr.Label, pr.PID, pr.CPUS, pr.RSSKB)
		sum += pr.CPUS
	}
	if len(r.Processes) > 0 && r.Server != nil {
		sum += r.Server.CPUS
		per := 0.0
		if r.Deliveries > 0 {
			per = sum / (float64(r.Deliveries) / 1e6)
		}
		p("all procs  cpu %.2fs (server and -pids) = %.3f cpu-s per million deliveries\n", sum, per)
	}
}
