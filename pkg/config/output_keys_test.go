package config

import (
	"strings"
	"testing"
	"time"
)

func TestOutputSpoolRELPKeys(t *testing.T) {
	c, err := Parse("ok.toml", []byte(`[agent]
host_id = "generated"
[output.relp]
address = "relp+tls://relay.example.net:2514"
ca_file = "/etc/vigil/ca.pem"
cert_file = "/etc/vigil/client.pem"
key_file = "/etc/vigil/client.key"
window = 64
[output.spool]
max_bytes = 10485760
max_age = "24h"
[[watch]]
path = "/etc/passwd"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Output.RELP.Window != 64 || c.Output.RELP.Facility != "authpriv" || c.Output.RELP.Timeout.Duration != 30*time.Second ||
		c.Output.Spool.MaxBytes != 10<<20 || c.Output.Spool.MaxAge.Duration != 24*time.Hour || c.Agent.HostID != "generated" {
		t.Errorf("parsed %+v %+v %q", c.Output.RELP, c.Output.Spool, c.Agent.HostID)
	}
	d := Defaults()
	if d.Output.Spool.MaxBytes != 256<<20 || d.Output.Spool.MaxAge.Duration != 7*24*time.Hour || d.Output.RELP.Window != 128 {
		t.Errorf("defaults %+v %+v", d.Output.Spool, d.Output.RELP)
	}

	_, err = Parse("bad.toml", []byte(`[agent]
host_id = "two words"
[output.relp]
address = "tcp://relay:2514"
window = 0
cert_file = "/c.pem"
timeout = "1ms"
[output.spool]
max_bytes = 1000
max_age = "1s"
[output.syslog]
key_file = "/k.pem"
[[watch]]
path = "/etc/passwd"
`))
	if err == nil {
		t.Fatal("bad output keys accepted")
	}
	for _, want := range []string{
		`bad.toml:2: agent.host_id: "two words" must be`,
		`bad.toml:4: output.relp.address: "tcp://relay:2514" must be relp://host:port or relp+tls://host:port`,
		`bad.toml:5: output.relp.window: 0 must be from 1 to 65536`,
		`bad.toml:3: output.relp.key_file: missing`,
		`bad.toml:7: output.relp.timeout: 1ms must be from 1s to 10m`,
		`bad.toml:9: output.spool.max_bytes: 1000 must be from 1048576`,
		`bad.toml:10: output.spool.max_age: 1s must be 0s (no limit) or from 1m to 8760h`,
		`bad.toml:11: output.syslog.cert_file: missing`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
