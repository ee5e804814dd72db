package aggregate

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
)

// Version of llem-aggregate, written into Parquet provenance.
const Version = "0.1.0"

type cmdOpts struct {
	Root              string        `long:"root" value-name:"DIR" description:"look for moved run directories under DIR (matched by their trailing path components)"`
	Parquet           string        `long:"parquet" value-name:"FILE" description:"also write the energy table (one row per run) as Parquet to FILE"`
	SummaryParquet    string        `long:"summary-parquet" value-name:"FILE" description:"write the summary table (one row per config and metric) as Parquet (default: FILE of --parquet with .summary.parquet)"`
	NoRequestFiles    bool          `long:"no-request-files" description:"do not write requests_energy.ndjson (per-request energy) into run directories"`
	GapThreshold      float64       `long:"gap-threshold" default:"0.05" value-name:"REL" description:"flag counter vs power-integral gaps above REL"`
	CVThreshold       float64       `long:"cv-threshold" default:"0.05" value-name:"REL" description:"flag configs whose key figures vary across cycles by more than REL (CV)"`
	MinSamples        int           `long:"min-samples" default:"10" value-name:"N" description:"flag windows with fewer than N readings per device"`
	MinPeriods        float64       `long:"min-periods" default:"5" value-name:"K" description:"flag windows shorter than K sensor update periods"`
	DriftC            float64       `long:"drift-c" default:"10" value-name:"C" description:"flag a temperature change above C degrees over the measure window"`
	BaselineMaxAge    time.Duration `long:"baseline-max-age" default:"2h" value-name:"DUR" description:"flag a baseline further than DUR before or after its run"`
	LagThreshold      time.Duration `long:"lag-threshold" default:"10ms" value-name:"DUR" description:"serving: flag a load generator whose send lag p99 is above DUR (generator_lagged)"`
	ErrorThreshold    float64       `long:"error-threshold" default:"0.01" value-name:"REL" description:"serving: flag a window where more than REL of the requests sent failed (request_errors)"`
	SaturationRatio   float64       `long:"saturation-ratio" default:"0.95" value-name:"REL" description:"serving: flag an achieved rate below REL x the offered rate (saturated)"`
	MinWindowRequests float64       `long:"min-window-requests" default:"20" value-name:"N" description:"serving: flag a measure window expected to hold fewer than N requests (window_too_short)"`
	Samples           string        `long:"samples" value-name:"FILE" description:"integrate the sample stream FILE over the windows of --windows instead (CSV out)"`
	Windows           string        `long:"windows" value-name:"FILE" description:"windows for --samples: CSV lines start_ns,end_ns"`

	//lint:ignore SA5008 go-flags reads repeated choice tags
	Attribution string `long:"attribution" default:"process" choice:"process" choice:"machine" description:"CPU energy of runs whose samples carry their CPU time: the run's share of each interval (process) or the whole machine's (machine)"`
	footprintOpts
}

// footprintOpts are the carbon and cost assumptions (footprint.go).
type footprintOpts struct {
	CarbonIntensity *float64 `long:"carbon-intensity" value-name:"G_PER_KWH" description:"grid carbon intensity in gCO2e per kWh (overrides the config's energy.carbon_intensity_g_per_kwh)"`
	Region          string   `long:"region" value-name:"CODE" description:"take the carbon intensity from the bundled table of yearly averages (e.g. DE, FR, US, WORLD, aws:eu-central-1; see docs/aggregate.md)"`
	PUE             *float64 `long:"pue" value-name:"X" description:"data-centre power usage effectiveness: facility energy = energy x X (default 1.0, or the config's energy.pue)"`
	Price           *float64 `long:"price" value-name:"AMOUNT" description:"electricity price per kWh, in --currency (overrides the config's energy.price_per_kwh)"`
	Currency        string   `long:"currency" value-name:"CODE" description:"ISO 4217 currency of --price (e.g. EUR)"`
}

const usageLong = `
Reads run and baseline records (NDJSON, from FILEs or stdin; any number of
streams merged), integrates each run's sample stream over its phases and
writes one energy record per run, then one summary record per config id
across its cycles. Records of other kinds pass through unchanged.

Energy per window and device: the energy counter's difference (interpolated at
the window edges) where a counter exists, else the trapezoid integral of
power; both where both exist, with their gap. GPU, CPU package and DRAM are
separate scopes; "total" is their named sum. Idle power from the baseline
record gives net = max(0, gross - idle power x duration).

CPU energy (RAPL, the estimate) of a run whose samples carry its CPU time is
the run's share: each interval's energy x the run's share of the machine's
busy CPU time; the machine's figure stays beside it (machine_energy_j,
machine_gross_j). --attribution machine takes the whole machine's instead.

With --samples and --windows it integrates one sample stream over any number
of windows and prints CSV: window,start_ns,end_ns,device,scope,counter_j,integral_j,samples.`

