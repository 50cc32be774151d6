package main

import (
	"strings"

	"github.com/podnet/podnet/bench/internal/agentproc"
)

// nodeNetnsVar in a scenario's config stands for the routed node's namespace, whose path is
// known once the harness has created it.
const nodeNetnsVar = "$NODE_NETNS"

// startAgent starts podnet-agent for a scenario, with a CPU profile when profile is set.
func startAgent(path string, sc scenario, p *pods, profile string) (*agentproc.Proc, error) {
	config := sc.config
	if p.node != nil {
		config = strings.ReplaceAll(config, nodeNetnsVar, p.node.netnsPath())
	}
	args := []string{"-pipelines", sc.pipelines, "-config", config}
	if profile != "" {
		args = append(args, "-cpuprofile", profile)
	}
	return agentproc.Start(path, args, sc.env)
}
