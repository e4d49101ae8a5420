package config

import (
	"strings"
	"testing"
	"time"
)

func TestHeartbeatAndTamperCheckKeys(t *testing.T) {
	const watch = "\n[[watch]]\npath = \"/etc/passwd\"\n"
	c, err := Parse("t.toml", []byte("[agent]\n"+watch))
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.Heartbeat.Duration != time.Minute || c.Agent.TamperCheck.Duration != 10*time.Second {
		t.Fatalf("defaults: %s %s", c.Agent.Heartbeat, c.Agent.TamperCheck)
	}
	c, err = Parse("t.toml", []byte("[agent]\nheartbeat = \"0s\"\ntamper_check = \"2s\"\n"+watch))
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.Heartbeat.Duration != 0 || c.Agent.TamperCheck.Duration != 2*time.Second {
		t.Fatalf("set: %s %s", c.Agent.Heartbeat, c.Agent.TamperCheck)
	}
	_, err = Parse("t.toml", []byte("[agent]\nheartbeat = \"1ms\"\ntamper_check = \"-1s\"\n"+watch))
	if err == nil {
		t.Fatal("accepted 1ms and -1s")
	}
	for _, want := range []string{"t.toml:2: agent.heartbeat", "t.toml:3: agent.tamper_check"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
