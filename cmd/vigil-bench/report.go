package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/template"
)

//go:embed benchmarks.md.tmpl
var reportTemplate string

// The published baselines of issue 8: Wazuh deleting 50,000 files on one CPU.
const (
	wazuhAudit = 17_850
	wazuhEBPF  = 6_100
)

type guestRun struct {
	Kernel  string
	Results Results
}

type reportView struct {
	Host    Results
	Guests  []guestRun
	Targets []target
	// rows of the overhead table, one per workload
	Overhead []ohRow
	Guest    []guestRow
	GuestTP  bool // the guests also measured the tracepoint object
	// GuestFentry, GuestLSM: the guests also measured the fentry object,
	// the BPF-LSM object (where the BPF LSM runs)
	GuestFentry, GuestLSM bool
	Bursts                []burstRow
	Scan                  []ScanResult
	Speedup               string
	Latency               []Latency
	Foot                  []Footprint
	Wazuh                 [2]int
}

type ohRow struct {
	Workload, Op string
	Ops          int
	BaseNs       string
	Cells        []string // vigil, auditd, inotifywait
}

type guestRow struct {
	Kernel, Release, Object, Workload string
	Vigil, Fentry, LSM, Tracepoint    string
	Pairs                             int
}

type burstRow struct {
	Workload                          string
	Truth                             int
	Live, Recovered, Lost, Accounted  string
	Auditd, Inotify                   string
	VigilSecs, AuditdSecs, InotifySec string
}

