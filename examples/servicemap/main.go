// Command podnet-servicemap draws who talks to whom from podnet's metrics in Prometheus:
// workloads (or pods) and Services as nodes, client → server edges labelled with connections/s,
// failed connects/s and bytes/s over a window, rendered to SVG by graphviz's dot.
//
//	make service-map PROMETHEUS_URL=http://prometheus:9090 SERVICE_MAP=map.svg
//	go run ./examples/servicemap -prometheus http://127.0.0.1:9090 -window 15m -o map.svg
//
// It reads the series of the collector's prometheus exporter as
// examples/kubernetes/collector-config.yaml configures it (pod and owner labels on each series).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "podnet-servicemap:", err)
		os.Exit(1)
	}
}

func run() error {
	defaultURL := os.Getenv("PROMETHEUS_URL")
	if defaultURL == "" {
		defaultURL = "http://127.0.0.1:9090"
	}
	url := flag.String("prometheus", defaultURL, "Prometheus server (default $PROMETHEUS_URL)")
	window := flag.String("window", "5m", "rates over this PromQL range")
	out := flag.String("o", "service-map.svg", "output file")
	format := flag.String("format", "svg", "svg (rendered with graphviz dot) or dot")
	timeout := flag.Duration("timeout", 30*time.Second, "for the queries and dot together")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	g, err := collect(ctx, &http.Client{}, *url, *window)
	if err != nil {
		return err
	}
	src := g.dot(fmt.Sprintf("podnet service map: rates over %s from %s at %s",
		*window, *url, time.Now().UTC().Format("2006-01-02 15:04 UTC")))
	switch *format {
	case "dot":
		return os.WriteFile(*out, []byte(src), 0o644)
	case "svg":
		cmd := exec.CommandContext(ctx, "dot", "-Tsvg", "-o", *out)
		cmd.Stdin = strings.NewReader(src)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("graphviz dot (apt-get install graphviz): %w: %s", err, stderr.String())
		}
		return nil
	default:
		return fmt.Errorf("-format %q: want svg or dot", *format)
	}
}
