// Package promapi reads instant vectors from a Prometheus server's HTTP API
// (/api/v1/query): what the service-map tool draws, and what the end-to-end tests read back
// from a real Prometheus.
package promapi // import "github.com/podnet/podnet/internal/promapi"

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Sample is one series of an instant vector.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query evaluates promql at the server's current time. baseURL is the server's root, e.g.
// http://127.0.0.1:9090. Anything but a vector result is an error.
func Query(ctx context.Context, client *http.Client, baseURL, promql string) ([]Sample, error) {
	u := strings.TrimRight(baseURL, "/") + "/api/v1/query?" + url.Values{"query": {promql}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("prometheus answered %s with %q: %w", resp.Status, truncate(body), err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s (query %s)", r.Error, promql)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("prometheus returned a %s, want a vector (query %s)", r.Data.ResultType, promql)
	}
	samples := make([]Sample, 0, len(r.Data.Result))
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("prometheus: value %v of %v: %w", s.Value[1], s.Metric, err)
		}
		samples = append(samples, Sample{Labels: s.Metric, Value: v})
	}
	return samples, nil
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
