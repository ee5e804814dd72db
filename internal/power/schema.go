// Package power writes and reads llem sample streams: Apache Arrow IPC
// streams (.arrows) in the long format of docs/design.md, one row per device per
// tick.
//
// Writing (the sampler, and tests that need a known trace):
//
//	w, err := power.NewWriter(out, power.Meta{Host: "h", IntervalNS: 50e6, Devices: devs})
//	w.Append(power.Sample{T: t, Source: "nvml", Device: uuid, PowerW: 312.5, Has: power.HasPower})
//	w.Flush()                       // one record batch; the sampler flushes at least every second
//	w.Close(power.Trailer{...})     // last batch, end-of-stream marker, then the trailer
//
// Reading, a record batch at a time with columnar access:
//
//	r, err := power.Open("samples.arrows")
//	defer r.Close()
//	m := r.Meta()
//	for r.Next() {
//		b := r.Batch() // b.T []int64, b.Dev []int32 (index into r.Devices()), b.PowerW []float64, b.PowerOK []bool ...
//	}
//	err = r.Err()
//	t := r.Trailer() // final counts (late ticks...), nil if the writer did not finish
//
// Schema (see schemas/samples.arrow-schema.md): t timestamp[ns, UTC]; source
// and device utf8; power_w, energy_j, temp_c, util_pct float64; mem_used_bytes
// int64; sm_clock_mhz uint32; throttle uint64; run_cpu_s, machine_cpu_s
// float64. Every column but t, source and
// device is nullable: a missing reading is null, never 0.
//
// Final counts. Arrow stream metadata is written with the schema, before any
// sample, so the counts known only at the end (ticks, late ticks, rows,
// warnings) follow the stream's end-of-stream marker as a trailer: the
// 8 bytes "LLEMTRLR", a little-endian uint32 length, and that many bytes of
// JSON (Trailer). Arrow readers stop at the end-of-stream marker and never
// see it; Reader.Trailer returns it. A stream whose writer died has no
// trailer (and may end in a partial batch, which Reader drops: a crash loses
// at most the last batch).
package power

import (
	"github.com/apache/arrow/go/v17/arrow"

	"github.com/llem/llem/internal/record"
)

// Column names of the sample schema.
const (
	ColT        = "t"
	ColSource   = "source"
	ColDevice   = "device"
	ColPowerW   = "power_w"
	ColEnergyJ  = "energy_j"
	ColTempC    = "temp_c"
	ColUtilPct  = "util_pct"
	ColMemUsed  = "mem_used_bytes"
	ColSMClock  = "sm_clock_mhz"
	ColThrottle = "throttle"
	// The run's and the machine's busy CPU time, cumulative seconds, on the
	// rows of CPU sources when the sampler was told the run's processes:
	// llem-aggregate attributes CPU energy by their ratio.
	ColRunCPU     = "run_cpu_s"
	ColMachineCPU = "machine_cpu_s"
)

// Schema metadata keys.
const (
	MetaHost           = "host"            // hostname
	MetaSamplerVersion = "sampler_version" // llem sampler version
	MetaIntervalNS     = "interval_ns"     // sampling interval, integer ns
	MetaPowerField     = "power_field"     // NVML power reading used for power_w
	MetaDevices        = "devices"         // JSON array of Device
	MetaSources        = "sources"         // comma-separated sources
	MetaEstimate       = "estimate"        // "true" when any device is an estimate
	MetaStartNS        = "start_ns"        // sampler start, Unix ns; energy_j counts from here
	MetaHostInfo       = "host_info"       // JSON record.Host (driver, CUDA, NVML versions, GPUs)
	MetaAttribution    = "attribution"     // how run_cpu_s was read: cgroup:<dir> | process-tree; absent without
)

// SamplerVersion is written into every stream.
const SamplerVersion = "0.1.0"

// Schema returns the Arrow schema of a sample stream with metadata md.
func Schema(md arrow.Metadata) *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: ColT, Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}},
		{Name: ColSource, Type: arrow.BinaryTypes.String},
		{Name: ColDevice, Type: arrow.BinaryTypes.String},
		{Name: ColPowerW, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: ColEnergyJ, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: ColTempC, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: ColUtilPct, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: ColMemUsed, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: ColSMClock, Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
		{Name: ColThrottle, Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
		{Name: ColRunCPU, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: ColMachineCPU, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, &md)
}

// Device describes one sampled device.
type Device struct {
	Device   string      `json:"device"` // GPU UUID, package-0, dram-0, cpu-estimate, ...
	Source   string      `json:"source"` // nvml | rapl | estimate
	Scope    string      `json:"scope"`  // record.ScopeGPU, ScopeCPUPackage, ...
	Estimate bool        `json:"estimate"`
	WrapJ    float64     `json:"wrap_j,omitempty"` // hardware counter range (already corrected in energy_j)
	GPU      *record.GPU `json:"gpu,omitempty"`
	// The estimate's power per busy core and where that figure came from
	// (configured | tdp_table | default); estimate devices only.
	WattsPerCore       float64 `json:"watts_per_core,omitempty"`
	WattsPerCoreSource string  `json:"watts_per_core_source,omitempty"`
	CPUModel           string  `json:"cpu_model,omitempty"`
}

// Meta is what a stream says about itself in its schema metadata.
type Meta struct {
	Host           string
	SamplerVersion string
	IntervalNS     int64
	PowerField     string // e.g. "instant", "average", "" when no GPU
	Devices        []Device
	Sources        []string
	Estimate       bool
	StartNS        int64
	HostInfo       *record.Host
	Attribution    string // how the run's CPU time was read; "" when it was not
}

// Trailer holds the counts known only when sampling ends.
type Trailer struct {
	Rows      int64    `json:"rows"`
	Ticks     int64    `json:"ticks"`
	LateTicks int64    `json:"late_ticks"` // ticks read more than one interval after their deadline, or skipped
	EndNS     int64    `json:"end_ns"`
	Warnings  []string `json:"warnings"`
	Error     string   `json:"error,omitempty"` // why sampling stopped early, if it did
}

// Has flags which fields of a Sample hold a reading.
type Has uint16

const (
	HasPower Has = 1 << iota
	HasEnergy
	HasTemp
	HasUtil
	HasMem
	HasClock
	HasThrottle
	HasCPUTime // RunCPUS and MachineCPUS
)

// Sample is one row: one device at one instant.
type Sample struct {
	T            int64 // Unix ns, taken at the read
	Source       string
	Device       string
	PowerW       float64
	EnergyJ      float64 // cumulative since sampler start, wrap-corrected
	TempC        float64
	UtilPct      float64
	MemUsedBytes int64
	SMClockMHz   uint32
	Throttle     uint64
	RunCPUS      float64 // busy CPU seconds of the run's processes (cumulative)
	MachineCPUS  float64 // busy CPU seconds of the whole machine (cumulative)
	Has          Has
}
