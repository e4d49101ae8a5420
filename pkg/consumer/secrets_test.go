package consumer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

// TestSecretsNeverLeak feeds secrets to every consumer in well-formed and
// damaged lines, then marshals every State, Change, Problem and error and
// checks that no secret substring appears.
func TestSecretsNeverLeak(t *testing.T) {
	yescrypt2 := "$y$j9T$Zm9vYmFyYmF6cXV4$Qm9ndXNIYXNoVmFsdWVGb3JUZXN0aW5nT25seTEyMzQ1"
	bcrypt := "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
	md5 := "$1$abc$5ReXP9fMnmOe00UoHByB.0"
	des := "abJnggxhB/yWI"
	hashes := []string{sha512Hash, yescryptHash, yescrypt2, bcrypt, md5, des}
	// the distinctive tail of each hash: what must never show up
	var secrets []string
	for _, h := range hashes {
		secrets = append(secrets, h[len(h)-10:])
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	pemLines := strings.Split(strings.TrimSpace(pemKey), "\n")
	for _, l := range pemLines[1 : len(pemLines)-1] {
		secrets = append(secrets, l[:20])
	}
	secrets = append(secrets, "hunter2", "s3cr3tT0k3n", "AKIAEXAMPLESECRET")

	shadowOld := "root:" + yescryptHash + ":19700:0:99999:7:::\nalice:" + sha512Hash + ":19701:0:99999:7:::\n"
	shadowNew := "root:!" + yescrypt2 + ":19702:0:99999:7:::\n" + // locked + changed
		"alice:" + md5 + "\n" + // short line
		"bob::" + bcrypt + ":0:99999:7:::\n" + // shifted: hash in an aging field
		bcrypt + ":19000:0:99999:7:::\n" + // name missing: hash in the name field
		"carol:" + des + ":19000:0:99999:7:::\n" +
		"dave:" + des + "\n" + // short
		"broken" + sha512Hash + "\n" // no colon at all
	inputs := map[Kind][2]string{
		KindShadow: {shadowOld, shadowNew},
		KindPasswd: {"alice:x:1000:1000::/home/alice:/bin/bash\n",
			"alice:" + sha512Hash + ":1000:1000::/home/alice:/bin/bash\nbob:" + md5 + ":x\n" + "carol:" + bcrypt + ":abc:1::/:/bin/sh\n"},
		KindGshadow: {"sudo:" + sha512Hash + "::alice\n",
			"sudo:" + yescryptHash + "::alice,bob\nadm:!:" + md5 + ":\n" + bcrypt + ":::\nwheel:" + des + "\n"},
		// group and authorized_keys/sshd_config ignore what they do not model
		KindGroup: {"sudo:x:27:alice\n", "sudo:" + sha512Hash + ":27:alice\nbad:" + md5 + "\n"},
		KindDiff: {"[db]\nhost = db1\npassword = hunter2\n",
			"[db]\nhost = db1\npassword = hunter3\napi_key: s3cr3tT0k3n\n" + `"aws_secret_access_key": "AKIAEXAMPLESECRET"` + "\n" + pemKey + "tail\n"},
		KindAuthorizedKeys: {"", pemKey},
		KindSSHDConfig:     {"", pemKey},
	}
	for kind, io := range inputs {
		c := newC(t, kind)
		var out []any
		var states []State
		for _, content := range []string{io[0], io[1], io[0]} {
			st, probs, err := c.Parse(Input{Path: "/etc/" + string(kind), Content: []byte(content)})
			out = append(out, string(st), probs, errString(err))
			states = append(states, st)
		}
		for _, pair := range [][2]State{{states[0], states[1]}, {states[1], states[2]}, {parseAbsent(t, c, "/x"), states[1]}} {
			ch, err := c.Diff(pair[0], pair[1])
			if len(ch) == 0 && kind != KindGroup && kind != KindAuthorizedKeys && kind != KindSSHDConfig {
				t.Errorf("%s: secret change not detected", kind)
			}
			out = append(out, ch, errString(err))
		}
		blob := js(out)
		for _, s := range secrets {
			if strings.Contains(blob, s) {
				t.Errorf("%s: secret %q leaked in %s", kind, s, blob)
			}
		}
		if kind == KindShadow && !strings.Contains(blob, `"password-changed"`) {
			t.Errorf("shadow: password change not reported: %s", blob)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
