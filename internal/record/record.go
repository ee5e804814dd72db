package record

import "encoding/json"

// Version is the schema version written in every record's "v" field.
const Version = 1

// Record kinds.
const (
	KindExperiment = "experiment"
	KindSkipped    = "skipped"
	KindBaseline   = "baseline"
	KindRun        = "run"
	KindEnergy     = "energy"
	KindSummary    = "summary"
)

// Run statuses. ok, failed, timeout and interrupted are final states of an
// executed run; planned and done are emitted by `llem-exec --dry-run`.
const (
	StatusPending     = "pending"
	StatusRunning     = "running"
	StatusOK          = "ok"
	StatusFailed      = "failed"
	StatusTimeout     = "timeout"
	StatusInterrupted = "interrupted"
	StatusPlanned     = "planned"
	StatusDone        = "done"
)

// Runner says where a run's worker executes.
type Runner struct {
	Type  string `json:"type"`            // local | docker
	Image string `json:"image,omitempty"` // docker only
}

// Experiment is one planned run: one config in one cycle. llem-expand emits it.
type Experiment struct {
	Kind      string `json:"kind"`
	V         int    `json:"v"`
	Study     string `json:"study"`
	StudyHash string `json:"study_hash"` // 16 hex
	ID        string `json:"id"`         // 16 hex: SHA-256 of the RFC 8785 canonical effective config
	Seq       int    `json:"seq"`        // 0-based position in execution order
	Cycle     int    `json:"cycle"`      // 1-based
	NCycles   int    `json:"n_cycles"`
	RunID     string `json:"run_id"` // unique per run, safe as a folder name: <id>-c<cycle>
	Backend   string `json:"backend"`
	Model     string `json:"model"`
	// GapBeforeS is the pause to take before this run: the experiment gap, plus
	// the cycle gap where a new cycle starts. 0 for the first run.
	GapBeforeS float64         `json:"gap_before_s"`
	CycleStart bool            `json:"cycle_start,omitempty"`
	Config     json.RawMessage `json:"config"` // the full effective config, every default filled in
	Runner     Runner          `json:"runner"`
}

// Skipped is an invalid combination found while expanding a study.
type Skipped struct {
	Kind      string          `json:"kind"`
	V         int             `json:"v"`
	Study     string          `json:"study"`
	StudyHash string          `json:"study_hash,omitempty"`
	Label     string          `json:"label"` // "<backend>, <precision>"
	Config    json.RawMessage `json:"config"`
	Reasons   []Problem       `json:"reasons"`
}

// Problem is one validation error: where and what.
type Problem struct {
	Path    string `json:"path"` // field path, e.g. pytorch.load_in_4bit
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// Error describes why a run did not finish ok.
type Error struct {
	Type    string `json:"type"` // one of ErrorTypes (errtypes.go)
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	Code    string `json:"code,omitempty"` // the worker's error code, where it sent one
}

// Flag is a named condition that weakens a figure (validity flag) or a warning.
type Flag struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	Device  string `json:"device,omitempty"`
	Phase   string `json:"phase,omitempty"`
}

// Window is a time interval in Unix nanoseconds (wall clock shared by host and containers).
type Window struct {
	StartNS int64 `json:"start_ns"`
	EndNS   int64 `json:"end_ns"`
}

// DurationS is the window's length in seconds.
func (w Window) DurationS() float64 { return float64(w.EndNS-w.StartNS) / 1e9 }

// Phases holds the windows a worker reported. Absent phases are null; Idle
// and Cooldown exist only in serving runs and are left out elsewhere.
type Phases struct {
	Load     *Window `json:"load"`
	Idle     *Window `json:"idle,omitempty"`
	Warmup   *Window `json:"warmup"`
	Measure  *Window `json:"measure"`
	Cooldown *Window `json:"cooldown,omitempty"`
}

// Totals are the inference totals of the measure phase, from the worker's done event.
type Totals struct {
	Requests     int64 `json:"requests"`
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	// Batches is the number of engine batches (or steps) the worker ran; null if unknown.
	Batches *int64 `json:"batches"`
}