// Command is llem-aggregate's body.
func Command(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o cmdOpts
	files, err := cli.Parse("llem-aggregate", "[OPTIONS] [FILE...]", usageLong, &o, args, stdout, cli.ExitOK, cli.ExitFailure, cli.ExitUsage)
	if err != nil {
		return err
	}
	opt := Options{GapThreshold: o.GapThreshold, MinSamples: o.MinSamples, MinPeriods: o.MinPeriods, DriftC: o.DriftC,
		CVThreshold: o.CVThreshold, GridMax: DefaultOptions().GridMax, BaselineMaxAgeS: o.BaselineMaxAge.Seconds(),
		LagThresholdS: o.LagThreshold.Seconds(), ErrorThreshold: o.ErrorThreshold, SaturationRatio: o.SaturationRatio,
		TTFTTrendRatio: DefaultTTFTTrendRatio, MinWindowRequests: o.MinWindowRequests, MinWindowE2E: DefaultMinWindowE2E,
		Attribution: o.Attribution}
	if (o.Samples == "") != (o.Windows == "") {
		return cli.Usagef("--samples and --windows go together")
	}
	if o.Samples != "" {
		return windowsMode(o.Samples, o.Windows, stdout)
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	fp, err := FootprintFor(o.Region, o.CarbonIntensity, o.PUE, o.Price, o.Currency)
	if err != nil {
		return cli.Usage(err)
	}
	out := record.NewFlushingWriter(stdout)
	agg := New(Config{Options: opt, Root: o.Root, RequestFiles: !o.NoRequestFiles, Open: OpenArrow, Log: stderr, Footprint: fp}, out)
	for _, f := range files {
		if err := readInput(agg, f, stdin); err != nil {
			return err
		}
	}
	if err := agg.Close(); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if o.Parquet != "" || o.SummaryParquet != "" {
		prov := Provenance{Tool: "llem-aggregate", Version: Version, Inputs: files, Options: opt, Created: time.Now().UTC().Format(time.RFC3339)}
		if o.Parquet != "" {
			if err := WriteParquet(o.Parquet, record.KindEnergy, EnergyTable(agg.Energies), prov); err != nil {
				return err
			}
		}
		sp := o.SummaryParquet
		if sp == "" {
			sp = strings.TrimSuffix(o.Parquet, ".parquet") + ".summary.parquet"
		}
		if err := WriteParquet(sp, record.KindSummary, SummaryTable(agg.Summaries), prov); err != nil {
			return err
		}
	}
	if agg.Failed > 0 {
		return fmt.Errorf("%d ok run(s) without readable samples: their energy is null (see the no_samples flags)", agg.Failed)
	}
	if agg.BadRequests > 0 {
		return fmt.Errorf("%d ok serving run(s) with an unreadable requests file: their serving figures are null (see the bad_requests flags)", agg.BadRequests)
	}
	return nil
}

func readInput(agg *Aggregator, name string, stdin io.Reader) error {
	if name == "-" {
		if err := agg.ReadAll(stdin, "-"); err != nil {
			return cli.Usage(err)
		}
		return nil
	}
	f, err := os.Open(name)
	if err != nil {
		return cli.Usage(err)
	}
	defer f.Close()
	if err := agg.ReadAll(f, name); err != nil {
		return cli.Usage(err)
	}
	return nil
}

// windowsMode integrates one sample stream over the windows of a CSV file in one pass.
func windowsMode(samples, windows string, stdout io.Writer) error {
	ws, err := readWindows(windows)
	if err != nil {
		return cli.Usage(err)
	}
	var qs []int64
	for _, w := range ws {
		qs = append(qs, w.StartNS, w.EndNS)
	}
	qs = SortedUnique(qs)
	src, err := OpenArrow(samples)
	if err != nil {
		return cli.Usage(err)
	}
	defer src.Close()
	tracks, err := Pass(src, qs, nil)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(stdout, 1<<20)
	fmt.Fprintln(bw, "window,start_ns,end_ns,device,scope,counter_j,integral_j,samples")
	num := func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'g', 17, 64)
	}
	for i, w := range ws {
		for _, tr := range tracks {
			sp := tr.Curve.Span(w.StartNS, w.EndNS)
			fmt.Fprintf(bw, "%d,%d,%d,%s,%s,%s,%s,%d\n", i, w.StartNS, w.EndNS, tr.Info.Name, power.ScopeOf(tr.Info.Source, tr.Info.Name),
				num(sp.CounterJ), num(sp.IntegralJ), sp.Samples)
		}
	}
	return bw.Flush()
}

func readWindows(path string) ([]record.Window, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var ws []record.Window
	no := 0
	for sc.Scan() {
		no++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || (no == 1 && strings.HasPrefix(line, "start")) {
			continue
		}
		a, b, ok := strings.Cut(line, ",")
		if !ok {
			return nil, fmt.Errorf("%s:%d:1: want start_ns,end_ns", path, no)
		}
		s, err := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d:1: start_ns: %v", path, no, err)
		}
		e, err := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d:%d: end_ns: %v", path, no, len(a)+2, err)
		}
		if e < s {
			return nil, fmt.Errorf("%s:%d:1: window ends before it starts", path, no)
		}
		ws = append(ws, record.Window{StartNS: s, EndNS: e})
	}
	return ws, sc.Err()
}
