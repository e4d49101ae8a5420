// Package config reads vigil's TOML configuration: the main file, its
// conf.d drop-ins merged in name order, and the embedded default. Every
// problem (unknown key, wrong type, impossible value) is reported at once,
// each naming the file, the key's full path and its line.
package config

import (
	_ "embed"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/vigil-fim/vigil/pkg/consumer"
)

// DefaultPath is read when no --config is given and it exists.
const DefaultPath = "/etc/vigil/vigil.toml"

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML returns the embedded default configuration's text.
func DefaultTOML() []byte { return append([]byte(nil), defaultTOML...) }

// Config is the whole configuration. Field tags name the TOML keys; the
// comments are the reference (docs/config.md repeats them with defaults).
type Config struct {
	Agent    Agent    `toml:"agent"`
	Sensor   Sensor   `toml:"sensor"`
	Coalesce Coalesce `toml:"coalesce"`
	Diff     Diff     `toml:"diff"`
	Output   Output   `toml:"output"`
	Metrics  Metrics  `toml:"metrics"`
	Packages Packages `toml:"packages"`
	Watch    []Watch  `toml:"watch"`
	// Expect lists the expected-change rules ([[expect]]).
	Expect []Expect `toml:"expect"`

	// Sources lists the files read, in order ("(embedded default)" for it).
	Sources []string `toml:"-"`
	// Warnings are problems that do not stop the configuration from
	// working (each naming file, line and key): a rule that marks every
	// change expected.
	Warnings []*Error `toml:"-"`
}

// Agent holds host-level settings.
type Agent struct {
	// HostName overrides the host name in records.
	HostName string `toml:"host_name"`
	// StateDir holds the baseline store and the host key.
	StateDir string `toml:"state_dir"`
	// QueueSize bounds the pipeline between the ring buffer reader and the consumers.
	QueueSize int `toml:"queue_size"`
	// Heartbeat is how often a heartbeat record with liveness counters is
	// written ("0s" disables).
	Heartbeat Duration `toml:"heartbeat"`
	// TamperCheck is how often vigil checks that its programs and links are
	// still attached and running and its watch entries still in the kernel
	// ("0s" disables).
	TamperCheck Duration `toml:"tamper_check"`
	// Socket is the control socket `vigil status` reads (0600, root only);
	// empty disables it.
	Socket string `toml:"socket"`
	// HostID is host.id in records: "" (the default) takes /etc/machine-id,
	// or, when it is missing or empty, an id vigil generates once and keeps
	// in state_dir/host.id; "generated" always takes the latter; any other
	// value is used as it is.
	HostID string `toml:"host_id"`
}

// Metrics is the Prometheus endpoint, off by default.
type Metrics struct {
	// Enabled serves /metrics on Listen.
	Enabled bool `toml:"enabled"`
	// Listen is the address to serve on (host:port; loopback by default).
	Listen string `toml:"listen"`
}

// Packages is the package databases a package manager's change is checked
// against (docs/events.md, Package managers).
type Packages struct {
	// Verify checks a change made below a package manager against the
	// package database.
	Verify bool `toml:"verify"`
	// Root is the directory the packages' paths are under (dpkg's
	// --instdir, rpm's --root).
	Root string `toml:"root"`
	// DpkgAdmindir is dpkg's database directory.
	DpkgAdmindir string `toml:"dpkg_admindir"`
	// RpmDBPath is rpm's database directory.
	RpmDBPath string `toml:"rpm_dbpath"`
	// Settle bounds the wait for the database to record a change that
	// does not match it yet (dpkg renames a file into place before it
	// writes the package's new digests).
	Settle Duration `toml:"settle"`
}

// DefaultSocket is agent.socket's default: systemd's RuntimeDirectory=vigil.
const DefaultSocket = "/run/vigil/vigil.sock"

