package runloop

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
)

// ShardBy values.
const (
	ShardBySeq    = "seq"
	ShardByConfig = "config"
)

// Print values: what --print counts over the runs this llem-exec would take.
var Prints = []string{"runs", "configs", "gpus", "pending"}

// readExperiments reads every input, writes records of other kinds to pass
// unchanged, checks each experiment (safe run id and study name, no run
// twice), and returns the experiments this llem-exec takes: its --shard, then
// its --select, in stream order.
func readExperiments(o Options, inputs []*record.Reader, pass *record.Writer) ([]record.Experiment, error) {
	var all []record.Experiment
	seen := map[string]string{}
	for _, r := range inputs {
		for r.Next() {
			l := r.Line()
			if l.Kind != record.KindExperiment {
				if err := pass.WriteRaw(l.Raw); err != nil {
					return nil, err
				}
				continue
			}
			var e record.Experiment
			if err := l.Decode(&e); err != nil {
				return nil, cli.Usage(err)
			}
			if !safeName.MatchString(e.RunID) || e.RunID == "." || e.RunID == ".." {
				return nil, cli.Usage(&record.PosError{File: l.File, Line: l.No, Err: fmt.Errorf("field run_id: %s is not a safe folder name", quoteClip(e.RunID))})
			}
			// The study directory is <study>-<first 8 of study_hash>: both
			// must be plain names, or a record could point llem-exec's writes
			// outside --out (a study_hash of "/../../x" once did).
			if !studyName.MatchString(e.Study) {
				return nil, cli.Usage(&record.PosError{File: l.File, Line: l.No, Err: fmt.Errorf("field study: %s cannot name a study directory (letters, digits, '.', '_' and '-', at most 128, starting with a letter or digit)", quoteClip(e.Study))})
			}
			if !studyHash.MatchString(e.StudyHash) {
				return nil, cli.Usage(&record.PosError{File: l.File, Line: l.No, Err: fmt.Errorf("field study_hash: %s is not 8 to 64 lowercase hex digits", quoteClip(e.StudyHash))})
			}
			key := e.Study + "\x00" + e.StudyHash + "\x00" + e.RunID
			if prev, dup := seen[key]; dup {
				return nil, cli.Usage(&record.PosError{File: l.File, Line: l.No, Err: fmt.Errorf("field run_id: %q repeats the run of %s", e.RunID, prev)})
			}
			seen[key] = fmt.Sprintf("%s:%d", l.File, l.No)
			all = append(all, e)
		}
		if err := r.Err(); err != nil {
			return nil, cli.Usage(err)
		}
	}
	var keys []int
	if o.Shard[1] > 0 {
		var err error
		if keys, err = shardKeys(all, o.ShardBy); err != nil {
			return nil, err
		}
	}
	var exps []record.Experiment
	for k, e := range all {
		if o.Shard[1] > 0 && keys[k]%o.Shard[1] != o.Shard[0]-1 {
			continue
		}
		if o.Select != nil && !o.Select(e) {
			continue
		}
		exps = append(exps, e)
	}
	return exps, nil
}

// shardKeys gives each experiment the number whose remainder modulo n picks
// its share.
//
// By seq, the key is the run's seq: shares are balanced to one run and stable
// under any filtering of the stream, but the cycles of a config are spread
// over the shares, so no task sees them in order.
//
// By config, the key is the config's rank: the configs (study hash + id)
// numbered in the order of their first run by seq. Every cycle of a config
// then lands in the same share, and a task runs its share in stream (seq)
// order, so cycle k of a config always runs after cycle k-1 and the gaps
// between them are the task's own. Ranks rather than a hash of the id so that
// shares are balanced to one config: with a hash, 4 configs over 4 tasks
// would leave at least one task with nothing to do in 91 % of studies. The same stream always
// gives the same shares; a stream that drops whole configs renumbers them.
func shardKeys(all []record.Experiment, by string) ([]int, error) {
	keys := make([]int, len(all))
	switch by {
	case "", ShardBySeq:
		for k, e := range all {
			keys[k] = e.Seq
		}
	case ShardByConfig:
		type cfg struct {
			key   string
			first int
		}
		first := map[string]int{}
		for _, e := range all {
			c := e.StudyHash + "/" + e.ID
			if f, ok := first[c]; !ok || e.Seq < f {
				first[c] = e.Seq
			}
		}
		cfgs := make([]cfg, 0, len(first))
		for c, f := range first {
			cfgs = append(cfgs, cfg{c, f})
		}
		sort.Slice(cfgs, func(a, b int) bool {
			if cfgs[a].first != cfgs[b].first {
				return cfgs[a].first < cfgs[b].first
			}
			return cfgs[a].key < cfgs[b].key
		})
		rank := make(map[string]int, len(cfgs))
		for r, c := range cfgs {
			rank[c.key] = r
		}
		for k, e := range all {
			keys[k] = rank[e.StudyHash+"/"+e.ID]
		}
	default:
		return nil, cli.Usagef("--shard-by %q: want seq or config", by)
	}
	return keys, nil
}

// printPlan writes the one number --print asks for, over exps (the runs this
// llem-exec would take), and touches nothing on disk:
//
//	runs     how many runs
//	configs  how many distinct configs (study hash + id) they cover
//	gpus     the most GPUs any one of them needs (config.GPUsNeeded; 0 = none)
//	pending  how many of them a rerun with the same --out would execute: the
//	         journal does not have them ok with a run.json (with --skip-failed,
//	         failed ones do not count); read only, so safe while a llem-exec runs
//
// The Slurm helpers size an array job and its GPU request from these, and
// tell which tasks have work left.
func printPlan(o Options, exps []record.Experiment, stdout, stderr io.Writer) error {
	n := 0
	switch o.Print {
	case "runs":
		n = len(exps)
	case "configs":
		ids := map[string]bool{}
		for _, e := range exps {
			ids[e.StudyHash+"/"+e.ID] = true
		}
		n = len(ids)
	case "gpus":
		for _, e := range exps {
			if g := config.GPUsNeeded(e.Config); g > n {
				n = g
			}
		}
	case "pending":
		journals := map[string]map[string]*runState{}
		for _, e := range exps {
			dir := filepath.Join(o.Out, e.Study+"-"+e.StudyHash[:8])
			states, ok := journals[dir]
			if !ok {
				var err error
				states, err = readJournalFile(filepath.Join(dir, "journal.ndjson"), false, func(s string) {
					fmt.Fprintf(stderr, "llem-exec: warning: %s\n", s)
				})
				if err != nil {
					return err
				}
				journals[dir] = states
			}
			s := states[e.RunID]
			if s != nil && s.Status == record.StatusFailed && o.SkipFailed {
				continue
			}
			if s != nil && s.Status == record.StatusOK {
				if _, err := os.Stat(filepath.Join(dir, "runs", e.RunID, "run.json")); err == nil {
					continue
				} else if !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			n++
		}
	default:
		return cli.Usagef("--print %q: want one of %s", o.Print, strings.Join(Prints, ", "))
	}
	_, err := fmt.Fprintln(stdout, n)
	return err
}
