package main

import "github.com/podnet/podnet/bench/internal/agentproc"

// startAgent starts podnet-agent for a scenario, with a CPU profile when profile is set.
func startAgent(path string, sc scenario, profile string) (*agentproc.Proc, error) {
	args := []string{"-pipelines", sc.pipelines, "-config", sc.config}
	if profile != "" {
		args = append(args, "-cpuprofile", profile)
	}
	return agentproc.Start(path, args, sc.env)
}
