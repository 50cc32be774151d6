package main

import (
	"fmt"
	"slices"
	"strings"
)

const failedColor = "#d62728"

// nodeStyle draws workloads and pods as boxes, Services as ellipses, unknown addresses plain.
var nodeStyle = map[string]string{
	"service":  `shape=ellipse, style=filled, fillcolor="#fff4e0"`,
	"external": `shape=box, style=dashed`,
}

const workloadStyle = `shape=box, style="rounded,filled", fillcolor="#e8f0fe"`

// dot writes the graph in graphviz's language, in a stable order. Edges without traffic in
// the window are left out, and with them nodes that have no other edge.
func (g *graph) dot(title string) string {
	type edge struct {
		from, to node
		s        stats
	}
	var edges []edge
	nodes := map[node]bool{}
	for k, s := range g.edges {
		if s.connections == 0 && s.failed == 0 && s.bytes == 0 {
			continue
		}
		edges = append(edges, edge{k[0], k[1], *s})
		nodes[k[0]], nodes[k[1]] = true, true
	}
	slices.SortFunc(edges, func(a, b edge) int {
		return strings.Compare(a.from.ID()+"\x00"+a.to.ID(), b.from.ID()+"\x00"+b.to.ID())
	})
	ids := make([]node, 0, len(nodes))
	for n := range nodes {
		ids = append(ids, n)
	}
	slices.SortFunc(ids, func(a, b node) int { return strings.Compare(a.ID(), b.ID()) })

	var b strings.Builder
	fmt.Fprintf(&b, "digraph podnet {\n  graph [rankdir=LR, fontname=Helvetica, labelloc=t, label=%s];\n", quote(title))
	b.WriteString("  node [fontname=Helvetica, fontsize=11];\n  edge [fontname=Helvetica, fontsize=10];\n")
	for _, n := range ids {
		style, ok := nodeStyle[n.Kind]
		if !ok {
			style = workloadStyle
		}
		label := n.Name + "\n" + n.Kind
		if n.Namespace != "" {
			label += " · " + n.Namespace
		}
		fmt.Fprintf(&b, "  %s [label=%s, %s];\n", quote(n.ID()), quote(label), style)
	}
	for _, e := range edges {
		attrs := "label=" + quote(edgeLabel(e.s))
		if e.s.failed > 0 {
			attrs += fmt.Sprintf(`, color=%q, fontcolor=%q`, failedColor, failedColor)
		}
		fmt.Fprintf(&b, "  %s -> %s [%s];\n", quote(e.from.ID()), quote(e.to.ID()), attrs)
	}
	b.WriteString("}\n")
	return b.String()
}

func edgeLabel(s stats) string {
	lines := []string{rate(s.connections) + " conn/s"}
	if s.failed > 0 {
		lines = append(lines, rate(s.failed)+" failed/s")
	}
	if s.bytes > 0 {
		lines = append(lines, byteRate(s.bytes))
	}
	return strings.Join(lines, "\n")
}

func rate(v float64) string { return fmt.Sprintf("%.3g", v) }

func byteRate(v float64) string {
	for _, unit := range []string{"B/s", "kB/s", "MB/s"} {
		if v < 1000 {
			return fmt.Sprintf("%.3g %s", v, unit)
		}
		v /= 1000
	}
	return fmt.Sprintf("%.3g GB/s", v)
}

// quote makes a DOT string: backslashes and quotes escaped, newlines as graphviz's \n.
func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"`
}
