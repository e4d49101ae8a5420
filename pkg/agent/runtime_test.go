package agent

import (
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-fim/vigil/pkg/config"
)

// TestRestartKeys: a reload names the changed keys it does not apply, and
// only those.
func TestRestartKeys(t *testing.T) {
	parse := func(src string) *config.Config {
		t.Helper()
		c, err := config.Parse("x.toml", []byte(src+"\n[[watch]]\npath = \"/etc/passwd\"\n"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := parse("")
	cur := parse(`[agent]
queue_size = 128
[sensor]
max_depth = 4
[output.syslog]
address = "udp://127.0.0.1:514"
[metrics]
enabled = true
[coalesce]
window = "1s"
[diff]
redact = ["^key="]
[[watch]]
path = "/etc/group"`)
	want := []string{"agent.queue_size", "sensor.max_depth", "output.syslog.address", "metrics.enabled"}
	if got := restartKeys(old, cur); !reflect.DeepEqual(got, want) {
		t.Errorf("restart keys = %v, want %v", got, want)
	}
	if got := restartKeys(old, parse("")); len(got) != 0 {
		t.Errorf("the same configuration needs a restart for %v", got)
	}
}

// TestConfigErrors: a configuration error is split into its problems, each
// naming file:line: key.
func TestConfigErrors(t *testing.T) {
	_, err := config.Parse("bad.toml", []byte("[sensor]\nmax_depth = 99\nbogus = 1\n[[watch]]\npath = \"x\"\n"))
	got := configErrors(err)
	if len(got) != 3 || !strings.HasPrefix(got[0], "bad.toml:") {
		t.Fatalf("problems = %q", got)
	}
	for _, want := range []string{"sensor.max_depth: 99", "sensor.bogus: unknown key", `watch.0.path: "x" must be absolute`} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("problems lack %q: %q", want, got)
		}
	}
}

func TestLatencyHistogram(t *testing.T) {
	var h Histogram
	for _, v := range []float64{0.0001, 0.0005, 0.003, 20} {
		h.observe(v)
	}
	if h.Count != 4 || h.Counts[0] != 2 || h.Counts[3] != 1 || h.Counts[len(h.Counts)-1] != 1 {
		t.Errorf("histogram = %+v", h)
	}
	c := h.clone()
	c.Counts[0] = 99
	if h.Counts[0] != 2 {
		t.Error("a snapshot shares the live counts")
	}
}
