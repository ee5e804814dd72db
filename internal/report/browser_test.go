package report

import (
	"context"
	"encoding/json"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// findChromium returns a headless-capable browser, or fails (CI=true) or
// skips loudly when there is none.
func findChromium(t *testing.T) string {
	if testing.Short() {
		t.Skip("-short: the browser test needs chromium")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found: the HTML report's browser test needs it (bash scripts/test-setup.sh, or apt-get install chromium fonts-dejavu-core)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Log("!!!!!!!! " + msg + " — SKIPPING the browser test !!!!!!!!")
	t.Skip(msg)
	return ""
}

// The probe goes into a copy of the report (the report itself has no script):
// one script first in <head> records every error and console.error, one at
// the end of <body> measures every plot and each of its data series and
// writes it all, as JSON, into <pre id="llem-probe"> for --dump-dom.
const probeHead = `<script>window.__errs=[];window.addEventListener('error',function(e){window.__errs.push(String(e.message||e.type))},true);
(function(){var ce=console.error,cw=console.warn;console.error=function(){window.__errs.push('console.error: '+Array.prototype.join.call(arguments,' '));ce.apply(console,arguments)};
console.warn=function(){window.__errs.push('console.warn: '+Array.prototype.join.call(arguments,' '));cw.apply(console,arguments)}})();</script>`

const probeTail = `<script>(function(){var out={errors:window.__errs,bg:getComputedStyle(document.body).backgroundColor,plots:[]};
document.querySelectorAll('svg.plot').forEach(function(s){var r=s.getBoundingClientRect();var series={};
s.querySelectorAll('[data-series]').forEach(function(e){var b=e.getBBox();var k=e.getAttribute('data-series');var v=series[k]||{n:0,w:0,h:0};
v.n++;v.w=Math.max(v.w,b.width);v.h=Math.max(v.h,b.height);series[k]=v});
out.plots.push({id:s.id,w:r.width,h:r.height,series:series})});
var p=document.createElement('pre');p.id='llem-probe';p.textContent=JSON.stringify(out);document.body.appendChild(p)})();</script>`

type probeResult struct {
	Errors []string
	BG     string
	Plots  []struct {
		ID     string
		W, H   float64
		Series map[string]struct {
			N    int
			W, H float64
		}
	}
}

func withProbe(page string) string {
	page = strings.Replace(page, "<head>", "<head>"+probeHead, 1)
	return strings.Replace(page, "</body>", probeTail+"</body>", 1)
}

// chromium runs the browser headless on a file with extra flags; it returns stdout and stderr.
func chromium(t *testing.T, bin, file string, flags ...string) (string, string) {
	t.Helper()
	// Only a hang reaches it (the page's timers run on virtual time).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--user-data-dir=" + filepath.Join(t.TempDir(), "profile"), "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0"}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, "file://"+file)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, errb.String())
	}
	return out.String(), errb.String()
}

var probeRe = regexp.MustCompile(`(?s)<pre id="llem-probe">(.*?)</pre>`)

// consoleRe matches what chromium logs for a page's uncaught errors and console messages.
var consoleRe = regexp.MustCompile(`Uncaught|:CONSOLE\(|console\.(error|warn)`)

func probe(t *testing.T, bin, page string, flags ...string) (probeResult, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "probe.html")
	if err := os.WriteFile(file, []byte(withProbe(page)), 0o644); err != nil {
		t.Fatal(err)
	}
	dom, stderr := chromium(t, bin, file, append(flags, "--dump-dom")...)
	m := probeRe.FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no probe output in the dumped DOM (%d bytes); stderr:\n%s", len(dom), stderr)
	}
	var pr probeResult
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &pr); err != nil {
		t.Fatalf("probe: %v: %s", err, m[1])
	}
	return pr, stderr
}

