package expand

import "testing"

func TestKindFor(t *testing.T) {
	for p, want := range map[string]string{
		"/etc/passwd": "passwd", "/etc/sudoers.d/10-x": "sudoers", "/etc/ssh/sshd_config.d/a.conf": "sshd_config",
		"/chroot/etc/shadow": "shadow", "/x/gshadow": "gshadow", "/srv/root/.ssh/authorized_keys2": "authorized_keys",
		"/etc/hosts": "hash", "/etc/passwd-": "hash",
	} {
		if got := KindFor(p); got != want {
			t.Errorf("KindFor(%s) = %q, want %q", p, got, want)
		}
	}
}
