// Command vigil is a Linux file integrity monitor on eBPF. This file holds
// flags, wiring and signals only; the work is in pkg/.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cilium/ebpf/rlimit"
	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/elf"
	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/control"
	"github.com/vigil-fim/vigil/pkg/kernel"
	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/metrics"
	"github.com/vigil-fim/vigil/pkg/output"
	"github.com/vigil-fim/vigil/pkg/scan"
	"github.com/vigil-fim/vigil/pkg/state"
)

// Set by the linker (see Makefile).
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

const usage = `vigil: file integrity monitoring on eBPF

Usage:
  vigil run [flags]                 watch the configured files and write one JSON record per change
  vigil scan [-config FILE] [-json] [-update]
                                    compare the watched files with the baseline store, without the
                                    kernel sensor (AIDE-style); exit 0 no change, 1 changes, 2 error
  vigil check-config [-config FILE] check a configuration and its drop-ins; exit 1 on any problem
  vigil status [-config FILE] [-socket PATH] [-json]
                                    ask the running agent for its state over its control socket;
                                    exit 0 running, 3 no agent running, 1 another error
  vigil default-config              print the embedded default configuration
  vigil objects                     list the embedded BPF objects and the one this kernel gets
  vigil version                     print the version, commit, build date and embedded objects
  vigil help                        print this help

Without -config, vigil reads /etc/vigil/vigil.toml (and /etc/vigil/conf.d/*.toml) when it
exists, else its embedded default. Run 'vigil run -h' for the run flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "objects":
		return cmdObjects(stdout, stderr)
	case "check-config":
		return cmdCheckConfig(args[1:], stdout, stderr)
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "scan":
		return cmdScan(args[1:], stdout, stderr)
	case "default-config":
		stdout.Write(config.DefaultTOML())
		return 0
	case "version", "--version", "-version":
		return cmdVersion(stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (default /etc/vigil/vigil.toml, else the embedded default)")
	object := fs.String("object", "", "force a BPF object by name (see 'vigil objects'); overrides sensor.object")
	hooks := fs.String("hooks", "", "force a hook type, kprobe or tracepoint; overrides sensor.hooks")
	debug := fs.Bool("debug", false, "log at debug level (full verifier logs)")
	selfTestOnly := fs.Bool("self-test-only", false, "start, run the self-test, write its record and exit (1 if it failed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	level := zerolog.InfoLevel
	if *debug {
		level = zerolog.DebugLevel
	}
	log := zerolog.New(stderr).Level(level).With().Timestamp().Str("log.logger", "vigil").Logger()
	// loadConfig reads the configuration with the flags' overrides: at
	// start, and again on SIGHUP.
	loadConfig := func() (*config.Config, error) {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return nil, err
		}
		if *object != "" {
			cfg.Sensor.Object = *object
		}
		if *hooks != "" {
			cfg.Sensor.Hooks = *hooks
		}
		return cfg, nil
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(stderr, "vigil:", err)
		return 1
	}
	key, err := state.LoadKey(cfg.Agent.StateDir)
	if err != nil {
		log.Error().Err(err).Msg("vigil cannot start")
		return 1
	}
	// The sequence file's lock is the first thing a second agent on the
	// same state directory runs into, before it opens a spool.
	seq, err := state.OpenSequence(cfg.Agent.StateDir)
	if err != nil {
		log.Error().Err(err).Msg("vigil cannot start")
		return 1
	}
	defer func() {
		if err := seq.Close(); err != nil {
			log.Warn().Err(err).Msg("saving the record sequence")
		}
	}()
	hostID, hostIDSource, err := state.HostID(cfg.Agent.StateDir, cfg.Agent.HostID, agent.MachineIDFile)
	if err != nil {
		log.Error().Err(err).Msg("vigil cannot start")
		return 1
	}
	log.Info().Str("host.id", hostID).Str("from", hostIDSource).Msg("host identity")
	out, err := openOutputs(cfg, stdout)
	if err != nil {
		log.Error().Err(err).Msg("vigil cannot start")
		return 1
	}
	defer out.Close()

	handle := agent.NewHandle()
	if p := cfg.Agent.Socket; p != "" && !*selfTestOnly {
		srv, err := control.Listen(p, handle.Stats, version, log)
		if err != nil {
			log.Error().Err(err).Msg("vigil cannot start")
			return 1
		}
		defer srv.Close()
	}
	if cfg.Metrics.Enabled && !*selfTestOnly {
		srv, err := metrics.Listen(cfg.Metrics.Listen, handle.Stats, version)
		if err != nil {
			log.Error().Err(err).Msg("vigil cannot start")
			return 1
		}
		defer srv.Close()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP (systemctl reload): reopen the output file (logrotate) and
	// reload the configuration.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := out.Reopen(); err != nil {
				log.Warn().Err(err).Msg("reopening outputs")
			}
			go handle.Reload(ctx)
		}
	}()
	err = agent.Run(ctx, agent.Options{Config: cfg, Out: out, Log: log, Key: key, SelfTestOnly: *selfTestOnly,
		DropCapabilities: true, Handle: handle, LoadConfig: loadConfig, Sequence: seq, HostID: hostID})
	if err != nil {
		log.Error().Err(err).Msg("vigil stopped")
		return 1
	}
	return 0
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file naming agent.socket (default /etc/vigil/vigil.toml, else the embedded default)")
	socket := fs.String("socket", "", "the control socket (default: agent.socket of the configuration)")
	asJSON := fs.Bool("json", false, "print the agent's answer as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *socket == "" {
		*socket = config.DefaultSocket
		cfg, err := config.Load(*cfgPath)
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "vigil status: %v\n(asking the default socket %s)\n", err, *socket)
		case cfg.Agent.Socket == "":
			fmt.Fprintln(stderr, "vigil status: agent.socket is empty in the configuration: the agent has no control socket")
			return 1
		default:
			*socket = cfg.Agent.Socket
		}
	}
	r, err := control.Query(*socket, 5*time.Second)
	if err != nil {
		if errors.Is(err, control.ErrNoAgent) {
			fmt.Fprintln(stdout, "vigil is not running:", err)
			return 3
		}
		fmt.Fprintln(stderr, "vigil status:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
		return 0
	}
	control.Format(stdout, r)
	return 0
}

func openOutputs(cfg *config.Config, stdout io.Writer) (*output.Fanout, error) {
	var sinks []output.Sink
	if cfg.Output.Stdout {
		sinks = append(sinks, output.Stream{W: stdout, Label: "stdout"})
	}
	if p := cfg.Output.File.Path; p != "" {
		f, err := output.OpenFile(p)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, f)
	}
	fail := func(err error) (*output.Fanout, error) {
		output.NewFanout(sinks...).Close()
		return nil, err
	}
	// Every network output goes through its own spool in the state directory.
	spooled := func(name string, tr output.Transport) error {
		s, err := output.NewSpooled(tr, output.SpoolOptions{
			Path:     filepath.Join(cfg.Agent.StateDir, "spool", name+".db"),
			MaxBytes: int64(cfg.Output.Spool.MaxBytes), MaxAge: cfg.Output.Spool.MaxAge.Duration})
		if err != nil {
			return err
		}
		sinks = append(sinks, s)
		return nil
	}
	if o := cfg.Output.Syslog; o.Address != "" {
		s, err := output.NewSyslog(output.SyslogOptions{
			Address: o.Address, Facility: config.Facilities[o.Facility],
			AppName: o.AppName, HostName: cfg.Agent.HostName, CAFile: o.CAFile, CertFile: o.CertFile, KeyFile: o.KeyFile,
		})
		if err != nil {
			return fail(err)
		}
		if err := spooled("syslog", s); err != nil {
			return fail(err)
		}
	}
	if o := cfg.Output.RELP; o.Address != "" {
		r, err := output.NewRELP(output.RELPOptions{
			Address: o.Address, Facility: config.Facilities[o.Facility], AppName: o.AppName,
			HostName: cfg.Agent.HostName, CAFile: o.CAFile, CertFile: o.CertFile, KeyFile: o.KeyFile,
			Window: o.Window, Timeout: o.Timeout.Duration,
		})
		if err != nil {
			return fail(err)
		}
		if err := spooled("relp", r); err != nil {
			return fail(err)
		}
	}
	return output.NewFanout(sinks...), nil
}

func cmdScan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (default /etc/vigil/vigil.toml, else the embedded default)")
	asJSON := fs.Bool("json", false, "one JSON object per finding")
	update := fs.Bool("update", false, "accept the current state into the baseline")
	storePath := fs.String("state", "", "baseline store (default <agent.state_dir>/state.db; the agent's, so stop it first)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	key, err := state.LoadKey(cfg.Agent.StateDir)
	if err != nil {
		fmt.Fprintln(stderr, "vigil scan:", err)
		return 2
	}
	if *storePath == "" {
		*storePath = filepath.Join(cfg.Agent.StateDir, state.StoreFile)
	}
	store, err := state.Open(*storePath, state.Options{})
	if err != nil {
		fmt.Fprintln(stderr, "vigil scan:", err)
		return 2
	}
	defer store.Close()
	cons, err := consumer.NewAll(agent.ConsumerOptions(cfg, key))
	if err != nil {
		fmt.Fprintln(stderr, "vigil scan:", err)
		return 2
	}
	var progress io.Writer
	if isTerminal(os.Stderr) && !*asJSON {
		progress = os.Stderr
	}
	res, err := scan.Run(context.Background(), cfg.Watch, cfg.Sensor.MaxDepth, store, cons,
		scan.ScanOptions{Update: *update, Progress: progress, Key: key})
	if err != nil {
		fmt.Fprintln(stderr, "vigil scan:", err)
		return 2
	}
	for _, e := range res.Errors {
		fmt.Fprintln(stderr, "vigil scan:", e)
	}
	enc := json.NewEncoder(stdout)
	for _, f := range res.Findings {
		if *asJSON {
			enc.Encode(f)
			continue
		}
		fmt.Fprintf(stdout, "%-18s %s (%s)\n", f.Action, f.Path, f.Kind)
		for _, c := range f.Changes {
			fmt.Fprintf(stdout, "    %s %s\n", c.Type, c.Name)
		}
		for _, l := range f.Attributes.Lines() {
			fmt.Fprintf(stdout, "    %s\n", l)
		}
		for _, l := range scan.EntryLines(&f) {
			fmt.Fprintf(stdout, "    %s\n", l)
		}
	}
	// Newly watched files are not changes: listed, recorded with -update,
	// and they leave the exit status alone.
	for _, p := range res.Added {
		if *asJSON {
			enc.Encode(struct {
				Path   string `json:"path"`
				Action string `json:"action"`
			}{p, "watch-added"})
			continue
		}
		fmt.Fprintf(stdout, "%-18s %s\n", "watch-added", p)
	}
	if !*asJSON {
		switch {
		case res.Baseline:
			fmt.Fprintf(stdout, "baseline recorded: %d files (%d absent) in %s\n", res.Files, res.Absent, res.Duration.Round(time.Millisecond))
		default:
			fmt.Fprintf(stdout, "%d files, %d changed, %s\n", res.Files, len(res.Findings), res.Duration.Round(time.Millisecond))
		}
	}
	switch {
	case len(res.Errors) > 0:
		return 2
	case len(res.Findings) > 0:
		return 1
	}
	return 0
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (default /etc/vigil/vigil.toml, else the embedded default)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "configuration ok: %s (%d watch entries)\n", strings.Join(cfg.Sources, ", "), len(cfg.Watch))
	return 0
}

func cmdObjects(stdout, stderr io.Writer) int {
	man, err := elf.Load()
	if err != nil {
		fmt.Fprintln(stderr, "vigil:", err)
		return 1
	}
	facts, err := kernel.Probe()
	if err != nil {
		fmt.Fprintln(stderr, "vigil:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%-11s %-11s %-6s %-44s %s\n", "NAME", "HOOKS", "BTF", "BUILT AGAINST", "SHA256")
	for _, o := range man.Objects {
		fmt.Fprintf(stdout, "%-11s %-11s %-6s %-44s %s\n", o.Name, o.Hooks, o.BTF, o.BTFKernel, o.SHA256[:16])
	}
	fmt.Fprintf(stdout, "\nkernel %s (BTF %v, kprobes %v) would try, in order:\n", facts.Release, facts.BTF, facts.Kprobes)
	cands, refused := loader.Order(man.Objects, facts, loader.Options{})
	// As root, each candidate that passes the BTF check is also loaded (not
	// attached) until one loads: the kernel's own refusals (a verifier
	// rejection, fentry refused with EPERM) show, and so does the object
	// vigil would run.
	root := os.Geteuid() == 0
	if root {
		if err := rlimit.RemoveMemlock(); err != nil {
			fmt.Fprintln(stderr, "vigil: lifting the memlock limit:", err)
		}
	}
	chosen := ""
	for i, c := range cands {
		spec, err := loader.Spec(c.Object)
		verdict := "ok"
		if err != nil {
			verdict = err.Error()
		} else if err := loader.Check(c.Object, spec, facts); err != nil {
			verdict = "refused: " + err.Error()
		}
		load := ""
		switch {
		case verdict != "ok":
		case !root:
			load = " [load: not tried, not root]"
		case chosen != "":
			load = " [load: not tried, " + chosen + " loads first]"
		default:
			if err := loader.LoadOnly(c, facts, loader.Options{}); err != nil {
				load = " [load: refused: " + err.Error() + "]"
			} else {
				load = " [load: ok: vigil would run this object (" + c.Object.Hooks + ")]"
				chosen = c.Object.Name
			}
		}
		fmt.Fprintf(stdout, "  %d. %s: %s [BTF check: %s]%s\n", i+1, c.Object.Name, c.Why, verdict, load)
	}
	for _, r := range refused {
		fmt.Fprintf(stdout, "  -  %s: %s\n", r.Object, r.Reason)
	}
	return 0
}

func cmdVersion(stdout, stderr io.Writer) int {
	man, err := elf.Load()
	if err != nil {
		fmt.Fprintln(stderr, "vigil:", err)
		return 1
	}
	v := struct {
		Version string       `json:"version"`
		Commit  string       `json:"commit"`
		Date    string       `json:"date"`
		Objects []elf.Object `json:"objects"`
	}{version, commit, date, man.Objects}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(v)
	return 0
}