// Warmup is what the worker's warmup did.
type Warmup struct {
	Requests   int       `json:"requests"`
	LatenciesS []float64 `json:"latencies_s"`
	CV         *float64  `json:"cv"`
	Converged  bool      `json:"converged"`
	Mode       string    `json:"mode"` // fixed | cv | disabled
	// Compiled is, for a run that asked for compilation (pytorch
	// torch_compile), whether graphs were really compiled before the
	// measurement; absent when none was asked for.
	Compiled *bool `json:"compiled,omitempty"`
}

// ModelFacts are the worker's facts about the loaded model.
type ModelFacts struct {
	Name                   string `json:"name,omitempty"`
	Parameters             *int64 `json:"parameters"`
	NonEmbeddingParameters *int64 `json:"non_embedding_parameters"`
	ActiveParameters       *int64 `json:"active_parameters"` // MoE: parameters active per token; null for dense
	Layers                 *int   `json:"layers"`
	HiddenSize             *int   `json:"hidden_size"`
	Heads                  *int   `json:"heads"`
	KVHeads                *int   `json:"kv_heads"`
	HeadDim                *int   `json:"head_dim"`
	FFNSize                *int   `json:"ffn_size"`
	VocabSize              *int   `json:"vocab_size"`
	DType                  string `json:"dtype,omitempty"`
}

// Memory is a device's memory during a run, with one meaning for every
// backend (docs/design.md): ModelBytes the weights, KVCacheBytes the KV
// cache reserved up front (absent or null where the engine grows it on
// demand), PeakBytes the most the run held (on a GPU: NVML "used" at its
// highest minus before the load; on "cpu": peak resident memory),
// DeviceUsedBytes NVML "used" at that reading, other tenants included.
type Memory struct {
	Device          string `json:"device"`
	PeakBytes       *int64 `json:"peak_bytes"`
	ModelBytes      *int64 `json:"model_bytes"`
	KVCacheBytes    *int64 `json:"kv_cache_bytes,omitempty"`
	DeviceUsedBytes *int64 `json:"device_used_bytes,omitempty"`
}

// GPU identifies one GPU.
type GPU struct {
	Index            int      `json:"index"`
	UUID             string   `json:"uuid"`
	Name             string   `json:"name"`
	MemoryTotalBytes *int64   `json:"memory_total_bytes"`
	PowerLimitW      *float64 `json:"power_limit_w"`
	PersistenceMode  *bool    `json:"persistence_mode"`
	// MIG lists the MIG instances (UUIDs "MIG-…") the run used on this GPU.
	// NVML measures power and energy per physical GPU only, so with MIG the
	// figures are the whole GPU's, shared with any other instance on it:
	// SharedEnergy says so. Both are absent for a GPU used whole.
	MIG          []string `json:"mig,omitempty"`
	SharedEnergy bool     `json:"shared_energy,omitempty"`
}

// Host identifies the machine a run executed on.
type Host struct {
	Hostname      string `json:"hostname"`
	OS            string `json:"os"`
	Arch          string `json:"arch"`
	Kernel        string `json:"kernel,omitempty"`
	CPUModel      string `json:"cpu_model,omitempty"`
	CPUs          int    `json:"cpus"`
	GPUs          []GPU  `json:"gpus"`
	DriverVersion string `json:"driver_version,omitempty"`
	CUDAVersion   string `json:"cuda_version,omitempty"`
	NVMLVersion   string `json:"nvml_version,omitempty"`
}

// Worker identifies the worker that ran an experiment.
type Worker struct {
	Backend  string   `json:"backend"`
	Version  string   `json:"version,omitempty"`
	PID      int      `json:"pid,omitempty"`
	Command  []string `json:"command,omitempty"`
	ExitCode *int     `json:"exit_code"`
}

