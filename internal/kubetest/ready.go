package kubetest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// waitReady polls url until it answers 200, the process exits or the timeout passes.
func waitReady(p *process, client *http.Client, url, bearer string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	defer client.CloseIdleConnections() // keep the test free of lingering connection goroutines
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("%s exited while starting:\n%s", p.name, p.logTail())
		}
		if last = probe(ctx, client, url, bearer); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v (%w):\n%s", p.name, timeout, last, p.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func probe(ctx context.Context, client *http.Client, url, bearer string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	return nil
}
