package examples

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const dashboardFile = "grafana/podnet-service-map.json"

type dashboardQuery struct {
	panel, refID, expr string
	instant            bool
}

// dashboardQueries reads every panel query of the Grafana dashboard.
func dashboardQueries(t *testing.T) (queries []dashboardQuery, panelTypes []string) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				RefID   string `json:"refId"`
				Expr    string `json:"expr"`
				Instant bool   `json:"instant"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	for _, p := range d.Panels {
		panelTypes = append(panelTypes, p.Type)
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
		}
		for _, q := range p.Targets {
			queries = append(queries, dashboardQuery{panel: p.Title, refID: q.RefID, expr: q.Expr, instant: q.Instant})
		}
	}
	return queries, panelTypes
}

var metricName = regexp.MustCompile(`podnet_[a-z_]+`)

// dashboardMetrics are the metric names the queries read (label names with the same prefix,
// podnet_peer_* and podnet_connection_role, are not metrics).
func dashboardMetrics(queries []dashboardQuery) []string {
	names := map[string]bool{}
	for _, q := range queries {
		for _, m := range metricName.FindAllString(q.expr, -1) {
			if !strings.HasPrefix(m, "podnet_peer_") && m != "podnet_connection_role" {
				names[m] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(names))
}

// The node graph is built from edge frames: Grafana's Node Graph panel needs id, source and
// target fields, and takes mainstat/secondarystat/detail__* as the edge's numbers.
func TestGrafanaDashboardShape(t *testing.T) {
	queries, types := dashboardQueries(t)
	if !slices.Contains(types, "nodeGraph") {
		t.Fatalf("%s has no nodeGraph panel (panel types %v)", dashboardFile, types)
	}
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"mainstat"`, `"secondarystat"`, `"detail__bytes_per_second"`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("%s: the node graph's edges lack the field %s", dashboardFile, field)
		}
	}
	for _, q := range queries {
		if q.instant {
			for _, label := range []string{`"id"`, `"source"`, `"target"`} {
				if !strings.Contains(q.expr, label) {
					t.Errorf("node graph query %s builds no %s label: %s", q.refID, label, q.expr)
				}
			}
		}
		if !strings.Contains(q.expr, `k8s_namespace_name=~"$namespace"`) {
			t.Errorf("panel %q query %s ignores the namespace variable", q.panel, q.refID)
		}
	}
	want := []string{
		"podnet_tcp_bytes_received_total", "podnet_tcp_bytes_sent_total", "podnet_tcp_connections_active",
		"podnet_tcp_connections_total", "podnet_tcp_handshake_duration_seconds_bucket",
	}
	if d := cmp.Diff(want, dashboardMetrics(queries)); d != "" {
		t.Errorf("metrics the dashboard reads (-want +got):\n%s", d)
	}
}

// checkDashboardQueries runs every panel query against the Prometheus of the end-to-end test
// (namespace shop, rates over a minute) and requires an answer from each, built from metric
// names that Prometheus really has; the node graph's edges must be the shop's.
func checkDashboardQueries(t *testing.T, prom *prometheus) {
	queries, _ := dashboardQueries(t)
	have := prom.values(t, `count by (__name__) ({__name__=~"podnet_.+"})`)
	for _, m := range dashboardMetrics(queries) {
		if _, ok := have[`{__name__="`+m+`"}`]; !ok {
			t.Errorf("the dashboard reads %s, which Prometheus does not have; it has %v", m, slices.Sorted(maps.Keys(have)))
		}
	}
	edges := map[string]map[string]float64{}
	for _, q := range queries {
		expr := strings.NewReplacer("$__rate_interval", "1m", "$namespace", "shop").Replace(q.expr)
		got := prom.values(t, expr)
		if len(got) == 0 {
			t.Errorf("panel %q query %s returns nothing: %s", q.panel, q.refID, expr)
		}
		if q.instant {
			edges[q.refID] = got
		}
	}
	// The node graph's three edge queries: connections, failures, bytes. Only the label sets
	// are compared: rates over a window depend on when the scrapes fell.
	edgeSet := func(ref string) []string {
		var ids []string
		for labels := range edges[ref] {
			ids = append(ids, labels)
		}
		slices.Sort(ids)
		return ids
	}
	const (
		toCart    = `{id="shop/frontend → shop/cart", source="shop/frontend", target="shop/cart"}`
		toService = `{id="shop/frontend → shop/cart (Service)", source="shop/frontend", target="shop/cart (Service)"}`
		toDB      = `{id="shop/cart → shop/db-0", source="shop/cart", target="shop/db-0"}`
	)
	for ref, want := range map[string][]string{"A": {toDB, toCart, toService}, "B": {toCart}, "C": {toDB, toCart, toService}} {
		slices.Sort(want)
		if d := cmp.Diff(want, edgeSet(ref)); d != "" {
			t.Errorf("node graph edges of query %s (-want +got):\n%s", ref, d)
		}
		for labels, v := range edges[ref] {
			if !(v > 0) {
				t.Errorf("node graph query %s: edge %s has rate %v, want > 0", ref, labels, v)
			}
		}
	}
}
