package config

import (
	"strings"
	"testing"
)

// TestRuntimeKeys: the control socket and metrics keys, their defaults and
// their errors (file:line: key).
func TestRuntimeKeys(t *testing.T) {
	c, err := Parse("ok.toml", []byte("[[watch]]\npath = \"/etc/passwd\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.Socket != DefaultSocket || c.Metrics.Enabled || c.Metrics.Listen != "127.0.0.1:9477" {
		t.Errorf("defaults: socket %q, metrics %+v", c.Agent.Socket, c.Metrics)
	}
	c, err = Parse("ok.toml", []byte("[agent]\nsocket = \"\"\n[metrics]\nenabled = true\nlisten = \"[::1]:9100\"\n[[watch]]\npath = \"/etc/passwd\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.Socket != "" || !c.Metrics.Enabled || c.Metrics.Listen != "[::1]:9100" {
		t.Errorf("set: socket %q, metrics %+v", c.Agent.Socket, c.Metrics)
	}
	for _, tc := range []struct{ src, want string }{
		{"[agent]\nsocket = \"run/vigil.sock\"\n", `bad.toml:2: agent.socket: "run/vigil.sock" must be an absolute path`},
		{"[metrics]\nlisten = \"9477\"\n", `bad.toml:2: metrics.listen: "9477" is not host:port`},
		{"[metrics]\nenabled = true\nlisten = \"127.0.0.1:http\"\n", `bad.toml:3: metrics.listen: "127.0.0.1:http": port must be a number`},
		{"[metrics]\nenabled = \"yes\"\n", `bad.toml:2: metrics.enabled: want true or false`},
		{"[metrics]\nport = 1\n", `bad.toml:2: metrics.port: unknown key`},
	} {
		_, err := Parse("bad.toml", []byte(tc.src+"[[watch]]\npath = \"/etc/passwd\"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
}