// Sensor tunes the kernel side.
type Sensor struct {
	// Object forces a BPF object by name ("auto" chooses; see `vigil objects`).
	Object string `toml:"object"`
	// Hooks forces a hook type: "auto", "lsm", "fentry", "kprobe" or "tracepoint".
	Hooks string `toml:"hooks"`
	// RingBufferKiB sizes the ring buffer: a power of two, at least 4.
	RingBufferKiB int `toml:"ring_buffer_kib"`
	// MaxWatches sizes the in-kernel watch map (inodes).
	MaxWatches int `toml:"max_watches"`
	// MaxDepth bounds recursive watches (1..32; DefaultMaxDepth).
	MaxDepth int `toml:"max_depth"`
}

// DefaultMaxDepth is sensor.max_depth when the configuration leaves it out:
// how many levels below a recursive watch's directory are watched.
const DefaultMaxDepth = 16

// Coalesce merges bursts of writes to one file into one record.
type Coalesce struct {
	// Window is how long writes to one file are gathered ("0s" disables).
	Window Duration `toml:"window"`
}

// Diff tunes the generic text diff.
type Diff struct {
	// MaxBytes bounds one record's diff text.
	MaxBytes int `toml:"max_bytes"`
	// Redact lists regular expressions: matching lines never leave the host.
	Redact []string `toml:"redact"`
}

// Output says where records go.
type Output struct {
	// Stdout writes records to standard output.
	Stdout bool       `toml:"stdout"`
	File   FileOutput `toml:"file"`
	Syslog Syslog     `toml:"syslog"`
	RELP   RELP       `toml:"relp"`
	// Spool bounds the on-disk queue of each network output (syslog, relp).
	Spool Spool `toml:"spool"`
}

// RELP sends records to a RELP server (rsyslog's imrelp), acknowledged.
type RELP struct {
	// Address enables the output: "relp://host:port" or "relp+tls://host:port".
	Address string `toml:"address"`
	// Facility and AppName are the messages' syslog facility and APP-NAME.
	Facility string `toml:"facility"`
	AppName  string `toml:"app_name"`
	// CAFile verifies the server over TLS; empty uses the system roots.
	CAFile string `toml:"ca_file"`
	// CertFile and KeyFile are an optional client certificate.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// Window is how many messages may wait for their acknowledgement.
	Window int `toml:"window"`
	// Timeout bounds a connection attempt and the wait for an acknowledgement.
	Timeout Duration `toml:"timeout"`
}

// Spool bounds a network output's on-disk queue (agent.state_dir/spool/).
type Spool struct {
	// MaxBytes bounds the records waiting; past it the oldest are dropped
	// (counted, reported).
	MaxBytes int `toml:"max_bytes"`
	// MaxAge drops records that waited longer ("0s": no limit).
	MaxAge Duration `toml:"max_age"`
}

// FileOutput appends records to a file, reopened on SIGHUP.
type FileOutput struct {
	// Path enables the output when set.
	Path string `toml:"path"`
}