type target struct {
	What, Want, Got, Verdict string
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	hostPath := fs.String("host", "", "the host results (vigil-bench host -out)")
	out := fs.String("o", "docs/benchmarks.md", "the document to write")
	notes := fs.String("notes", "", "a hand-written section appended verbatim (the analysis)")
	var guests multiFlag
	fs.Var(&guests, "guest", "KERNEL=FILE: one matrix guest's results line (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var v reportView
	if err := readJSON(*hostPath, &v.Host); err != nil {
		return err
	}
	for _, g := range guests {
		k, p, ok := strings.Cut(g, "=")
		if !ok {
			return fmt.Errorf("-guest %q: want KERNEL=FILE", g)
		}
		gr := guestRun{Kernel: k}
		if err := readJSON(p, &gr.Results); err != nil {
			return err
		}
		v.Guests = append(v.Guests, gr)
	}
	v.build()
	t, err := template.New("benchmarks").Funcs(template.FuncMap{
		"f1": func(x float64) string { return fmt.Sprintf("%.1f", x) },
		"f2": func(x float64) string { return fmt.Sprintf("%.2f", x) },
		"ver": func(m map[string]string, k string) string {
			if s := m[k]; s != "" {
				return s
			}
			return "not installed"
		},
	}).Parse(reportTemplate)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, &v); err != nil {
		return err
	}
	if *notes != "" {
		n, err := os.ReadFile(*notes)
		if err != nil {
			return err
		}
		b.WriteString("\n")
		b.Write(n)
	}
	return os.WriteFile(*out, b.Bytes(), 0o644)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func readJSON(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// ratio formats a spread of ratios: median [min–max].
func ratio(s Spread) string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx [%.2f–%.2f]", s.Median, s.Min, s.Max)
}

// spreadVerdict judges a ratio against an upper bound: met when every
// pair is within it, "median only" when the median is but the spread
// crosses it (the noise of the shared machine is larger than the margin).
func spreadVerdict(s Spread, bound float64) string {
	switch {
	case s.N > 0 && s.Max <= bound:
		return "met"
	case s.N > 0 && s.Median <= bound:
		return "met by the median; the spread crosses it"
	}
	return "**not met**"
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func (v *reportView) find(tool, workload string) (Overhead, bool) {
	for _, o := range v.Host.Overhead {
		if o.Tool == tool && o.Workload == workload {
			return o, true
		}
	}
	return Overhead{}, false
}

func (v *reportView) build() {
	v.Wazuh = [2]int{wazuhAudit, wazuhEBPF}
	tools := []string{"vigil", "auditd", "inotifywait"}
	var workloads []string
	for _, o := range v.Host.Overhead {
		if o.Tool == "vigil" {
			workloads = append(workloads, o.Workload)
		}
	}
	belowAudit := len(workloads) > 0
	var belowDetail []string
	for _, w := range workloads {
		r := ohRow{Workload: w}
		for i, tn := range tools {
			o, ok := v.find(tn, w)
			if !ok {
				r.Cells = append(r.Cells, "–")
				continue
			}
			if i == 0 {
				r.Op, r.Ops = o.Op, o.Ops
				r.BaseNs = fmt.Sprintf("%.0f [%.0f–%.0f]", o.BaseNs.Median, o.BaseNs.Min, o.BaseNs.Max)
			}
			r.Cells = append(r.Cells, ratio(o.Ratio))
		}
		vo, _ := v.find("vigil", w)
		ao, ok := v.find("auditd", w)
		if ok {
			if vo.Ratio.Median >= ao.Ratio.Median {
				belowAudit = false
			}
			belowDetail = append(belowDetail, fmt.Sprintf("%s %.2f vs %.2f", w, vo.Ratio.Median, ao.Ratio.Median))
		}
		v.Overhead = append(v.Overhead, r)
	}
	if o, ok := v.find("vigil", "write-4k"); ok {
		v.Targets = append(v.Targets, target{"4 KiB writes, tracepoint object (host)", "≤ 1.10x",
			ratio(o.Ratio), spreadVerdict(o.Ratio, 1.10)})
	}
	if len(belowDetail) > 0 {
		v.Targets = append(v.Targets, target{"below auditd on every workload (host, medians)", "vigil < auditd",
			strings.Join(belowDetail, "; "), verdict(belowAudit)})
	}
	for _, g := range v.Guests {
		rel := g.Results.Machine.Kernel
		for _, o := range g.Results.Overhead {
			if o.Tool != "vigil" {
				continue
			}
			row := guestRow{Kernel: g.Kernel, Release: rel, Object: o.Sensor, Workload: o.Workload, Vigil: ratio(o.Ratio), Pairs: o.Ratio.N}
			for _, t := range g.Results.Overhead {
				if t.Tool == "vigil-tracepoint" && t.Workload == o.Workload {
					row.Tracepoint = ratio(t.Ratio)
					v.GuestTP = true
				}
				if t.Tool == "vigil-lsm" && t.Workload == o.Workload {
					row.LSM = ratio(t.Ratio)
					v.GuestLSM = true
				}
				if t.Tool == "vigil-fentry" && t.Workload == o.Workload {
					row.Fentry = ratio(t.Ratio)
					v.GuestFentry = true
					if o.Workload == "write-4k" {
						// fentry's added cost at most half of kprobe's (medians)
						added, kp := t.Ratio.Median-1, o.Ratio.Median-1
						v.Targets = append(v.Targets, target{"4 KiB writes, fentry's added cost vs kprobe's (" + g.Kernel + ", emulated)",
							"≤ half", fmt.Sprintf("%+.1f%% vs %+.1f%%", 100*added, 100*kp), verdict(added <= kp/2)})
					}
				}
			}
			v.Guest = append(v.Guest, row)
			if o.Workload == "write-4k" {
				v.Targets = append(v.Targets, target{"4 KiB writes, kprobe object (" + g.Kernel + ", emulated)", "≤ 1.05x",
					ratio(o.Ratio), spreadVerdict(o.Ratio, 1.05)})
			}
		}
	}
	// bursts
	byKey := map[string]Burst{}
	var order []string
	for _, b := range v.Host.Burst {
		if _, seen := byKey["vigil/"+b.Workload]; !seen && b.Tool == "vigil" {
			order = append(order, b.Workload)
		}
		byKey[b.Tool+"/"+b.Workload] = b
	}
	allAccounted, allLive, allItemised := len(order) > 0, len(order) > 0, len(order) > 0
	var itemised []string
	for _, w := range order {
		vb := byKey["vigil/"+w]
		// live or recovered, or declared lost in an events-lost record
		acc := max(vb.Reported, min(vb.Reported+int(vb.Lost), vb.Truth))
		r := burstRow{Workload: w, Truth: vb.Truth,
			Live:      pct(vb.Live, vb.Truth),
			Recovered: fmt.Sprint(vb.Recovered), Lost: fmt.Sprint(vb.Lost),
			Accounted: pct(acc, vb.Truth),
			VigilSecs: fmt.Sprintf("%.2f + %.1f", vb.Seconds, vb.Drain)}
		if vb.Lost > 0 {
			r.Lost = fmt.Sprintf("%d (ring buffer %d, queue %d)", vb.Lost, vb.LostInKernel, vb.LostInQueue)
		}
		if acc < vb.Truth {
			allAccounted = false
		}
		if vb.Live < vb.Truth {
			allLive = false
		}
		if vb.Lost > 0 {
			itemised = append(itemised, fmt.Sprintf("%s: %d recovered records for %d lost", w, vb.Recovered, vb.Lost))
			if vb.Recovered == 0 {
				allItemised = false
			}
		}
		if a, ok := byKey["auditd/"+w]; ok {
			r.Auditd = pct(a.Reported, a.Truth) + fmt.Sprintf(", lost %d", a.Lost)
			r.AuditdSecs = fmt.Sprintf("%.2f + %.1f", a.Seconds, a.Drain)
		}
		if in, ok := byKey["inotifywait/"+w]; ok {
			r.Inotify = pct(in.Reported, in.Truth) + fmt.Sprintf(", overflows %d", in.Lost)
			r.InotifySec = fmt.Sprintf("%.2f + %.1f", in.Seconds, in.Drain)
		}
		v.Bursts = append(v.Bursts, r)
	}
	if len(order) > 0 {
		v.Targets = append(v.Targets,
			target{"bursts: every change accounted for (a live record, a recovered one, or counted in an events-lost record)", "100%", burstSummary(v.Bursts, true), verdict(allAccounted)},
			target{"bursts: a live record with actor for every change", "100%", burstSummary(v.Bursts, false), verdict(allLive)})
		if len(itemised) > 0 {
			v.Targets = append(v.Targets, target{"bursts: files whose records were lost re-read and reported (origin recovered)", "every such file",
				strings.Join(itemised, "; "), verdict(allItemised)})
		}
	}
	v.Latency = v.Host.Latency
	for _, l := range v.Latency {
		if l.Tool == "vigil" {
			v.Targets = append(v.Targets, target{"detection latency p99 (rename-replace, shipped defaults)", "< 10 ms",
				fmt.Sprintf("%.2f ms (p50 %.2f ms, %d/%d seen)", l.P99, l.P50, l.Seen, l.N), verdict(l.P99 < 10 && l.Seen == l.N)})
		}
	}
	v.Scan = v.Host.Scan
	var vs, as float64
	for _, s := range v.Scan {
		switch s.Tool {
		case "vigil":
			vs = s.Seconds.Median
		case "aide":
			as = s.Seconds.Median
		}
	}
	if vs > 0 && as > 0 {
		v.Speedup = fmt.Sprintf("%.2fx", as/vs)
		v.Targets = append(v.Targets, target{"baseline scan of 100,000 files vs aide --init", "≥ 1.5x faster",
			fmt.Sprintf("%.2fx (%.1f s vs %.1f s)", as/vs, vs, as), verdict(as/vs >= 1.5)})
	}
	v.Foot = v.Host.Footprint
	if len(v.Foot) > 0 {
		worst := 0.0
		var parts []string
		for _, f := range v.Foot {
			worst = max(worst, f.PeakMB, f.RSSMB)
			parts = append(parts, fmt.Sprintf("%s %.1f MB (ring buffer mapping %.1f MB of it)", f.State, max(f.PeakMB, f.RSSMB), f.MapsMB))
		}
		v.Targets = append(v.Targets, target{"RSS idle and under 10,000 changes/s (a record each)", "< 40 MB", strings.Join(parts, ", "), verdict(worst < 40)})
	}
	sort.SliceStable(v.Guest, func(i, j int) bool { return v.Guest[i].Kernel < v.Guest[j].Kernel })
}

func pct(n, of int) string {
	if of == 0 {
		return "–"
	}
	return fmt.Sprintf("%d (%.1f%%)", n, 100*float64(n)/float64(of))
}

func burstSummary(rows []burstRow, accounted bool) string {
	var s []string
	for _, r := range rows {
		if accounted {
			s = append(s, r.Workload+" "+r.Accounted)
		} else {
			s = append(s, r.Workload+" "+r.Live)
		}
	}
	return strings.Join(s, "; ")
}
