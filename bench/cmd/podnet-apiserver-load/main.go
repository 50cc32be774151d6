// Command podnet-apiserver-load measures what podnet's watches cost the Kubernetes API server:
// N podnet metadata stores (one per node) against a real etcd + kube-apiserver holding a large
// cluster, per peer_pods mode and against kube-proxy's watches, for the initial list and per
// pod replaced (bytes the API server sends, its CPU time).
//
// The measurement is receiver/internal/k8smeta's TestAPIServerLoad, run here at scale: the
// Store is internal to the receiver, so a program outside it cannot build one, and CI runs the
// same code scaled down. This program only passes the sizes and writes the results file.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	pods := flag.Int("pods", 5000, "pods in the cluster")
	nodes := flag.Int("nodes", 500, "nodes the pods are spread over")
	services := flag.Int("services", 500, "Services; every other pod is behind one")
	watchers := flag.Int("watchers", 20, "podnet stores (and kube-proxy watch sets), one per node")
	churn := flag.Int("churn", 200, "pods replaced one by one while watched")
	modes := flag.String("modes", "no-watchers,all,endpoints,none,kube-proxy", "what to measure, in order")
	results := flag.String("results", fmt.Sprintf("bench/results/%s-issue17-apiserver-load.md", time.Now().UTC().Format(time.DateOnly)), "results file (markdown)")
	flag.Parse()

	out, err := filepath.Abs(*results)
	if err != nil {
		fail(err)
	}
	table := out + ".table"
	args := []string{
		"test", "-count=1", "-timeout", "90m", "-run", "^TestAPIServerLoad$", "-v", "./receiver/internal/k8smeta/", "-args",
		fmt.Sprint("-load.pods=", *pods), fmt.Sprint("-load.nodes=", *nodes), fmt.Sprint("-load.services=", *services),
		fmt.Sprint("-load.watchers=", *watchers), fmt.Sprint("-load.churn=", *churn), "-load.modes=" + *modes, "-load.results=" + table,
	}
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fail(fmt.Errorf("go %s: %w", strings.Join(args, " "), err))
	}
	measured, err := os.ReadFile(table)
	if err != nil {
		fail(err)
	}
	_ = os.Remove(table)
	header := fmt.Sprintf("# podnet watches: what they cost the API server\n\nCommand: `go run ./bench/cmd/podnet-apiserver-load %s` (`make bench-apiserver-load`)\n\n", strings.Join(os.Args[1:], " "))
	if err := os.WriteFile(out, append([]byte(header), measured...), 0o644); err != nil {
		fail(err)
	}
	fmt.Println("wrote", out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "podnet-apiserver-load:", err)
	os.Exit(1)
}
