package examples

import (
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/podnet/podnet/internal/netnstest"
)

// checkServiceMap runs the service-map tool (examples/servicemap) against the end-to-end
// test's Prometheus, reads the SVG graphviz drew, and screenshots it in headless Chromium, as
// a person opening it would see it. PODNET_SERVICE_MAP_KEEP=<dir> copies the SVG and PNG there
// (how examples/grafana/service-map.svg was made).
func checkServiceMap(t *testing.T, prom *prometheus, browser *netnstest.Pod) {
	requireBinary(t, "dot", "graphviz")
	chromium := requireBinary(t, "chromium", "chromium")
	dir := t.TempDir()
	tool := filepath.Join(dir, "podnet-servicemap")
	build := exec.Command(goBinary(t), "build", "-o", tool, "./examples/servicemap")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/servicemap: %v\n%s", err, out)
	}
	svg := filepath.Join(dir, "service-map.svg")
	if out, err := exec.Command(tool, "-prometheus", prom.url, "-window", "1m", "-o", svg).CombinedOutput(); err != nil {
		t.Fatalf("podnet-servicemap: %v\n%s", err, out)
	}

	nodes, edges := readSVG(t, svg)
	for _, n := range []string{"pod/shop/frontend", "pod/shop/cart", "pod/shop/db-0", "service/shop/cart"} {
		if _, ok := nodes[n]; !ok {
			t.Errorf("the map has no node %s; nodes: %v", n, nodes)
		}
	}
	if texts := nodes["pod/shop/frontend"]; !slices.Contains(texts, "frontend") || !slices.Contains(texts, "pod · shop") {
		t.Errorf("node frontend is labelled %q, want its name and pod · shop", texts)
	}
	gotEdges := slices.Sorted(maps.Keys(edges))
	wantEdges := []string{"pod/shop/cart->pod/shop/db-0", "pod/shop/frontend->pod/shop/cart", "pod/shop/frontend->service/shop/cart"}
	if d := cmp.Diff(wantEdges, gotEdges); d != "" {
		t.Errorf("edges of the map (-want +got):\n%s", d)
	}
	for edge, wantStats := range map[string][]string{
		"pod/shop/frontend->pod/shop/cart":     {"conn/s", "failed/s", "B/s"},
		"pod/shop/frontend->service/shop/cart": {"conn/s", "B/s"},
		"pod/shop/cart->pod/shop/db-0":         {"conn/s", "B/s"},
	} {
		got := edgeRates(edges[edge])
		if !cmp.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(slices.Values(wantStats))) || slices.Contains(slices.Collect(maps.Values(got)), 0) {
			t.Errorf("edge %s is labelled %q, want positive %v and nothing else", edge, edges[edge], wantStats)
		}
	}

	screenshot := filepath.Join(dir, "service-map.png")
	// In a network namespace of its own with no route out, so that nothing Chromium does at
	// start (updates, metrics) leaves the machine; --no-sandbox: its sandbox refuses to run as
	// root; a private profile directory, so that no other Chromium's state is read or changed.
	shot := browser.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "chromium"), "--hide-scrollbars",
		"--window-size=1000,400", "--screenshot="+screenshot, "file://"+svg)
	// Chromium in a VM can take long to start the first time.
	timer := time.AfterFunc(90*time.Second, func() { _ = shot.Process.Kill() })
	out, err := shot.CombinedOutput()
	timer.Stop()
	if err != nil {
		t.Fatalf("chromium screenshot: %v\n%s", err, out)
	}
	checkScreenshot(t, screenshot)
	if keep := os.Getenv("PODNET_SERVICE_MAP_KEEP"); keep != "" {
		for _, f := range []string{svg, screenshot} {
			copyFile(t, f, filepath.Join(keep, filepath.Base(f)))
		}
	}
}

// readSVG returns graphviz's node and edge groups by <title> (the DOT ids; edges "a->b")
// with the lines of text drawn in each.
func readSVG(t *testing.T, path string) (nodes, edges map[string][]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nodes, edges = map[string][]string{}, map[string][]string{}
	dec := xml.NewDecoder(f)
	var class, title, inside string
	var texts []string
	flush := func() {
		switch class {
		case "node":
			nodes[title] = texts
		case "edge":
			edges[title] = texts
		}
		class, title, texts = "", "", nil
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			inside = el.Name.Local
			if el.Name.Local == "g" {
				for _, a := range el.Attr {
					if a.Name.Local == "class" && (a.Value == "node" || a.Value == "edge") {
						flush()
						class = a.Value
					}
				}
			}
		case xml.CharData:
			switch inside {
			case "title":
				title += string(el)
			case "text":
				texts = append(texts, strings.TrimSpace(string(el)))
			}
		case xml.EndElement:
			inside = ""
		}
	}
	flush()
	return nodes, edges
}

var rateLine = regexp.MustCompile(`^([0-9.e+-]+) (conn/s|failed/s|[kMG]?B/s)$`)

// edgeRates reads "0.05 conn/s", "0.02 failed/s", "3.1 kB/s" lines (bytes under "B/s").
func edgeRates(lines []string) map[string]float64 {
	got := map[string]float64{}
	for _, l := range lines {
		if m := rateLine.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			unit := m[2]
			if strings.HasSuffix(unit, "B/s") {
				unit = "B/s"
			}
			got[unit] = v
		}
	}
	return got
}

// checkScreenshot requires a drawing, not a blank or error page: node fill colour and the
// failing edge's red among the pixels.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var ink, nodeFill, red int
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			switch {
			case r == 0xe8 && g == 0xf0 && b == 0xfe: // the pods' fill, #e8f0fe
				nodeFill++
			case r > 180 && g < 90 && b < 90: // the failing edge, #d62728
				red++
			}
			if r < 128 && g < 128 && b < 128 {
				ink++
			}
		}
	}
	t.Logf("screenshot %dx%d: %d dark pixels, %d of pod fill, %d red", bounds.Dx(), bounds.Dy(), ink, nodeFill, red)
	if ink < 500 || nodeFill < 1000 || red < 50 {
		t.Errorf("%s does not look like the map: %d dark pixels (want ≥ 500), %d of the pods' fill (want ≥ 1000), %d red (want ≥ 50)", path, ink, nodeFill, red)
	}
}

func goBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // SA1019: the test runs where it was built
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