// Container identifies the container a docker-run worker ran in.
type Container struct {
	Image       string `json:"image"`
	ImageDigest string `json:"image_digest,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
}

// Run is the outcome of one experiment; llem-exec emits it.
// It repeats every field of the experiment (kind "run") and adds what happened.
type Run struct {
	Experiment
	Status     string `json:"status"`
	Error      *Error `json:"error"`
	RunDir     string `json:"run_dir"`     // absolute where llem-exec could make it so
	SampleFile string `json:"sample_file"` // relative to run_dir: samples.arrows
	EventsFile string `json:"events_file"` // relative to run_dir: events.ndjson (request events)
	// RequestsFile and ServerLog exist in serving runs only (relative to
	// run_dir): requests.ndjson holds one KindRequest record per request sent
	// in any phase, server.log the server's stdout and stderr.
	RequestsFile string `json:"requests_file,omitempty"`
	ServerLog    string `json:"server_log,omitempty"`
	BaselineID   string `json:"baseline_id,omitempty"`
	// Samplers lists the sample sources used (nvml, rapl, estimate).
	Samplers []string `json:"samplers"`
	Estimate bool     `json:"estimate"` // true when any energy figure of this run can only be an estimate
	// CPUTime says where the sampler read the run's own CPU time, for the
	// attribution of CPU energy: "cgroup:<dir>" or "process-tree"; absent
	// when it was not read (no sampler, --sampler-cmd, older llem-exec).
	CPUTime    string      `json:"cpu_time,omitempty"`
	StartNS    int64       `json:"start_ns"`
	EndNS      int64       `json:"end_ns"`
	DurationS  float64     `json:"duration_s"`
	Phases     Phases      `json:"phases"`
	Totals     *Totals     `json:"totals"`
	Warmup     *Warmup     `json:"warmup"`
	ModelFacts *ModelFacts `json:"model_facts"` // the worker's model event; "model" is the config's model name
	Memory     []Memory    `json:"memory"`
	Host       Host        `json:"host"`
	Devices    []string    `json:"devices"` // the devices measured for this run (GPU UUIDs, package-0, ...)
	Worker     *Worker     `json:"worker"`
	Container  *Container  `json:"container"`
	Warnings   []Flag      `json:"warnings"`
	Attempt    int         `json:"attempt"` // 1 for the first execution of this run_id in the journal
	// MemoryEstimate is llem-exec --dry-run's estimate of the memory the run
	// needs, against the GPUs it would get; absent outside a dry run.
	MemoryEstimate *MemoryEstimate `json:"memory_estimate,omitempty"`
}

// MemoryEstimate is the memory a planned run needs (internal/memest): null
// figures where there is no estimate (Note says why).
type MemoryEstimate struct {
	Params        *int64 `json:"params"`
	WeightsBytes  *int64 `json:"weights_bytes"`
	KVCacheBytes  *int64 `json:"kv_cache_bytes"`
	OverheadBytes *int64 `json:"overhead_bytes"`
	TotalBytes    *int64 `json:"total_bytes"`
	// GPUMemoryBytes is the memory of the GPUs the run would get, together
	// (null: a run on no GPU, or memory unknown); Fits compares TotalBytes
	// with it (vLLM: with its gpu_memory_utilization share), null when
	// either is unknown.
	GPUMemoryBytes *int64 `json:"gpu_memory_bytes"`
	Fits           *bool  `json:"fits"`
	Source         string `json:"source,omitempty"` // where the architecture came from
	Note           string `json:"note,omitempty"`
}

// BaselineDevice is the idle power of one device.
type BaselineDevice struct {
	Device   string   `json:"device"`
	Source   string   `json:"source"` // nvml | rapl | estimate
	Scope    string   `json:"scope"`  // gpu | cpu_package | cpu_core | cpu_uncore | dram | cpu_estimate
	PowerW   *float64 `json:"power_w"`
	Samples  int      `json:"samples"`
	Estimate bool     `json:"estimate"`
}

// Baseline is an idle-power measurement, taken by llem-exec before the first run
// and again when stale.
type Baseline struct {
	Kind       string           `json:"kind"`
	V          int              `json:"v"`
	ID         string           `json:"id"` // baseline-<start unix ns>
	Study      string           `json:"study,omitempty"`
	StudyHash  string           `json:"study_hash,omitempty"`
	Host       string           `json:"host"`
	Method     string           `json:"method"` // measured
	Window     Window           `json:"window"`
	DurationS  float64          `json:"duration_s"`
	SampleFile string           `json:"sample_file"` // absolute where possible
	Devices    []BaselineDevice `json:"devices"`
}

// Scopes of energy. They are never summed into one number without saying so:
// ScopeTotal is the named sum of the scopes listed in Energy.TotalScopes.
const (
	ScopeGPU        = "gpu"
	ScopeCPUPackage = "cpu_package"
	ScopeCPUCore    = "cpu_core"
	ScopeCPUUncore  = "cpu_uncore"
	ScopeDRAM       = "dram"
	ScopeCPUEst     = "cpu_estimate"
	ScopeTotal      = "total"
)

// DeviceEnergy is the energy of one device over one window.
type DeviceEnergy struct {
	Device     string   `json:"device"`
	Scope      string   `json:"scope"`
	Source     string   `json:"source"`
	Estimate   bool     `json:"estimate"`
	CounterJ   *float64 `json:"counter_j"`  // counter difference, interpolated at the edges
	IntegralJ  *float64 `json:"integral_j"` // trapezoid integral of power
	GapRel     *float64 `json:"gap_rel"`    // |counter-integral| / counter
	Method     string   `json:"method"`     // counter | integral | none
	EnergyJ    *float64 `json:"energy_j"`   // the chosen figure (counter where it exists)
	MeanPowerW *float64 `json:"mean_power_w"`
	IdlePowerW *float64 `json:"idle_power_w"`
	IdleJ      *float64 `json:"idle_j"`
	NetJ       *float64 `json:"net_j"` // max(0, energy - idle)
	Samples    int      `json:"samples"`
	// Attribution of a CPU device whose stream carries the run's CPU time:
	// "process" (energy_j is the run's share: each interval's energy × the
	// run's share of the machine's busy CPU time) or "machine" (the whole
	// machine's). Absent for GPUs and for streams without CPU time.
	Attribution string `json:"attribution,omitempty"`
	// MachineJ is the device's whole-machine energy over the window, beside
	// an attributed energy_j; CPUShare = energy_j / MachineJ.
	MachineJ *float64 `json:"machine_energy_j,omitempty"`
	CPUShare *float64 `json:"cpu_share,omitempty"`
}

// ScopeEnergy sums the devices of one scope over one window.
type ScopeEnergy struct {
	GrossJ   *float64 `json:"gross_j"`
	IdleJ    *float64 `json:"idle_j"`
	NetJ     *float64 `json:"net_j"`
	Devices  int      `json:"devices"`
	Estimate bool     `json:"estimate"`
	// MachineGrossJ is the scope's whole-machine energy where its gross_j
	// is attributed to the run (process attribution); absent otherwise.
	MachineGrossJ *float64 `json:"machine_gross_j,omitempty"`
}

// PhaseEnergy is the energy of one phase window.
type PhaseEnergy struct {
	Window    Window                  `json:"window"`
	DurationS float64                 `json:"duration_s"`
	Devices   []DeviceEnergy          `json:"devices"`
	Scopes    map[string]*ScopeEnergy `json:"scopes"` // keyed by scope, plus "total"
}

// Latency holds percentiles of one latency distribution, in seconds.
type Latency struct {
	N    int      `json:"n"`
	Mean *float64 `json:"mean_s"`
	P50  *float64 `json:"p50_s"`
	P90  *float64 `json:"p90_s"`
	P95  *float64 `json:"p95_s"`
	P99  *float64 `json:"p99_s"`
	Min  *float64 `json:"min_s"`
	Max  *float64 `json:"max_s"`
}

// Energy is the measured outcome of one run; llem-aggregate emits one per run.
type Energy struct {
	Kind      string          `json:"kind"`
	V         int             `json:"v"`
	Study     string          `json:"study"`
	StudyHash string          `json:"study_hash"`
	ID        string          `json:"id"`
	RunID     string          `json:"run_id"`
	Seq       int             `json:"seq"`
	Cycle     int             `json:"cycle"`
	NCycles   int             `json:"n_cycles"`
	Backend   string          `json:"backend"`
	Model     string          `json:"model"`
	Config    json.RawMessage `json:"config"`
	Status    string          `json:"status"`
	Error     *Error          `json:"error"`
	RunDir    string          `json:"run_dir"`
	Host      string          `json:"host"`
	// Basis is the scope the headline per-token figures use: "gpu" where a GPU was
	// measured, else "total" (the sum named by TotalScopes).
	Basis       string                  `json:"basis"`
	TotalScopes []string                `json:"total_scopes"`
	Estimate    bool                    `json:"estimate"`
	Phases      map[string]*PhaseEnergy `json:"phases"` // load | warmup | measure
	// Metrics are flat named figures over the measure phase (see metrics.go); null = unknown.
	Metrics        map[string]*float64 `json:"metrics"`
	TTFT           *Latency            `json:"ttft"`
	ITL            *Latency            `json:"itl"`
	E2E            *Latency            `json:"e2e"`
	RequestsEnergy string              `json:"requests_energy_file,omitempty"` // per-request attribution, relative to run_dir
	// FLOPsMethod says how Metrics["flops"] was counted: which parameter
	// count, which tokens, and whether (and how) the attention term is in.
	FLOPsMethod string `json:"flops_method,omitempty"`
	// Attribution of the CPU scopes: "process" (the run's share of the CPU
	// energy) or "machine" (all of it); absent where no CPU scope has the
	// run's CPU time (a stream from before attribution, --sampler-cmd).
	Attribution string `json:"attribution,omitempty"`
	// EstimateModel is the CPU estimate's model, where a device is one.
	EstimateModel *EstimateModel `json:"estimate_model,omitempty"`
	Flags         []Flag         `json:"flags"`
	// Footprint is present only where llem-aggregate was given assumptions
	// (carbon intensity, PUE or price): derived figures, not measured ones.
	Footprint *Footprint `json:"footprint,omitempty"`
}

// EstimateModel says how the CPU estimate turned CPU time into energy.
type EstimateModel struct {
	// WattsPerCore is the power of one busy logical CPU.
	WattsPerCore float64 `json:"watts_per_core"`
	// Source: "configured" (given), "tdp_table" (the CPU model's TDP /
	// hardware threads from llem's table) or "default" (10 W, the model
	// unknown to the table).
	Source   string `json:"source"`
	CPUModel string `json:"cpu_model,omitempty"`
}

// Stat is a statistic of one metric across the cycles of a config.
type Stat struct {
	N      int      `json:"n"`
	Mean   *float64 `json:"mean"`
	Std    *float64 `json:"std"`
	CI95Lo *float64 `json:"ci95_lo"`
	CI95Hi *float64 `json:"ci95_hi"`
	CI95   *float64 `json:"ci95_half_width"`
	Min    *float64 `json:"min"`
	Max    *float64 `json:"max"`
	CV     *float64 `json:"cv"`
}

// Summary is the statistics of one config id across its cycles; llem-aggregate emits it.
type Summary struct {
	Kind      string          `json:"kind"`
	V         int             `json:"v"`
	Study     string          `json:"study"`
	StudyHash string          `json:"study_hash"`
	ID        string          `json:"id"`
	Backend   string          `json:"backend"`
	Model     string          `json:"model"`
	Config    json.RawMessage `json:"config"`
	Basis     string          `json:"basis"`
	Estimate  bool            `json:"estimate"`
	// Attribution of the CPU scopes across the config's runs: process,
	// machine, or mixed; absent as in the energy records.
	Attribution string           `json:"attribution,omitempty"`
	Runs        int              `json:"runs"`    // runs seen
	RunsOK      int              `json:"runs_ok"` // runs with status ok, the ones the statistics cover
	RunIDs      []string         `json:"run_ids"`
	Metrics     map[string]*Stat `json:"metrics"`
	Flags       []Flag           `json:"flags"`
	// Footprint: as in Energy, over the runs the statistics cover.
	Footprint *SummaryFootprint `json:"footprint,omitempty"`
}
