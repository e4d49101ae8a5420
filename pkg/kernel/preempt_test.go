package kernel

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

// TestPreemptModel: the model in force from debugfs, else the kernel's
// configuration with the preempt= boot parameter over a dynamic kernel's
// default, else unknown.
func TestPreemptModel(t *testing.T) {
	saved := preemptFiles
	defer func() { preemptFiles = saved }()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	preemptFiles.debugfs = filepath.Join(dir, "absent")
	preemptFiles.cmdline = write("cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/vda1 quiet\n")
	preemptFiles.config = filepath.Join(dir, "config-")
	preemptFiles.version = filepath.Join(dir, "version")
	preemptFiles.procConfig = filepath.Join(dir, "absent.gz")
	for _, c := range []struct {
		name, debugfs, version, config, cmdline, want string
	}{
		{"debugfs", "none voluntary full (lazy)\n", "", "CONFIG_PREEMPT_VOLUNTARY=y\n", "", PreemptLazy},
		{"5.10's version", "", "#1 SMP Debian 5.10.223-1 (2024-08-10)\n", "CONFIG_PREEMPT=y\n", "", PreemptVoluntary},
		{"a preemptible build's version", "", "#1 SMP PREEMPT Tue Jan 1\n", "", "", PreemptFull},
		{"an RT build's version", "", "#1 SMP PREEMPT_RT Debian\n", "", "", PreemptFull},
		{"a dynamic build's version, its config", "", "#1 SMP PREEMPT_DYNAMIC Debian 7.3.4-1\n",
			"CONFIG_PREEMPT_LAZY=y\nCONFIG_PREEMPT_DYNAMIC=y\n", "", PreemptLazy},
		{"a dynamic build's version, no config", "", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1\n", "", "", ""},
		{"7.x config", "", "", "CONFIG_PREEMPT_LAZY=y\nCONFIG_PREEMPT_DYNAMIC=y\n", "", PreemptLazy},
		{"6.x config", "", "", "# CONFIG_PREEMPT_NONE is not set\nCONFIG_PREEMPT_VOLUNTARY=y\nCONFIG_PREEMPT_DYNAMIC=y\n", "", PreemptVoluntary},
		{"boot parameter", "", "", "CONFIG_PREEMPT_VOLUNTARY=y\nCONFIG_PREEMPT_DYNAMIC=y\n", "quiet preempt=full", PreemptFull},
		{"boot parameter, not dynamic", "", "", "CONFIG_PREEMPT_VOLUNTARY=y\n", "preempt=full", PreemptVoluntary},
		{"rt", "", "", "CONFIG_PREEMPT_RT=y\n", "", PreemptFull},
		{"nothing readable", "", "", "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(preemptFiles.debugfs)
			os.Remove(preemptFiles.config + "9.9.0")
			os.Remove(preemptFiles.version)
			if c.version != "" {
				write("version", c.version)
			}
			if c.debugfs != "" {
				preemptFiles.debugfs = write("preempt", c.debugfs)
				defer func() { preemptFiles.debugfs = filepath.Join(dir, "absent") }()
			}
			if c.config != "" {
				write("config-9.9.0", c.config)
			}
			if c.cmdline != "" {
				write("cmdline", c.cmdline)
				defer write("cmdline", "quiet\n")
			}
			got, src := PreemptModel("9.9.0")
			if got != c.want || (got != "" && src == "") {
				t.Errorf("PreemptModel = %q from %q, want %q", got, src, c.want)
			}
			if KernelPreempts(got) != (c.want != PreemptNone && c.want != PreemptVoluntary) {
				t.Errorf("KernelPreempts(%q) wrong", got)
			}
		})
	}
}

// TestPreemptModelProcConfig: without debugfs and /boot, a dynamic
// kernel's own configuration (/proc/config.gz, as on the development
// host: PREEMPT_DYNAMIC, default none) settles the model, with the boot
// parameter over it.
func TestPreemptModelProcConfig(t *testing.T) {
	saved := preemptFiles
	defer func() { preemptFiles = saved }()
	dir := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("CONFIG_PREEMPT_NONE=y\n# CONFIG_PREEMPT_VOLUNTARY is not set\nCONFIG_PREEMPT_DYNAMIC=y\n"))
	zw.Close()
	files := map[string]string{"version": "#1 SMP PREEMPT_DYNAMIC @0\n", "config.gz": gz.String(), "cmdline": "quiet\n"}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	preemptFiles.debugfs = filepath.Join(dir, "absent")
	preemptFiles.config = filepath.Join(dir, "config-")
	preemptFiles.version = filepath.Join(dir, "version")
	preemptFiles.procConfig = filepath.Join(dir, "config.gz")
	preemptFiles.cmdline = filepath.Join(dir, "cmdline")
	if got, src := PreemptModel("9.9.0"); got != PreemptNone || src != preemptFiles.procConfig {
		t.Errorf("PreemptModel = %q from %q, want %q from %s", got, src, PreemptNone, preemptFiles.procConfig)
	}
	if err := os.WriteFile(preemptFiles.cmdline, []byte("quiet preempt=lazy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := PreemptModel("9.9.0"); got != PreemptLazy {
		t.Errorf("with preempt=lazy: PreemptModel = %q, want %q", got, PreemptLazy)
	}
}
