package sampler

import "strings"

// Where the estimate's watts per busy core came from.
const (
	WPCConfigured = "configured" // --watts-per-core, or Options.WattsPerCore
	WPCTDPTable   = "tdp_table"  // the CPU model's TDP / hardware threads, from tdpTable
	WPCDefault    = "default"    // DefaultWattsPerCore: the CPU model is not in the table
)

// cpuTDP is a CPU model's thermal design power and hardware threads, as
// their makers publish them. TDP is a design figure, not a measurement: a
// loaded chip may draw more or less. The estimate divides it by the
// hardware threads because its CPU time is counted per logical CPU
// (/proc/stat), so a machine with every thread busy is estimated at its TDP.
type cpuTDP struct {
	model   string // matched as a substring of /proc/cpuinfo's "model name"
	tdpW    float64
	threads int
}

// tdpTable holds common server and desktop CPUs. Longer names come first
// where one is a prefix of another.
var tdpTable = []cpuTDP{
	{"EPYC 9654", 360, 192},
	{"EPYC 9554", 360, 128},
	{"EPYC 9474F", 360, 96},
	{"EPYC 9354", 280, 64},
	{"EPYC 7763", 280, 128},
	{"EPYC 7742", 225, 128},
	{"EPYC 7713", 225, 128},
	{"EPYC 7543", 225, 64},
	{"EPYC 7502", 180, 64},
	{"EPYC 7R13", 225, 96},
	{"Xeon(R) Platinum 8480+", 350, 112},
	{"Xeon(R) Platinum 8480C", 350, 112},
	{"Xeon(R) Platinum 8468", 350, 96},
	{"Xeon(R) Platinum 8380", 270, 80},
	{"Xeon(R) Platinum 8358", 250, 64},
	{"Xeon(R) Platinum 8275CL", 240, 48},
	{"Xeon(R) Platinum 8259CL", 210, 48},
	{"Xeon(R) Gold 6338", 205, 64},
	{"Xeon(R) Gold 6248R", 205, 48},
	{"Xeon(R) Gold 6248", 150, 40},
	{"Xeon(R) Gold 6148", 150, 40},
	{"Xeon(R) CPU E5-2686 v4", 145, 36},
	{"Core(TM) i9-14900K", 125, 32},
	{"Core(TM) i9-13900K", 125, 32},
	{"Core(TM) i9-12900K", 125, 24},
	{"Core(TM) i7-13700K", 125, 24},
	{"Core(TM) i7-12700K", 125, 20},
	{"Core(TM) i5-12600K", 125, 16},
	{"Ryzen 9 7950X", 170, 32},
	{"Ryzen 9 5950X", 105, 32},
	{"Ryzen 9 5900X", 105, 24},
	{"Ryzen 7 5800X", 105, 16},
	{"Ryzen Threadripper PRO 5995WX", 280, 128},
}

// WattsPerCore is the estimate's power per busy logical CPU and where it
// came from: the configured figure when positive, else the CPU model's
// TDP / hardware threads when the model is in the table, else the default.
func WattsPerCore(configured float64, cpuModel string) (float64, string) {
	if configured > 0 {
		return configured, WPCConfigured
	}
	for _, c := range tdpTable {
		if strings.Contains(cpuModel, c.model) {
			return c.tdpW / float64(c.threads), WPCTDPTable
		}
	}
	return DefaultWattsPerCore, WPCDefault
}
