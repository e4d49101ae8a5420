package consumer

import (
	"regexp"
	"strings"
	"testing"
)

const nginxConf = `user www-data;
worker_processes auto;
pid /run/nginx.pid;

events {
	worker_connections 768;
}

http {
	sendfile on;
	tcp_nopush on;
	types_hash_max_size 2048;
	include /etc/nginx/mime.types;
	default_type application/octet-stream;
	ssl_protocols TLSv1.2 TLSv1.3;
	access_log /var/log/nginx/access.log;
	gzip on;
	include /etc/nginx/conf.d/*.conf;
}
`

func TestDiffConsumer(t *testing.T) {
	c := newC(t, KindDiff)
	tests := []struct {
		name, cur string
		want      []Change
	}{
		{"unchanged", nginxConf, nil},
		{"one line changed", strings.Replace(nginxConf, "gzip on;", "gzip off;", 1), []Change{{
			Type: "lines-changed", Name: "/etc/nginx/nginx.conf", New: m("added", "1", "removed", "1"),
			Text: "--- /etc/nginx/nginx.conf\n+++ /etc/nginx/nginx.conf\n@@ -14,6 +14,6 @@\n" +
				" \tdefault_type application/octet-stream;\n \tssl_protocols TLSv1.2 TLSv1.3;\n \taccess_log /var/log/nginx/access.log;\n" +
				"-\tgzip on;\n+\tgzip off;\n \tinclude /etc/nginx/conf.d/*.conf;\n }\n",
		}}},
		{"two hunks, no final newline", "# managed\n" + strings.TrimSuffix(nginxConf, "\n"), []Change{{
			Type: "lines-changed", Name: "/etc/nginx/nginx.conf", New: m("added", "2", "removed", "1"),
			Text: "--- /etc/nginx/nginx.conf\n+++ /etc/nginx/nginx.conf\n@@ -1,3 +1,4 @@\n+# managed\n user www-data;\n worker_processes auto;\n pid /run/nginx.pid;\n" +
				"@@ -16,4 +17,4 @@\n \taccess_log /var/log/nginx/access.log;\n \tgzip on;\n \tinclude /etc/nginx/conf.d/*.conf;\n-}\n+}\n\\ No newline at end of file\n",
		}}},
		{"line endings only", strings.ReplaceAll(nginxConf, "\n", "\r\n"), []Change{{
			Type: "lines-changed", Name: "/etc/nginx/nginx.conf", New: m("added", "0", "removed", "0"), Flags: []string{"line-endings-or-encoding"},
		}}},
		{"emptied", "", []Change{{
			Type: "lines-changed", Name: "/etc/nginx/nginx.conf", New: m("added", "0", "removed", "19"),
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diffOf(t, c, "/etc/nginx/nginx.conf", nginxConf, tt.cur)
			if tt.name == "emptied" && len(got) == 1 {
				if !strings.HasPrefix(got[0].Text, "--- /etc/nginx/nginx.conf\n+++ /etc/nginx/nginx.conf\n@@ -1,19 +0,0 @@\n-user www-data;\n") {
					t.Errorf("text %q", got[0].Text)
				}
				got[0].Text = ""
			}
			checkChanges(t, got, tt.want)
		})
	}
}

func TestDiffFromAbsentAndBinary(t *testing.T) {
	c := newC(t, KindDiff)
	absent := parseAbsent(t, c, "/etc/motd")
	st, _ := parse(t, c, "/etc/motd", "hello\nworld\n")
	ch, err := c.Diff(absent, st)
	if err != nil || len(ch) != 1 || ch[0].Text != "--- /etc/motd\n+++ /etc/motd\n@@ -0,0 +1,2 @@\n+hello\n+world\n" {
		t.Fatalf("%v %s", err, js(ch))
	}
	if ch, _ := c.Diff(st, absent); ch != nil {
		t.Errorf("present -> absent gave %s", js(ch))
	}
	bin, _ := parse(t, c, "/etc/motd", "\x7fELF\x00\x01")
	ch, err = c.Diff(st, bin)
	if err != nil || len(ch) != 1 || ch[0].Type != "content-changed" || ch[0].Old["size"] != "12" || ch[0].New["size"] != "6" ||
		len(ch[0].New["fingerprint"]) != 16 || ch[0].Text != "" || strings.Join(ch[0].Flags, ",") != "binary" {
		t.Fatalf("%v %s", err, js(ch))
	}
	big, probs := parse(t, c, "/etc/motd", strings.Repeat("x\n", diffMaxContent))
	checkProblems(t, probs, 0)
	if ch, _ := c.Diff(st, big); len(ch) != 1 || strings.Join(ch[0].Flags, ",") != "too-large" {
		t.Errorf("too large: %s", js(ch))
	}
}

func TestDiffTruncated(t *testing.T) {
	c, err := New(KindDiff, Options{Key: testKey, DiffMaxBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	var old, cur strings.Builder
	for i := 0; i < 100; i++ {
		old.WriteString("line " + strings.Repeat("o", i%7) + "\n")
		cur.WriteString("line " + strings.Repeat("n", i%7) + "\n")
	}
	ch := diffOf(t, c, "/f", old.String(), cur.String())
	if len(ch) != 1 {
		t.Fatal(js(ch))
	}
	x := ch[0]
	if len(x.Text) > 200 || !strings.HasSuffix(x.Text, "\n... (truncated)\n") || strings.Join(x.Flags, ",") != "truncated" || x.New["added"] != x.New["removed"] || x.New["added"] == "0" {
		t.Errorf("%d bytes: %s", len(x.Text), js(x))
	}
	// a single line longer than the limit is cut mid-line
	ch = diffOf(t, c, "/f", "a\n", strings.Repeat("é", 500)+"\n")
	if len(ch[0].Text) > 200 || !strings.HasSuffix(ch[0].Text, "\n... (truncated)\n") || !strings.Contains(ch[0].Text, "+éé") {
		t.Errorf("%d %q", len(ch[0].Text), ch[0].Text)
	}
}

func TestDiffRedaction(t *testing.T) {
	c := newC(t, KindDiff)
	old := "host = db1\npassword = hunter2\nport = 5432\n"
	ch := diffOf(t, c, "/etc/app.conf", old, strings.Replace(old, "hunter2", "hunter3", 1))
	if len(ch) != 1 {
		t.Fatal(js(ch))
	}
	red := regexp.MustCompile(`^\[REDACTED sha256:[0-9a-f]{12}\]$`)
	var minus, plus string
	for _, l := range strings.Split(ch[0].Text, "\n") {
		switch {
		case strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "---"):
			minus = l[1:]
		case strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "+++"):
			plus = l[1:]
		}
	}
	if !red.MatchString(minus) || !red.MatchString(plus) || minus == plus {
		t.Errorf("redaction: %q %q", minus, plus)
	}
	// custom patterns replace the defaults; PEM blocks are always redacted
	c2, _ := New(KindDiff, Options{Key: testKey, Redact: []*regexp.Regexp{regexp.MustCompile(`^host`)}})
	st, _ := parse(t, c2, "/f", old+"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\nafter\n")
	s := string(st)
	if strings.Contains(s, "db1") || !strings.Contains(s, "hunter2") || strings.Contains(s, "b3BlbnNzaC1rZXktdjEAAAAA") ||
		strings.Contains(s, "BEGIN") || !strings.Contains(s, "after") {
		t.Errorf("state %s", s)
	}
	for _, line := range []string{"DB_PASSWORD=x", `"api_key": "x"`, "client_secret: x", "token=abc", "passwd: files", "PRIVATE_KEY = x", "  Password : x"} {
		if !DefaultRedact[0].MatchString(line) {
			t.Errorf("default redaction misses %q", line)
		}
	}
	for _, line := range []string{"password_min_length 8", "# tokens are rotated", "user = bob"} {
		if DefaultRedact[0].MatchString(line) {
			t.Errorf("default redaction catches %q", line)
		}
	}
}
