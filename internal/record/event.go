package record

// Worker protocol event names. A worker writes one event per line, as NDJSON, to stdout.
const (
	EventHello   = "hello"
	EventModel   = "model"
	EventPhase   = "phase"
	EventRequest = "request"
	EventMemory  = "memory"
	EventWarning = "warning"
	EventError   = "error"
	EventDone    = "done"
)

// Phase names and edges.
const (
	PhaseLoad    = "load"
	PhaseWarmup  = "warmup"
	PhaseMeasure = "measure"
	EdgeStart    = "start"
	EdgeEnd      = "end"

	// Serving runs only. A serving run's phases, in order: load (the server
	// starting, until its health check passes), idle (the model loaded and
	// no traffic: the static power of a served model), warmup (traffic sent,
	// not measured), measure (the steady-state window), cooldown (traffic
	// still sent, not measured, so the measure window ends under load).
	PhaseIdle     = "idle"
	PhaseCooldown = "cooldown"
)

// Event is one line of the worker protocol. Fields that do not belong to the
// event's kind are left out. T is Unix nanoseconds from the wall clock.
type Event struct {
	Event string `json:"event"`
	T     int64  `json:"t"`

	// hello
	Backend string `json:"backend,omitempty"`
	Version string `json:"version,omitempty"`
	PID     int    `json:"pid,omitempty"`

	// model
	Model *ModelFacts `json:"model,omitempty"`

	// phase
	Phase string `json:"phase,omitempty"`
	Edge  string `json:"edge,omitempty"`

	// request
	Request *RequestEvent `json:"request,omitempty"`

	// memory
	Memory []Memory `json:"memory,omitempty"`

	// warning, error
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Hint    string `json:"hint,omitempty"`

	// done
	Totals *Totals `json:"totals,omitempty"`
	Warmup *Warmup `json:"warmup,omitempty"`
}

// RequestEvent is one measured request. Token emission times are
// TFirstTokenNS, then TFirstTokenNS + cumulative sums of ITLNS.
type RequestEvent struct {
	ID           int     `json:"id"`
	Batch        int     `json:"batch"` // index of the engine batch it ran in; -1 under continuous batching
	InputTokens  int     `json:"input_tokens"`
	OutputTokens int     `json:"output_tokens"`
	TStartNS     int64   `json:"t_start"`
	TFirstNS     int64   `json:"t_first_token"` // 0 when no token was produced
	TEndNS       int64   `json:"t_end"`
	ITLNS        []int64 `json:"itl_ns"` // gaps between consecutive output tokens
}

// WorkerInput is the content of experiment.json, the file a worker finds in
// LLEM_EXPERIMENT: the experiment record plus the prompts llem-exec resolved
// from the config's dataset (so Python workers need no dataset code).
type WorkerInput struct {
	Experiment
	Prompts []string `json:"prompts"`
}