func artifactsDir(t *testing.T) string {
	dir, err := filepath.Abs(filepath.Join("..", "..", ".artifacts", "report"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The HTML report in a real browser: no error, every plot drawn with a
// non-zero size and the series it should hold; dark scheme and print work;
// a screenshot (light and dark) and a PDF are kept under .artifacts/report/.
func TestBrowser(t *testing.T) {
	bin := findChromium(t)

	// The detector has teeth: a page with a failing script is caught, both
	// by the probe's error handler and in chromium's log.
	pr, stderr := probe(t, bin, "<!DOCTYPE html><html><head></head><body><script>noSuchFunction()</script></body></html>")
	if len(pr.Errors) == 0 || !consoleRe.MatchString(stderr) {
		t.Fatalf("a failing script went unnoticed: probe %v, stderr has console error %v", pr.Errors, consoleRe.MatchString(stderr))
	}

	stream, root := studyFixture(t)
	qs, _ := os.ReadFile("testdata/quickstart/energy.ndjson")
	synRoot := t.TempDir()
	syn := synthStudy(t, 3, 2, 4, 3, synRoot)
	cases := []struct {
		name   string
		stream []byte
		args   []string
		series map[string][]string // plot → series it must hold
		absent map[string][]string // plot → series it must not hold
	}{
		{"study", stream, []string{"--root", root}, map[string][]string{
			"energy-per-token":  {"mean", "ci95", "runs"},
			"pareto-throughput": {"front", "front-point"},
			"pareto-latency":    {"front", "front-point", "config"},
			"power":             {"device:GPU-6f1c2a7e-0000-4000-8000-000000000001", "device:package-0", "device:dram-0", "phase:load", "phase:warmup", "phase:measure", "requests"},
			"latency-ttft":      {"config:llem-tiny [a1b2c3d4]", "config:llem-tiny [11112222]", "config:llem-tiny [55556666]"},
			"latency-e2e":       {"config:llem-tiny [a1b2c3d4]"},
		}, nil},
		{"quickstart", qs, []string{"--root", "testdata/quickstart/results"}, map[string][]string{
			"energy-per-token":  {"mean", "ci95", "runs"},
			"pareto-throughput": {"front", "front-point", "config"},
			"pareto-latency":    {"front", "front-point"},
			"power":             {"device:cpu-estimate", "phase:measure", "requests"},
			"latency-ttft":      {"config:batch_size=1", "config:batch_size=4"},
			"latency-e2e":       {"config:batch_size=1", "config:batch_size=4"},
		}, nil},
		{"sweep", syn, []string{"--root", synRoot}, map[string][]string{
			"energy-per-token":  {"mean", "ci95", "runs"},
			"pareto-throughput": {"front", "front-point", "config"},
			"pareto-latency":    {"front", "front-point", "config"},
			"power":             {"device:GPU-00000000-0000-4000-8000-0000000000a1", "phase:measure", "requests"},
			"latency-e2e":       {"config:llem-tiny bf16 batch_size=8"},
		}, nil},
		// Serving sweeps (records only: no run directories).
		{"serving", readFixture(t, "serving-sweep.ndjson"), nil, map[string][]string{
			"serving-rate-energy":  {"series:llem-small", "series:llem-base", "point", "ci95", "flagged", "headline"},
			"serving-rate-ttft":    {"series:llem-small", "series:llem-base", "point", "ci95", "slo"},
			"serving-rate-tpot":    {"series:llem-small", "point", "ci95", "slo"},
			"serving-rate-goodput": {"series:llem-base", "point", "ci95", "ideal"},
			"energy-per-token":     {"mean", "ci95", "runs"},
		}, nil},
		{"serving-noslo", readFixture(t, "serving-noslo.ndjson"), nil, map[string][]string{
			"serving-rate-energy":  {"series:llem-small", "point", "ci95", "flagged"},
			"serving-rate-ttft":    {"series:llem-small", "point"},
			"serving-rate-tpot":    {"series:llem-small", "point"},
			"serving-rate-goodput": nil,
		}, map[string][]string{
			"serving-rate-energy":  {"headline"},
			"serving-rate-ttft":    {"slo"},
			"serving-rate-goodput": {"point", "ideal"},
		}},
	}
	art := artifactsDir(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			page, stderr, code := runCmd(t, c.stream, append([]string{"--format", "html"}, c.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			checkSelfContained(t, page)
			pr, log := probe(t, bin, page)
			if len(pr.Errors) > 0 {
				t.Errorf("errors in the page: %v", pr.Errors)
			}
			if consoleRe.MatchString(log) {
				t.Errorf("chromium logged console messages:\n%s", strings.Join(grepLines(log, consoleRe), "\n"))
			}
			plots := map[string]bool{}
			for _, p := range pr.Plots {
				plots[p.ID] = true
				if p.W < 100 || p.H < 50 {
					t.Errorf("plot %s drawn %.0f×%.0f px", p.ID, p.W, p.H)
				}
				for _, s := range c.series[p.ID] {
					got, ok := p.Series[s]
					if !ok || got.N == 0 || got.W+got.H <= 0 {
						t.Errorf("plot %s: series %q missing or empty (%+v); has %v", p.ID, s, got, keys(p.Series))
					}
				}
				for _, s := range c.absent[p.ID] {
					if _, ok := p.Series[s]; ok {
						t.Errorf("plot %s: series %q drawn where it should not be", p.ID, s)
					}
				}
			}
			for id := range c.series {
				if !plots[id] {
					t.Errorf("plot %s not rendered", id)
				}
			}
			if pr.BG != "rgb(255, 255, 255)" {
				t.Errorf("light scheme background %s", pr.BG)
			}
			// Dark colour scheme.
			dark, _ := probe(t, bin, page, "--force-dark-mode", "--blink-settings=preferredColorScheme=0")
			if dark.BG != "rgb(18, 22, 27)" {
				t.Errorf("dark scheme background %s, want rgb(18, 22, 27)", dark.BG)
			}
			// Screenshots (light, dark) and a printed PDF of the real page.
			file := filepath.Join(art, c.name+".html")
			if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, shot := range []struct {
				name  string
				flags []string
			}{
				{c.name + ".png", nil},
				{c.name + "-dark.png", []string{"--force-dark-mode", "--blink-settings=preferredColorScheme=0"}},
			} {
				png := filepath.Join(art, shot.name)
				os.Remove(png)
				chromium(t, bin, file, append(shot.flags, "--hide-scrollbars", "--window-size=1280,4200", "--screenshot="+png)...)
				if st, err := os.Stat(png); err != nil || st.Size() < 20_000 {
					t.Errorf("screenshot %s: %v", png, err)
				} else {
					t.Logf("screenshot: %s", png)
				}
			}
			pdf := filepath.Join(art, c.name+".pdf")
			os.Remove(pdf)
			chromium(t, bin, file, "--no-pdf-header-footer", "--print-to-pdf="+pdf)
			if b, err := os.ReadFile(pdf); err != nil || len(b) < 20_000 || !strings.HasPrefix(string(b), "%PDF") {
				t.Errorf("printed PDF %s: %v (%d bytes)", pdf, err, len(b))
			} else {
				t.Logf("printed: %s", pdf)
			}
		})
	}
}

func grepLines(s string, re *regexp.Regexp) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