// Syslog sends RFC 5424 messages.
type Syslog struct {
	// Address enables the output: "udp://host:port", "tcp://host:port" or "tls://host:port".
	Address string `toml:"address"`
	// Facility is the syslog facility name (default "authpriv").
	Facility string `toml:"facility"`
	// AppName is the APP-NAME field (default "vigil").
	AppName string `toml:"app_name"`
	// CAFile verifies a TLS server; empty uses the system roots.
	CAFile string `toml:"ca_file"`
	// CertFile and KeyFile are an optional TLS client certificate.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// Watch is one [[watch]] entry.
type Watch struct {
	// Path is a file, a directory or a glob (`/home/*/.ssh/authorized_keys`).
	Path string `toml:"path"`
	// Kind picks the consumer; empty infers it from well-known paths.
	Kind string `toml:"kind"`
	// Recursive watches a directory at any depth (to sensor.max_depth).
	Recursive bool `toml:"recursive"`
	// Exclude lists globs (matched against full paths and base names) left out.
	Exclude []string `toml:"exclude"`
	// Owner is the user (a name, or a numeric uid as a string) every file
	// under the entry must belong to and be changed by: a change by another
	// user, or a file left owned by another, is reported as ownership drift.
	Owner string `toml:"owner"`
	// Group is the group (a name or a numeric gid) every file under the
	// entry must have.
	Group string `toml:"group"`

	// OwnerID and GroupID are Owner and Group resolved on this host when
	// the configuration was read (nil: no expectation).
	OwnerID *uint32 `toml:"-"`
	GroupID *uint32 `toml:"-"`

	// Where the entry was defined, for messages.
	Source string `toml:"-"`
}

// Duration is a time.Duration written as a string ("200ms").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (e.g. \"200ms\"): %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Kinds are the consumer kinds a watch may name (consumer.Kinds).
var Kinds = func() []string {
	out := make([]string, len(consumer.Kinds))
	for i, k := range consumer.Kinds {
		out[i] = string(k)
	}
	return out
}()

// Load reads the configuration: path if given, else DefaultPath when it
// exists, else the embedded default; then the *.toml drop-ins of the
// conf.d directory beside it, in name order.
func Load(path string) (*Config, error) {
	if path == "" {
		if _, err := os.Stat(DefaultPath); err == nil {
			path = DefaultPath
		}
	}
	var srcs []source
	if path == "" {
		srcs = append(srcs, source{name: "(embedded default)", data: defaultTOML})
	} else {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		srcs = append(srcs, source{name: path, data: b})
		dropins, err := filepath.Glob(filepath.Join(filepath.Dir(path), "conf.d", "*.toml"))
		if err != nil {
			return nil, err
		}
		sort.Strings(dropins)
		for _, d := range dropins {
			b, err := os.ReadFile(d)
			if err != nil {
				return nil, fmt.Errorf("reading config drop-in: %w", err)
			}
			srcs = append(srcs, source{name: d, data: b})
		}
	}
	return parse(srcs)
}

// Parse reads one configuration text (no drop-ins), as Load does.
func Parse(name string, data []byte) (*Config, error) {
	return parse([]source{{name: name, data: data}})
}

type source struct {
	name string
	data []byte
}

func parse(srcs []source) (*Config, error) {
	var errs *multierror.Error
	var merged *node
	for _, s := range srcs {
		n, err := parseNode(s.name, s.data)
		if err != nil {
			errs = multierror.Append(errs, err)
			continue
		}
		merged = merge(merged, n)
	}
	if errs != nil {
		return nil, format(errs)
	}
	cfg := Defaults()
	if merged != nil {
		if err := decode(merged, &cfg, nil); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	for _, s := range srcs {
		cfg.Sources = append(cfg.Sources, s.name)
	}
	errs = multierror.Append(errs, validate(&cfg, merged)...)
	if err := errs.ErrorOrNil(); err != nil {
		return nil, format(errs)
	}
	return &cfg, nil
}

// Defaults are the values of every key a file leaves out.
func Defaults() Config {
	return Config{
		Agent: Agent{StateDir: "/var/lib/vigil", QueueSize: 65536, Heartbeat: Duration{time.Minute}, TamperCheck: Duration{10 * time.Second},
			Socket: DefaultSocket},
		Sensor:   Sensor{Object: "auto", Hooks: "auto", RingBufferKiB: 16384, MaxWatches: 65536, MaxDepth: DefaultMaxDepth},
		Coalesce: Coalesce{Window: Duration{200 * time.Millisecond}},
		Diff:     Diff{MaxBytes: 65536},
		Output: Output{Stdout: true, Syslog: Syslog{Facility: "authpriv", AppName: "vigil"},
			RELP:  RELP{Facility: "authpriv", AppName: "vigil", Window: 128, Timeout: Duration{30 * time.Second}},
			Spool: Spool{MaxBytes: 256 << 20, MaxAge: Duration{7 * 24 * time.Hour}}},
		Metrics: Metrics{Listen: "127.0.0.1:9477"},
		Packages: Packages{Verify: true, Root: "/", DpkgAdmindir: "/var/lib/dpkg", RpmDBPath: "/var/lib/rpm",
			Settle: Duration{2 * time.Second}},
	}
}

// validate checks values that parse but cannot work.
func validate(c *Config, root *node) []error {
	var errs []error
	bad := func(path []string, format string, args ...any) {
		errs = append(errs, &Error{Where: root.where(path), Key: strings.Join(path, "."), Msg: fmt.Sprintf(format, args...)})
	}
	oneOf := func(path []string, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	oneOf([]string{"sensor", "hooks"}, c.Sensor.Hooks, "auto", "lsm", "fentry", "kprobe", "tracepoint")
	for _, k := range []struct {
		key, v string
	}{{"root", c.Packages.Root}, {"dpkg_admindir", c.Packages.DpkgAdmindir}, {"rpm_dbpath", c.Packages.RpmDBPath}} {
		if !strings.HasPrefix(k.v, "/") {
			bad([]string{"packages", k.key}, "%q is not an absolute path", k.v)
		}
	}
	if d := c.Packages.Settle.Duration; d < 0 || d > time.Minute {
		bad([]string{"packages", "settle"}, "%s is not within 0s..1m", d)
	}
	if kib := c.Sensor.RingBufferKiB; kib < 4 || kib&(kib-1) != 0 || kib > 1<<20 {
		bad([]string{"sensor", "ring_buffer_kib"}, "%d must be a power of two from 4 to 1048576", kib)
	}
	if n := c.Sensor.MaxWatches; n < 16 || n > 1<<24 {
		bad([]string{"sensor", "max_watches"}, "%d must be from 16 to 16777216", n)
	}
	if d := c.Sensor.MaxDepth; d < 1 || d > 32 {
		bad([]string{"sensor", "max_depth"}, "%d must be from 1 to 32", d)
	}
	if c.Agent.QueueSize < 16 {
		bad([]string{"agent", "queue_size"}, "%d must be at least 16", c.Agent.QueueSize)
	}
	if p := c.Agent.Socket; p != "" && (!filepath.IsAbs(p) || len(p) > 100) {
		bad([]string{"agent", "socket"}, "%q must be an absolute path of at most 100 bytes", p)
	}
	if host, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
		bad([]string{"metrics", "listen"}, "%q is not host:port", c.Metrics.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		bad([]string{"metrics", "listen"}, "%q: port must be a number from 1 to 65535", c.Metrics.Listen)
	} else if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /") {
		bad([]string{"metrics", "listen"}, "%q: bad host", c.Metrics.Listen)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"heartbeat", c.Agent.Heartbeat}, {"tamper_check", c.Agent.TamperCheck}} {
		if d.v.Duration != 0 && (d.v.Duration < 100*time.Millisecond || d.v.Duration > 24*time.Hour) {
			bad([]string{"agent", d.key}, "%s must be 0s (off) or from 100ms to 24h", d.v)
		}
	}
	if c.Coalesce.Window.Duration < 0 || c.Coalesce.Window.Duration > 10*time.Second {
		bad([]string{"coalesce", "window"}, "%s must be from 0s to 10s", c.Coalesce.Window)
	}
	if c.Diff.MaxBytes < 256 {
		bad([]string{"diff", "max_bytes"}, "%d must be at least 256", c.Diff.MaxBytes)
	}
	for i, r := range c.Diff.Redact {
		if _, err := regexp.Compile(r); err != nil {
			bad([]string{"diff", "redact", fmt.Sprint(i)}, "bad regular expression: %v", err)
		}
	}
	if a := c.Output.Syslog.Address; a != "" {
		scheme, _, ok := strings.Cut(a, "://")
		if !ok || (scheme != "udp" && scheme != "tcp" && scheme != "tls") {
			bad([]string{"output", "syslog", "address"}, "%q must be udp://, tcp:// or tls://host:port", a)
		}
	}
	for _, o := range []struct {
		name                string
		facility, cert, key string
	}{{"syslog", c.Output.Syslog.Facility, c.Output.Syslog.CertFile, c.Output.Syslog.KeyFile},
		{"relp", c.Output.RELP.Facility, c.Output.RELP.CertFile, c.Output.RELP.KeyFile}} {
		if _, ok := Facilities[o.facility]; !ok {
			bad([]string{"output", o.name, "facility"}, "unknown facility %q", o.facility)
		}
		if (o.cert == "") != (o.key == "") {
			k := "key_file"
			if o.cert == "" {
				k = "cert_file"
			}
			bad([]string{"output", o.name, k}, "missing: a client certificate needs both cert_file and key_file")
		}
	}
	if a := c.Output.RELP.Address; a != "" {
		scheme, hp, ok := strings.Cut(a, "://")
		if !ok || (scheme != "relp" && scheme != "relp+tls") {
			bad([]string{"output", "relp", "address"}, "%q must be relp://host:port or relp+tls://host:port", a)
		} else if _, port, err := net.SplitHostPort(hp); err != nil || port == "" {
			bad([]string{"output", "relp", "address"}, "%q: want host:port after the scheme", a)
		}
	}
	if w := c.Output.RELP.Window; w < 1 || w > 65536 {
		bad([]string{"output", "relp", "window"}, "%d must be from 1 to 65536", w)
	}
	if d := c.Output.RELP.Timeout.Duration; d < time.Second || d > 10*time.Minute {
		bad([]string{"output", "relp", "timeout"}, "%s must be from 1s to 10m", c.Output.RELP.Timeout)
	}
	if n := c.Output.Spool.MaxBytes; n < 1<<20 || n > 1<<40 {
		bad([]string{"output", "spool", "max_bytes"}, "%d must be from 1048576 (1 MiB) to 1099511627776 (1 TiB)", n)
	}
	if d := c.Output.Spool.MaxAge.Duration; d != 0 && (d < time.Minute || d > 365*24*time.Hour) {
		bad([]string{"output", "spool", "max_age"}, "%s must be 0s (no limit) or from 1m to 8760h", c.Output.Spool.MaxAge)
	}
	if id := c.Agent.HostID; id != "" && !validHostID.MatchString(id) {
		bad([]string{"agent", "host_id"}, "%q must be 1 to 128 letters, digits, '.', '_', ':' or '-'", id)
	}
	validateExpect(c, root, bad)
	if len(c.Watch) == 0 {
		bad([]string{"watch"}, "no [[watch]] entries: nothing to watch")
	}
	for i, w := range c.Watch {
		p := []string{"watch", fmt.Sprint(i)}
		if w.Path == "" {
			bad(append(p, "path"), "missing")
		} else if !filepath.IsAbs(w.Path) {
			bad(append(p, "path"), "%q must be absolute", w.Path)
		} else if _, err := filepath.Match(w.Path, ""); err != nil {
			bad(append(p, "path"), "bad glob %q: %v", w.Path, err)
		}
		if w.Kind != "" {
			oneOf(append(p, "kind"), w.Kind, Kinds...)
		}
		for j, x := range w.Exclude {
			if _, err := filepath.Match(x, ""); err != nil {
				bad(append(p, "exclude", fmt.Sprint(j)), "bad glob %q: %v", x, err)
			}
		}
		if w.Owner != "" {
			if id, err := LookupUser(w.Owner); err != nil {
				bad(append(p, "owner"), "%v", err)
			} else {
				c.Watch[i].OwnerID = &id
			}
		}
		if w.Group != "" {
			if id, err := LookupGroup(w.Group); err != nil {
				bad(append(p, "group"), "%v", err)
			} else {
				c.Watch[i].GroupID = &id
			}
		}
	}
	return errs
}

var validHostID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// Facilities are the syslog facility names and numbers.
var Facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// Error is one configuration problem.
type Error struct {
	Where string // "file:line" or "file"
	Key   string // full key path: "watch.2.kind"
	Msg   string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.Where, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Where, e.Key, e.Msg)
}

func format(errs *multierror.Error) error {
	errs.ErrorFormat = func(es []error) string {
		lines := make([]string, 0, len(es)+1)
		lines = append(lines, fmt.Sprintf("%d problem(s) in the configuration:", len(es)))
		for _, e := range es {
			lines = append(lines, "  "+e.Error())
		}
		return strings.Join(lines, "\n")
	}
	return errs
}
